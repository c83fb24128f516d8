"""The benchmark set: content × style pairs that time to quality runs side by side, offline.

    python -m tests.bench --part time-to-quality --set default [--quick] [--pairs NAME,NAME]
                          [--candidates KEY,KEY] [--json PATH] [--images DIR]
    python -m tests.bench --part iterations --set default [--pairs NAME,NAME] [--rows 400]
                          [--reference-iterations 50] [--lbfgs-memory STEPS] [--precision float32]
                          [--json PATH] [--images DIR]
    python -m tests.bench --part iterations --summarise JSON[,JSON] [--against JSON[,JSON] [--at-iteration N]]

Every pair is built here without a download: the procedural pictures of ``stylecore.samples`` and
photos and textures that ship inside scikit-image's wheel (its ``data`` folder, read straight
from disk: ``skimage.data`` may fetch other pictures with pooch). Each picture is cut to the set's
4:3 landscape aspect at its centre and resized, so all pairs share one size and the engine's
functions are traced once.

For each pair, as in part (c) of ``tests.bench.timing``: the reference (float32, one size, the photo
as the start, L-BFGS keeping scipy's 10 steps as the first engine did) runs
``--reference-iterations``; its last full-size loss is the pair's L*. Then each candidate runs in
``--precision`` (default the automatic one, what a user's run gets) until its full-size loss, judged in float32 outside the clock, is at most
L*, or once it has run twice the reference's iterations: a limit in iterations, not seconds, so
that whether and where a candidate reaches L* does not depend on the machine's load
(``--give-up-below`` adds a limit in wall time).
The pair's figures are the iteration and evaluation count at L* (which do not depend on the
machine's load) and the wall and CPU seconds against the reference's (which do, so they are only
compared inside a pair, measured minutes apart). Over the pairs: the median and the worst.

The full mode: 400 rows, 50 reference iterations, all six candidates (hours on two CPU cores). The quick
mode (``--quick``): 48 rows, 4 reference iterations, three candidates (the photo, AdaIN 0.2 and AdaIN 1).
Measured on 2 Dec 2026 (the project's shared 2-core Zen 4, nice'd, at load average 8.8-11.9 from other
engineers' work): the 8 pairs took 12.1 minutes wall and 7.1 CPU-minutes
(docs/benchset-quick-48rows-2026-12-02.txt); the earlier 64-row, 6-iteration, 6-candidate quick mode
took 40 minutes wall, 36 CPU-minutes.
"""

import importlib.util
import json
import math
import os
import platform
import statistics
import time
from dataclasses import dataclass

import numpy as np
from PIL import Image

from stylecore.errors import ImageError
from stylecore.schema import DEFAULTS
from stylecore.engine import EVALUATIONS_PER_ITERATION
from stylecore.engine import lbfgs_memory as engine_lbfgs_memory
from stylecore.engine import scale_plan
from stylecore.images import centre_crop_to_aspect, load_image, resize
from stylecore.samples import landscape, mosaic, swirls

from .timing import FIRST_ENGINE_LBFGS_MEMORY, EngineObjective, _Clock

ASPECT = 4 / 3  # every picture of the set is cut to this (columns / rows)
# The quick mode, sized to finish the 8 pairs in under 15 minutes on a shared 2-core machine: at 128 rows
# and 10 iterations one pair took 10 minutes (docs/benchset-128rows-*); at 64 rows, 6 iterations and all 6
# candidates the 8 pairs took 40 minutes, 36 CPU minutes (docs/benchset-quick-*). Now 48 rows (an
# evaluation 0.12-0.15 s), 4 reference iterations and 3 candidates: the photo (the defaults' start), the
# AdaIN start at its default strength 0.2 and the strongest AdaIN start (--candidates runs others, --pairs
# fewer pairs). Its measured time:
# the module's docstring and docs/PERFORMANCE.md "The benchmark set". Its outputs are below AUTO_MIN_PIXELS, so
# every run is float32 and the quick mode compares the starts, not the precisions. Its L* is an early,
# half-stylised loss: its ratios check the machinery and the ranking, they are not those of 400 rows.
QUICK_ROWS = 48
QUICK_REFERENCE_ITERATIONS = 4
QUICK_CANDIDATES = ("photo", "adain-0.2", "adain-1")
CANDIDATE_ITERATIONS_FACTOR = 2  # a candidate gives up after this many times the reference's iterations
PROBE_ALPHAS = (0.2, 0.5, 1.0)  # the AdaIN strengths the candidates start from


@dataclass(frozen=True)
class Pair:
    """One content × style pair; pictures are ``sample:NAME`` (stylecore.samples) or ``skimage:FILE``."""

    name: str
    content: str
    styles: tuple
    blend: tuple = None  # style_blend_weights when there are several styles

    def describe(self):
        styles = " + ".join(f"{weight:g} × {style}" for weight, style in zip(self.blend, self.styles)) \
            if self.blend else self.styles[0]
        return f"{self.content} in the style of {styles}"


# Photos (a cat, a portrait, a still life, a launch) and a procedural landscape; styles of four kinds:
# painterly procedural swirls, a flat procedural mosaic, real textures (grey brick and gravel, a
# stained micrograph in colour) and a two-style blend.
SETS = {
    "default": (
        Pair("landscape-swirls", "sample:landscape", ("sample:swirls",)),
        Pair("landscape-gravel", "sample:landscape", ("skimage:gravel.png",)),
        Pair("chelsea-swirls", "skimage:chelsea.png", ("sample:swirls",)),
        Pair("chelsea-ihc", "skimage:chelsea.png", ("skimage:ihc.png",)),
        Pair("astronaut-mosaic", "skimage:astronaut.png", ("sample:mosaic",)),
        Pair("coffee-brick", "skimage:coffee.png", ("skimage:brick.png",)),
        Pair("rocket-gravel", "skimage:rocket.jpg", ("skimage:gravel.png",)),
        Pair("astronaut-swirls-brick", "skimage:astronaut.png", ("sample:swirls", "skimage:brick.png"), (0.5, 0.5)),
    ),
    # A dark photo (the Hubble deep field: mean 19 of 255, median 13) under a painterly and a bright textured
    # style: where L-BFGS pushes many pixels beyond black (docs/PERFORMANCE.md, "Pixels beyond their range").
    "dark": (
        Pair("hubble-swirls", "skimage:hubble_deep_field.jpg", ("sample:swirls",)),
        Pair("hubble-ihc", "skimage:hubble_deep_field.jpg", ("skimage:ihc.png",)),
    ),
}

_SAMPLES = {"landscape": landscape, "swirls": swirls, "mosaic": mosaic}


def skimage_data_folder():
    """scikit-image's bundled data folder, found without importing it (nothing is downloaded)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise ImageError("The benchmark set reads photos that ship with scikit-image: "
                         "pip install scikit-image==0.26.0 (requirements.txt).")
    return os.path.join(spec.submodule_search_locations[0], "data")


def set_size(rows):
    return rows, round(rows * ASPECT)


def picture(source, rows):
    """A picture of the set as uint8 RGB, rows × rows·4/3."""
    rows, cols = set_size(rows)
    kind, _, name = source.partition(":")
    if kind == "sample" and name in _SAMPLES:
        return _SAMPLES[name](rows, cols)
    if kind != "skimage":
        raise ImageError(f"Unknown picture {source!r}: give sample:NAME ({', '.join(_SAMPLES)}) or skimage:FILE.")
    path = os.path.join(skimage_data_folder(), name)
    if not os.path.isfile(path):
        raise ImageError(f"{name} is not in scikit-image's data folder {os.path.dirname(path)}; the set uses "
                         f"only the pictures its wheel ships.")
    return resize(centre_crop_to_aspect(load_image(path), rows, cols), rows, cols)


def pair_images(pair, rows):
    """(content, [styles]) of a pair at ``rows``."""
    return picture(pair.content, rows), [picture(style, rows) for style in pair.styles]


def select_pairs(set_name, names=None):
    """The pairs of a set, or those of ``names`` (in that order); ValueError on an unknown name."""
    pairs = SETS[set_name]
    if not names:
        return pairs
    known = {pair.name for pair in pairs}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"no pair {', '.join(unknown)} in the set {set_name!r}; choose among {', '.join(known)}")
    by_name = {pair.name: pair for pair in pairs}
    return tuple(by_name[name] for name in dict.fromkeys(names))


# -- running ---------------------------------------------------------------------------------------

class _Chase:
    """One configuration's stylize calls towards L*: one clock over all of them (the float32 judging
    left out), the evaluations summed, the first full-size report at L* or below kept."""

    def __init__(self, engine, content, styles, blend, judge, target, cap_seconds=None, lbfgs_memory=None):
        self.engine, self.content, self.styles, self.blend = engine, content, styles, blend
        self.judge, self.target, self.cap_seconds = judge, target, cap_seconds
        self.lbfgs_memory = lbfgs_memory  # L-BFGS's past steps (None: the engine's choice)
        self.clock = _Clock()
        self.evaluations = 0
        self.found = None  # (iteration, evaluations, wall, cpu, loss, image) at L* (the last report without L*)
        self.last = None
        self.over_cap = False

    def stylize(self, watch=True, start=None, first_iteration=0, **options):
        """One stylize call with these settings (``iterations``: the last iteration's number), judged at
        every full-size report when ``watch``; returns its TransferResult."""
        before = self.evaluations
        rows = self.content.shape[0]

        def callback(report):
            paused = self.clock.pause()
            wall, cpu = self.clock.read()
            self.evaluations = before + report.evaluations
            if report.rows == rows:
                loss = self.judge.loss(report.pixels())
                self.last = (report.iteration, self.evaluations, wall, cpu, loss, report.image())
                if self.target is None or loss <= self.target:
                    self.found = self.last
            self.over_cap = self.cap_seconds is not None and wall > self.cap_seconds
            self.clock.resume(paused)
            return self.target is not None and (self.found is not None or self.over_cap)

        result = self.engine.stylize(self.content, self.styles, DEFAULTS.replace(rows=rows, **options),
                                     callback if watch else None, style_blend_weights=self.blend, start=start,
                                     first_iteration=first_iteration, lbfgs_memory=self.lbfgs_memory)
        self.evaluations = before + result.evaluations
        return result

    @property
    def done(self):
        return self.found is not None or self.over_cap


def _one_size(rows, precision, **options):
    return dict(start_rows=rows, precision=precision, **options)


def _start_options(start):
    return dict(init="content") if start == "photo" else dict(init="adain", adain_alpha=start)


def _start_name(start):
    return "photo" if start == "photo" else f"adain-{start:g}"


CANDIDATES = (
    ("photo", "photo start, one size (the defaults' start)"),
    ("adain-0.2", "AdaIN start 0.2, one size (the AdaIN start's default strength)"),
    ("adain-0.5", "AdaIN start 0.5, one size"),
    ("adain-1", "AdaIN start 1, one size"),
    ("coarse-to-fine", "coarse to fine from the photo (half size up)"),
    ("per-pair", "per-pair choice: the start of lowest loss after 1 iteration"),
)


def select_candidates(keys=None):
    """The keys of ``keys`` in CANDIDATES' order (None: all); ValueError on an unknown key."""
    known = [key for key, _ in CANDIDATES]
    if not keys:
        return tuple(known)
    unknown = [key for key in keys if key not in known]
    if unknown:
        raise ValueError(f"no candidate {', '.join(unknown)}; choose among {', '.join(known)}")
    return tuple(key for key in known if key in keys)


def run_candidate(key, chase, rows, precision, budget, reference_iterations):
    """Run candidate ``key`` in ``chase`` for at most ``budget`` iterations; return extra facts for the report."""
    if key in ("photo",) or key.startswith("adain-"):
        start = "photo" if key == "photo" else float(key.split("-", 1)[1])
        chase.stylize(iterations=budget, **_one_size(rows, precision, **_start_options(start)))
        return {}
    if key == "coarse-to-fine":
        # The scales are planned over the reference's iterations (40 % of them at the full size);
        # a run not at L* by then goes on at the full size from where it ended.
        start_rows = max(16, rows // 2)
        result = chase.stylize(iterations=reference_iterations, start_rows=start_rows, precision=precision,
                               init="content")
        if not chase.done and result.last_iteration < budget:
            chase.stylize(iterations=budget, first_iteration=result.last_iteration, start=result.pixels,
                          **_one_size(rows, precision, init="iteration"))
        return {"start_rows": start_rows}
    if key == "per-pair":
        # The test is part of the candidate's cost: its clock runs through the probes.
        probes = {}
        for start in ("photo",) + PROBE_ALPHAS:
            result = chase.stylize(watch=False, iterations=1, **_one_size(rows, precision, **_start_options(start)))
            probes[_start_name(start)] = (result.loss, result.pixels)
        chosen = min(probes, key=lambda name: probes[name][0])
        chase.stylize(iterations=budget, first_iteration=1, start=probes[chosen][1],
                      **_one_size(rows, precision, init="iteration"))
        return {"chosen": chosen, "probe_losses": {name: loss for name, (loss, _) in probes.items()}}
    raise ValueError(f"unknown candidate {key!r}")


def warm_up(engine, content, styles, blend, precisions, scale_rows, warmed):
    """Trace the engine's functions at every size and precision a pair's runs use, once per shape."""
    for precision in precisions:
        for size in scale_rows:
            key = (precision, size, content.shape)
            if key not in warmed:
                engine.stylize(content, styles, DEFAULTS.replace(rows=size, iterations=1, precision=precision,
                                                                 init="adain", start_rows=size),
                               style_blend_weights=blend)
                warmed.add(key)


def run_pair(engine, pair, rows, reference_iterations, give_up_below, weights, warmed, images=None, candidates=None,
             precision="auto"):
    """The reference and the ``candidates`` (keys; None: all) on one pair, side by side; a dict for the report.
    The candidates compute in ``precision`` as a run asking for it would (``auto``: what a user's run gets)."""
    candidates = select_candidates(candidates)
    content, styles = pair_images(pair, rows)
    blend = list(pair.blend) if pair.blend else None
    auto = engine.resolve_precision(precision, content.shape[0] * content.shape[1])
    judge = EngineObjective(engine, content, styles, weights, "float32", blend=blend)
    budget = CANDIDATE_ITERATIONS_FACTOR * reference_iterations
    coarse = [size for size, _ in scale_plan(rows, max(16, rows // 2), reference_iterations)]
    warm_up(engine, content, styles, blend, ("float32", auto), [rows], warmed)
    if "coarse-to-fine" in candidates:
        warm_up(engine, content, styles, blend, (auto,), coarse, warmed)

    # The first engine: scipy's default L-BFGS memory (10 steps).
    reference = _Chase(engine, content, styles, blend, judge, None, lbfgs_memory=FIRST_ENGINE_LBFGS_MEMORY)
    reference.stylize(iterations=reference_iterations, **_one_size(rows, "float32", init="content"))
    ref_iteration, ref_evaluations, ref_wall, ref_cpu, target, ref_image = reference.found
    cap = ref_wall / give_up_below if give_up_below else None
    report = {
        "pair": pair.name, "description": pair.describe(), "content": pair.content, "styles": list(pair.styles),
        "blend": list(pair.blend) if pair.blend else None,
        "reference": {"loss": target, "iteration": ref_iteration, "evaluations": ref_evaluations,
                      "wall_s": ref_wall, "cpu_s": ref_cpu},
        "candidates": [],
    }
    print_reference(pair, report["reference"])
    saved = {"content": content, "reference": ref_image}
    saved.update({f"style-{i + 1}" if len(styles) > 1 else "style": style for i, style in enumerate(styles)})
    for key, label in CANDIDATES:
        if key not in candidates:
            continue
        engine.forget_encodings()  # each candidate encodes its own AdaIN inputs (the warm-up cached them)
        chase = _Chase(engine, content, styles, blend, judge, target, cap)
        extra = run_candidate(key, chase, rows, auto, budget, reference_iterations)
        reached = chase.found is not None
        iteration, evaluations, wall, cpu, loss, image = chase.found if reached else chase.last
        report["candidates"].append(dict(
            key=key, label=label, precision=auto, reached=reached,
            iteration=iteration if reached else None, evaluations=evaluations if reached else None,
            wall_s=wall, cpu_s=cpu, loss=loss,
            wall_ratio=ref_wall / wall if reached else None, cpu_ratio=ref_cpu / cpu if reached else None,
            evaluation_ratio=ref_evaluations / evaluations if reached else None,
            stopped_at_iteration=None if reached else iteration, **extra))
        print_candidate(report["candidates"][-1])
        saved[key if reached else f"{key}-not-reached"] = image
    if images:
        os.makedirs(images, exist_ok=True)
        for name, image in saved.items():
            Image.fromarray(image).save(os.path.join(images, f"{pair.name}-{name}.png"))
    return report


# -- the report ------------------------------------------------------------------------------------

def _ranked_median(values, higher_is_better):
    """Median where None (L* not reached) ranks worst; None when the median falls on one."""
    worst = -math.inf if higher_is_better else math.inf
    ranked = sorted(worst if value is None else value for value in values)
    middle = statistics.median(ranked)
    return None if math.isinf(middle) or math.isnan(middle) else middle


def summarise(pairs):
    """Per candidate over the pairs: how many reached L*, the median and the worst speed-up and iteration."""
    summary = {}
    for key, label in CANDIDATES:
        rows = [(pair["pair"], candidate) for pair in pairs for candidate in pair["candidates"]
                if candidate["key"] == key]
        if not rows:
            continue
        ratios = [candidate["wall_ratio"] for _, candidate in rows]
        iterations = [candidate["iteration"] for _, candidate in rows]
        worst_ratio = min(rows, key=lambda row: -1 if row[1]["wall_ratio"] is None else row[1]["wall_ratio"])
        worst_iteration = max(rows, key=lambda row: math.inf if row[1]["iteration"] is None else row[1]["iteration"])
        summary[key] = {
            "label": label, "pairs": len(rows), "reached": sum(c["reached"] for _, c in rows),
            "median_wall_ratio": _ranked_median(ratios, higher_is_better=True),
            "worst_wall_ratio": worst_ratio[1]["wall_ratio"], "worst_wall_ratio_pair": worst_ratio[0],
            "median_iteration": _ranked_median(iterations, higher_is_better=False),
            "worst_iteration": worst_iteration[1]["iteration"], "worst_iteration_pair": worst_iteration[0],
            "median_cpu_ratio": _ranked_median([c["cpu_ratio"] for _, c in rows], higher_is_better=True),
            # Load does not change it; it counts a coarse evaluation as a full-size one, and no AdaIN pass.
            "median_evaluation_ratio": _ranked_median([c["evaluation_ratio"] for _, c in rows],
                                                      higher_is_better=True),
        }
    return summary


def machine():
    """What the figures hold for: the CPU model and its bfloat16 instructions."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags.update(value.split())
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "bfloat16_flags": sorted(flags & {"avx512_bf16", "amx_bf16"})}


def _ratio(value):
    return "-" if value is None else f"{value:.2f}x"


def _count(value):
    return "no" if value is None else f"{value:g}"


def print_reference(pair, ref):
    """The pair's heading and its reference, as soon as it has run."""
    print(f"\n  {pair.name}: {pair.describe()}")
    print(f"    reference: L* = {ref['loss']:.4f} at iteration {ref['iteration']}, {ref['evaluations']} evaluations, "
          f"{ref['wall_s']:.0f} s wall, {ref['cpu_s']:.0f} s CPU")
    print(f"    {'candidate':<64} {'it at L*':>8} {'evals':>6} {'wall s':>7} {'speed-up':>8} {'CPU s':>6} "
          f"{'speed-up':>8}")


def print_candidate(c):
    label = c["label"] + (f" (chose {c['chosen']})" if c.get("chosen") else "")
    tail = "" if c["reached"] else f"  (not reached: {c['loss']:.4f} at iteration {c['stopped_at_iteration']})"
    print(f"    {label:<64} {_count(c['iteration']):>8} {_count(c['evaluations']):>6} {c['wall_s']:7.1f} "
          f"{_ratio(c['wall_ratio']):>8} {c['cpu_s']:6.0f} {_ratio(c['cpu_ratio']):>8}{tail}")


def print_tables(report):
    pairs, summary = report["pairs"], report["summary"]
    keys = [key for key, _ in CANDIDATES if key in summary]
    width = max(len(pair["pair"]) for pair in pairs) + 2
    print(f"\nper pair: the reference's L*, then each candidate's iteration at L* / wall-clock speed-up "
          f"(reference wall ÷ candidate wall; 'no' = L* not reached)")
    print(f"  {'pair':<{width}} {'L*':>8}" + "".join(f" {key:>16}" for key in keys))
    for pair in pairs:
        cells = {c["key"]: f"{_count(c['iteration'])} / {_ratio(c['wall_ratio'])}" for c in pair["candidates"]}
        print(f"  {pair['pair']:<{width}} {pair['reference']['loss']:8.4f}"
              + "".join(f" {cells.get(key, ''):>16}" for key in keys))
    print(f"\nover {len(pairs)} pairs: median and worst (the pair in brackets)")
    print(f"  {'candidate':<16} {'reached':>8} {'median it':>10} {'worst it':>30} {'median speed-up':>16} "
          f"{'worst speed-up':>32} {'median CPU':>11} {'median evals':>13}")
    for key in keys:
        s = summary[key]
        worst_it = f"{_count(s['worst_iteration'])} ({s['worst_iteration_pair']})"
        worst_ratio = f"{_ratio(s['worst_wall_ratio'])} ({s['worst_wall_ratio_pair']})"
        print(f"  {key:<16} {s['reached']:>4}/{s['pairs']:<3} {_count(s['median_iteration']):>10} {worst_it:>30} "
              f"{_ratio(s['median_wall_ratio']):>16} {worst_ratio:>32} {_ratio(s['median_cpu_ratio']):>11} "
              f"{_ratio(s['median_evaluation_ratio']):>13}")
    print("  (speed-ups are the reference's wall seconds, CPU seconds or evaluations over the candidate's, at L*)")


def run_set(engine, args, weights):
    """Run the set's pairs (``args.pairs`` or all) and print, and write ``args.json``, the report."""
    pairs = select_pairs(args.set, args.pairs)
    rows, cols = set_size(args.rows)
    precision = getattr(args, "precision", "auto")
    auto = engine.resolve_precision(precision, rows * cols)
    report = {
        "set": args.set, "quick": bool(args.quick), "rows": rows, "cols": cols,
        "reference_iterations": args.reference_iterations,
        "candidate_iterations": CANDIDATE_ITERATIONS_FACTOR * args.reference_iterations,
        "candidates": list(select_candidates(args.candidates)),
        "give_up_below": args.give_up_below, "precision": auto, "precision_asked": precision, "machine": machine(),
        "backend": engine.backend, "solver": engine.solver,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"), "load_average_at_start": _load_average(),
        "pairs": [], "summary": {},
    }
    wall, cpu = time.perf_counter(), time.process_time()
    m = report["machine"]
    print(f"time to quality on the set {args.set!r} ({len(pairs)} pairs{', quick mode' if args.quick else ''}) "
          f"at {rows}x{cols} on {engine.device}: {m['cpu']}, {m['cores']} cores, bfloat16 instructions: "
          f"{', '.join(m['bfloat16_flags']) or 'none'}")
    print(f"  reference: float32, one size, photo start, L-BFGS keeping 10 steps (the first engine), "
          f"{args.reference_iterations} iterations; its last loss is L*")
    wall_cap = f" or after {1 / args.give_up_below:g} times the reference's wall time" if args.give_up_below else ""
    print(f"  candidates: {', '.join(report['candidates'])}, in {auto} ({precision}), judged by the full-size float32 loss outside the clock; each stops at L* "
          f"or after {report['candidate_iterations']} iterations{wall_cap}")
    print("  iterations and evaluations at L* do not depend on the machine's load; seconds do (they are compared "
          "within a pair, run minutes apart)")
    warmed = set()
    for pair in pairs:
        result = run_pair(engine, pair, args.rows, args.reference_iterations, args.give_up_below, weights, warmed,
                          images=args.images, candidates=report["candidates"], precision=precision)
        report["pairs"].append(result)
        report["summary"] = summarise(report["pairs"])
        if args.json:
            _write_json(args.json, report)
    report.update(finished=time.strftime("%Y-%m-%d %H:%M:%S"), load_average_at_end=_load_average(),
                  total_wall_s=time.perf_counter() - wall, total_cpu_s=time.process_time() - cpu)
    print_tables(report)
    print(f"\nthe whole set took {report['total_wall_s'] / 60:.1f} min wall, {report['total_cpu_s'] / 60:.1f} min CPU "
          f"(judging and warming up included); load average {report['load_average_at_start']} at the start, "
          f"{report['load_average_at_end']} at the end")
    _finish(args, report, "pictures (inputs, the reference, each candidate at L*)")
    return report


def _finish(args, report, pictures):
    """Write the finished report to ``--json`` and say where it and the ``--images`` pictures went."""
    if args.json:
        _write_json(args.json, report)
        print(f"\nreport written to {args.json}")
    if args.images:
        print(f"{pictures} written to {args.images}")


def _load_average():
    """The 1-minute load average (other processes sharing the cores), None where unknown."""
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _write_json(path, report):
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, "w") as out:
        json.dump(report, out, indent=1, default=lambda value: float(value) if isinstance(value, np.floating) else str(value))


# -- part (j): how many iterations the default run needs, over the set -----------------------------

WITHIN = (0.10, 0.05, 0.02)  # part (j): how close to the run's last loss counts as there
SLOWS = (0.05, 0.02)  # part (j): five more iterations gain less than this fraction of the loss from here
SLOW_SPAN = 5
CURVE_MARKS = (5, 10, 15, 20, 25, 30, 40)  # part (j)'s table: the excess over the last loss at these


def _first_within(losses, last, fraction):
    """The first iteration whose loss is at most (1 + fraction) × ``last``."""
    return min(iteration for iteration, loss in losses.items() if loss <= (1 + fraction) * last)


def _first_slow(losses, gain, span=SLOW_SPAN):
    """The first iteration from which ``span`` more lower the loss by less than ``gain`` (a fraction of
    it); None if there is none before the run's end."""
    return next((i for i in sorted(losses) if i + span in losses and losses[i + span] > (1 - gain) * losses[i]), None)


def picture_change(picture, other):
    """The mean absolute difference of two 8-bit pictures' channels, 0-255."""
    return float(np.mean(np.abs(picture.astype(np.int16) - other.astype(np.int16))))


def derive_curve(pair):
    """Fill in what a pair's figures follow from its losses (JSON keys: iteration numbers as strings)."""
    losses = {int(i): loss for i, loss in pair["losses"].items()}
    evaluations = {int(i): count for i, count in pair["evaluations"].items()}
    last_iteration = max(losses)
    last = losses[last_iteration]
    within = {f: _first_within(losses, last, f) for f in WITHIN}
    pair.update(
        iterations=last_iteration, last_loss=last,
        excess_at_default=losses[min(DEFAULTS.iterations, last_iteration)] / last - 1,
        within={f"{f:g}": first for f, first in within.items()},
        evaluations_within={f"{f:g}": evaluations[first] for f, first in within.items()},
        slows={f"{g:g}": _first_slow(losses, g) for g in SLOWS},
    )
    return pair


def run_iteration_curve(engine, pair, rows, iterations, weights, warmed, images=None, lbfgs_memory=None,
                        precision="auto"):
    """The default run (every setting at its default but the size) on one pair for ``iterations``, its
    full-size loss judged in float32 at every iteration; a dict for the report. ``lbfgs_memory``: the
    past steps L-BFGS keeps (None: the engine's choice, as in a user's run); ``precision``: the run's
    (``auto``, a user's run's; ``float32`` with 10 steps is the first engine's reference of part (c))."""
    content, styles = pair_images(pair, rows)
    blend = list(pair.blend) if pair.blend else None
    settings = DEFAULTS.replace(rows=rows, start_rows=rows, iterations=iterations, precision=precision)
    precision = engine.resolve_precision(settings.precision, content.shape[0] * content.shape[1])
    judge = EngineObjective(engine, content, styles, weights, "float32", blend=blend)
    warm_up(engine, content, styles, blend, (precision,), [rows], warmed)
    engine.forget_encodings()
    keep = {mark for mark in CURVE_MARKS + (DEFAULTS.iterations,) if mark < iterations} | {iterations}
    losses, evaluations, pictures, clock = {}, {}, {}, _Clock()

    def watch(report):
        paused = clock.pause()
        if report.rows == rows:
            pixels = report.pixels()
            losses[report.iteration] = judge.loss(pixels)
            evaluations[report.iteration] = report.evaluations
            if report.iteration in keep:
                pictures[report.iteration] = report.image()
                if images:
                    os.makedirs(images, exist_ok=True)
                    Image.fromarray(pictures[report.iteration]).save(
                        os.path.join(images, f"{pair.name}-it{report.iteration}.png"))
        clock.resume(paused)

    result = engine.stylize(content, styles, settings, watch, style_blend_weights=blend, lbfgs_memory=lbfgs_memory)
    wall, cpu = clock.read()
    final = pictures[max(losses)]
    return derive_curve({
        "pair": pair.name, "description": pair.describe(), "precision": precision,
        # The iteration after which a low-precision run went on in float32 (its L-BFGS converged), or None.
        "refined_at": result.refined_at,
        "lbfgs_memory": lbfgs_memory or engine_lbfgs_memory(content.size), "wall_s": wall, "cpu_s": cpu,
        "losses": {str(i): losses[i] for i in sorted(losses)},
        "evaluations": {str(i): evaluations[i] for i in sorted(evaluations)},
        # How far each kept picture is from the last one a person sees: the mean absolute difference of
        # its 8-bit channels (0-255).
        "change_to_last": {str(i): picture_change(pictures[i], final) for i in sorted(pictures)},
    })


def _median_and_worst(pairs, value, worst_of=max):
    """{'median', 'worst', 'worst_pair'} of ``value(pair)`` over the pairs; a None value ranks worst."""
    ranked = [(math.inf if value(pair) is None else value(pair), pair["pair"]) for pair in pairs]
    worst = worst_of(ranked)
    middle = statistics.median(number for number, _ in ranked)
    return {"median": None if math.isinf(middle) else middle,
            "worst": None if math.isinf(worst[0]) else worst[0], "worst_pair": worst[1]}


def summarise_curves(pairs):
    """Over the pairs: the median and worst of each figure of ``derive_curve`` and of the picture change."""
    summary = {f"within_{f:g}": _median_and_worst(pairs, lambda pair, f=f: pair["within"][f"{f:g}"])
               for f in WITHIN}
    summary.update({f"slows_{g:g}": _median_and_worst(pairs, lambda pair, g=g: pair["slows"][f"{g:g}"])
                    for g in SLOWS})
    summary["excess_at_default"] = _median_and_worst(pairs, lambda pair: pair["excess_at_default"])
    default = str(min(DEFAULTS.iterations, min(pair["iterations"] for pair in pairs)))
    if all(default in pair.get("change_to_last", {}) for pair in pairs):
        summary["change_at_default"] = _median_and_worst(pairs, lambda pair: pair["change_to_last"][default])
    return summary


def _marks(iterations, extra=()):
    """The table's iterations: every fifth, the default's last and ``extra`` (e.g. an older default's)."""
    return sorted({mark for mark in CURVE_MARKS + (DEFAULTS.iterations,) + tuple(extra) if mark < iterations})


def print_curve_header(pairs, iterations, extra=()):
    width = max(len(name) for name in pairs) + 2
    print(f"  per pair: the last loss, how far above it the loss is at each iteration, the first iteration within "
          f"{', '.join(f'{100 * f:g} %' for f in WITHIN)} of it, and the first from which {SLOW_SPAN} more gain "
          f"less than {' and '.join(f'{100 * g:g} %' for g in SLOWS)}")
    print(f"  (under each pair: how far the picture at that iteration is from the last one, the mean absolute "
          f"difference of its 8-bit channels, 0-255)")
    print(f"  {'pair':<{width}} {'last':>8} {'its':>5}" + "".join(f"{'it ' + str(m):>8}" for m in _marks(iterations, extra))
          + "".join(f"{f'{100 * f:g}%':>6}" for f in WITHIN) + "".join(f"{f'<{100 * g:g}%':>6}" for g in SLOWS))
    return width


def print_curve(pair, width, iterations, wall="", extra=()):
    """A pair's row and its picture-change row; ``wall``: e.g. "1328 s wall, " where the run was timed."""
    last, marks = pair["last_loss"], _marks(iterations, extra)
    refined = f", float32 after {pair['refined_at']}" if pair.get("refined_at") is not None else ""
    note = f"   ({wall}{pair['precision']}{refined})"
    cells = "".join(f"{100 * (pair['losses'][str(m)] / last - 1):7.1f}%" if str(m) in pair["losses"] else f"{'-':>8}"
                    for m in marks)
    counts = "".join(f"{_count(pair['within'][f'{f:g}']):>6}" for f in WITHIN)
    counts += "".join(f"{_count(pair['slows'][f'{g:g}']):>6}" for g in SLOWS)
    change = "".join(f"{pair['change_to_last'][str(m)]:8.1f}" if str(m) in pair.get("change_to_last", {})
                     else f"{'-':>8}" for m in marks)
    print(f"  {pair['pair']:<{width}} {last:8.4f} {pair['iterations']:>5}{cells}{counts}{note}")
    print(f"  {'  picture change':<{width}} {'':>8} {'':>5}{change}")


def print_curve_summary(report):
    summary, pairs = report["summary"], report["pairs"]
    print(f"\nover {len(pairs)} pairs, median and worst (the pair in brackets; 'no' = not within the run)")
    for f in WITHIN:
        s = summary[f"within_{f:g}"]
        print(f"  first iteration within {100 * f:>2g} % of the last loss: median {_count(s['median'])}, "
              f"worst {_count(s['worst'])} ({s['worst_pair']})")
    for g in SLOWS:
        s = summary[f"slows_{g:g}"]
        print(f"  first iteration from which {SLOW_SPAN} more gain less than {100 * g:g} %: median "
              f"{_count(s['median'])}, worst {_count(s['worst'])} ({s['worst_pair']})")
    s = summary["excess_at_default"]
    print(f"  at the default's {DEFAULTS.iterations} iterations: median {100 * s['median']:.1f} % above the last "
          f"loss, worst {100 * s['worst']:.1f} % ({s['worst_pair']})")
    if "change_at_default" in summary:
        s = summary["change_at_default"]
        print(f"  the picture at the default's last iteration differs from the last one by {s['median']:.1f} of 255 "
              f"(median; worst {s['worst']:.1f}, {s['worst_pair']})")


def run_iterations_set(engine, args, weights):
    """Part (j) over the set's pairs (``args.pairs`` or all): print, and write ``args.json``, the curves."""
    pairs = select_pairs(args.set, args.pairs)
    rows, cols = set_size(args.rows)
    iterations = args.reference_iterations
    report = {
        "set": args.set, "part": "iterations", "rows": rows, "cols": cols, "iterations": iterations,
        "lbfgs_memory_asked": args.lbfgs_memory, "precision_asked": args.precision,
        "default_iterations": DEFAULTS.iterations, "within": list(WITHIN), "machine": machine(),
        "backend": engine.backend, "solver": engine.solver, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "load_average_at_start": _load_average(), "pairs": [], "summary": {},
    }
    m = report["machine"]
    print(f"iterations on the set {args.set!r} ({len(pairs)} pairs) at {rows}x{cols} on {engine.device}: {m['cpu']}, "
          f"{m['cores']} cores, bfloat16 instructions: {', '.join(m['bfloat16_flags']) or 'none'}")
    memory = f"L-BFGS keeping {args.lbfgs_memory} steps" if args.lbfgs_memory else "L-BFGS memory the engine's"
    precision = "" if args.precision == "auto" else f", in {args.precision}"
    print(f"  the default run (every setting at its default but the size; {memory}{precision}) for {iterations} iterations, "
          f"its full-size loss judged in float32 at every iteration; iterations do not depend on the machine's load")
    width = print_curve_header([pair.name for pair in pairs], iterations)
    warmed = set()
    for pair in pairs:
        result = run_iteration_curve(engine, pair, args.rows, iterations, weights, warmed, images=args.images,
                                     lbfgs_memory=args.lbfgs_memory, precision=args.precision)
        report["pairs"].append(result)
        report["summary"] = summarise_curves(report["pairs"])
        print_curve(result, width, iterations, f"{result['wall_s']:.0f} s wall, ")
        if args.json:
            _write_json(args.json, report)
    print_curve_summary(report)
    report.update(finished=time.strftime("%Y-%m-%d %H:%M:%S"), load_average_at_end=_load_average())
    _finish(args, report, f"pictures at iterations {', '.join(map(str, _marks(iterations) + [iterations]))}")
    return report


def _read_iteration_reports(paths, only=None):
    """Part (j)'s JSON reports and their pairs by name, each pair's figures derived from its losses
    (a pair in several reports: the last one counts); with ``only`` (pair names), just those pairs, and
    only the reports that hold one of them."""
    by_pair, reports = {}, []
    for path in paths:
        with open(path) as source:
            report = json.load(source)
        if report.get("part") != "iterations":
            raise ValueError(f"{path} is not a report of part (j) (--part iterations)")
        kept = [pair for pair in report["pairs"] if not only or pair["pair"] in only]
        if kept:
            reports.append(report)
        for pair in kept:
            by_pair[pair["pair"]] = derive_curve(_with_refined_at(dict(pair)))
    missing = [name for name in only or () if name not in by_pair]
    if missing:
        raise ValueError(f"no run of {', '.join(missing)} in {', '.join(paths)}")
    return reports, by_pair


def _with_refined_at(pair):
    """``pair`` with its ``refined_at``; a report written before the field existed (3 Dec 2026) gets it from
    the evaluation counts, marked ``refined_at_inferred``. A low-precision run at one size reports every
    20 evaluations; where L-BFGS converged, the next iteration is due 20 evaluations after the float32
    evaluation of the best image, so the only step between two iterations that is not 20 is the one
    after the switch (``_Run.refine``)."""
    if "refined_at" in pair:
        return pair
    pair["refined_at"] = None
    if pair["precision"] != "float32":
        counts = sorted((int(i), count) for i, count in pair["evaluations"].items())
        steps = [(before, count - previous) for (before, previous), (_, count) in zip(counts, counts[1:])]
        pair["refined_at"] = next((before for before, step in steps if step != EVALUATIONS_PER_ITERATION), None)
        pair["refined_at_inferred"] = True
    return pair


def _low_precision_evaluations(run):
    """How many of ``run``'s evaluations computed in its low precision: none in float32, all (inf) where it
    never switched, else those to its L-BFGS's convergence (the evaluations at the iteration after the
    switch less the float32 evaluation of the best image and the next iteration's 20)."""
    if run["precision"] == "float32":
        return 0
    if run.get("refined_at") is None:
        return math.inf
    after = run["evaluations"].get(str(run["refined_at"] + 1))
    return math.inf if after is None else after - EVALUATIONS_PER_ITERATION - 1


def _time_in_float32_evaluations(run, evaluations, speedup):
    """The time of ``run``'s first ``evaluations`` in float32 evaluations: each low-precision one counts
    1/``speedup`` of a float32 one (``speedup``: float32's seconds per evaluation over the low precision's,
    measured side by side)."""
    low = min(evaluations, _low_precision_evaluations(run))
    return low / speedup + (evaluations - low)


def summarise_iteration_reports(paths, images=None, only=None):
    """Part (j)'s table again from its JSON reports (runs of some pairs each, e.g. over several sessions):
    the figures are recomputed from each pair's losses, the picture change from ``images`` (the runs'
    ``--images`` folder) where a report lacks it. A pair in several reports: the last one counts.
    ``only``: just these pairs."""
    reports, by_pair = _read_iteration_reports(paths, only)
    shapes = {(r["rows"], r["cols"], r["iterations"], r.get("lbfgs_memory_asked")) for r in reports}
    if len(shapes) != 1:
        raise ValueError(f"the reports ran different sizes, iterations or L-BFGS memories: {sorted(shapes, key=str)}")
    rows, cols, iterations, _ = shapes.pop()
    # The default of when each report ran, where it differs from today's: its pictures were kept there.
    extra = sorted({r["default_iterations"] for r in reports} - {DEFAULTS.iterations})
    pairs = list(by_pair.values())
    for pair in pairs:
        if images and not pair.get("change_to_last"):
            pair["change_to_last"] = _changes_from_pictures(images, pair["pair"], pair["iterations"], extra)
    machines = sorted({f"{r['machine']['cpu']} ({', '.join(r['machine']['bfloat16_flags']) or 'no bfloat16'})"
                       for r in reports})
    print(f"iterations on {len(pairs)} pairs at {rows}x{cols}, {iterations} iterations, from {len(reports)} "
          f"report(s) of {', '.join(machines)}")
    if extra:
        print(f"  (the reports ran when the default was {', '.join(map(str, extra))} iterations: that column too)")
    width = print_curve_header([pair["pair"] for pair in pairs], iterations, extra)
    for pair in pairs:
        print_curve(pair, width, iterations, extra=extra)
    merged = {"pairs": pairs, "summary": summarise_curves(pairs)}
    print_curve_summary(merged)
    return merged


def _iteration_reaching(losses, target):
    """The first (fractional, linearly interpolated) iteration at which ``losses`` reach ``target``; None if never."""
    previous = None
    for iteration in sorted(losses):
        if losses[iteration] <= target:
            if previous is None:
                return float(iteration)
            before = losses[previous]
            return previous + (iteration - previous) * (before - target) / (before - losses[iteration])
        previous = iteration
    return None


def _run_label(reports, by_pair):
    memories = sorted({pair.get("lbfgs_memory") for pair in by_pair.values()} - {None})
    asked = {report.get("lbfgs_memory_asked") for report in reports}
    steps = "/".join(map(str, memories)) or "?"
    precisions = "/".join(sorted({pair["precision"] for pair in by_pair.values()}))
    return f"L-BFGS memory {steps}" + (" (the engine's)" if asked == {None} else "") + f", {precisions}"


def _interpolate(values, iteration):
    """``values`` (by whole iteration) at a fractional ``iteration``, linearly between its neighbours."""
    iterations = sorted(values)
    return float(np.interp(iteration, iterations, [values[i] for i in iterations]))


def compare_iteration_reports(paths, against, at=None, speedup=None, only=None):
    """Part (j)'s runs in ``paths`` against the runs of the same pairs in ``against`` (e.g. another L-BFGS
    memory, or another commit), iteration by iteration: how far each loss is above (+) or below (-) the
    other's at every fifth iteration, and the (interpolated) iteration and evaluation count at which the
    other run reaches this one's loss at iteration ``at`` (default: the default's last iteration; the first
    runs' last, e.g. 50, makes it the reference's L* of part (c)), with the ratio of evaluations. Losses and
    evaluations do not depend on the machine's load, so the runs need not have run side by side.
    ``speedup`` (float32's seconds per evaluation over bfloat16's, measured side by side with ``--part
    timing``) adds the ratio of times: each run's evaluations in bfloat16 (up to its switch to float32,
    ``refined_at``) count 1/``speedup`` of a float32 one. ``only``: just these pairs (e.g. one pair of a
    report that ran several)."""
    reports, mine = _read_iteration_reports(paths, only)
    other_reports, other = _read_iteration_reports(against, only)
    sizes = {(r["rows"], r["cols"]) for r in reports + other_reports}
    if len(sizes) != 1:
        raise ValueError(f"the reports ran different sizes: {sorted(sizes)}")
    missing = sorted(set(mine) - set(other))
    if missing:
        raise ValueError(f"no run to compare with for {', '.join(missing)} in {', '.join(against)}")
    (rows, cols), = sizes
    shortest = min(pair["iterations"] for pair in mine.values())
    if at is not None and not 1 <= at <= shortest:
        raise ValueError(f"--at-iteration {at}: the first runs have iterations 1 to {shortest}")
    at = at or min(DEFAULTS.iterations, shortest)
    marks = [mark for mark in CURVE_MARKS if mark <= shortest]
    print(f"{_run_label(reports, mine)} ({', '.join(paths)}) against {_run_label(other_reports, other)} "
          f"({', '.join(against)}), {len(mine)} pairs at {rows}x{cols}; each run's full-size loss judged in float32")
    print(f"  per pair: how far the first run's loss is above (+) or below (-) the second's at each iteration, the "
          f"iteration and evaluations at which the second reaches the first's loss at iteration {at}, and the "
          f"first's evaluations to it over the second's (above 1: the second needs fewer)")
    width = max(len(name) for name in mine) + 2
    if speedup:
        print(f"  and the first's time to it over the second's, a bfloat16 evaluation counted 1/{speedup:g} of a "
              f"float32 one (above 1: the second is sooner)")
    print(f"  {'pair':<{width}}" + "".join(f"{'it ' + str(m):>8}" for m in marks)
          + f"{'reached at':>12}{'evals':>8}{'ratio':>7}" + (f"{'time':>7}" if speedup else ""))
    rows_out = []
    for name, pair in mine.items():
        theirs = other[name]
        differences = {m: pair["losses"][str(m)] / theirs["losses"][str(m)] - 1 for m in marks
                       if str(m) in pair["losses"] and str(m) in theirs["losses"]}
        reached = _iteration_reaching({int(i): loss for i, loss in theirs["losses"].items()},
                                      pair["losses"][str(at)])
        evaluations = None if reached is None else _interpolate(
            {int(i): count for i, count in theirs["evaluations"].items()}, reached)
        ratio = None if reached is None else pair["evaluations"][str(at)] / evaluations
        time_ratio = None if reached is None or not speedup else (
            _time_in_float32_evaluations(pair, pair["evaluations"][str(at)], speedup)
            / _time_in_float32_evaluations(theirs, evaluations, speedup))
        notes = [f"{label}: {run['precision']}" + (
            f", float32 after {run['refined_at']}" + (" (from its evaluation counts)" if run.get("refined_at_inferred")
                                                      else "") if run.get("refined_at") is not None else "")
            for label, run in (("first", pair), ("second", theirs))]
        rows_out.append({"pair": name, "differences": differences, "reached_at": reached,
                         "evaluations": evaluations, "evaluation_ratio": ratio, "time_ratio": time_ratio})
        figures = (f"{reached:12.1f}{evaluations:8.0f}{ratio:7.2f}" + (f"{time_ratio:7.2f}" if speedup else "")
                   if reached is not None else f"{'no':>12}{'':>{22 if speedup else 15}}")
        print(f"  {name:<{width}}" + "".join(f"{100 * differences[m]:+7.1f}%" if m in differences else f"{'-':>8}"
                                              for m in marks) + figures + f"   ({'; '.join(notes)})")
    differences = sorted((row["differences"][at], row["pair"]) for row in rows_out if at in row["differences"])
    reached = [row["reached_at"] for row in rows_out]
    print(f"\nover {len(rows_out)} pairs")
    if differences:
        print(f"  at iteration {at} the first run is {100 * statistics.median(d for d, _ in differences):+.1f} % "
              f"(median) from the second; range {100 * differences[0][0]:+.1f} % ({differences[0][1]}) to "
              f"{100 * differences[-1][0]:+.1f} % ({differences[-1][1]})")
    if None not in reached:
        ratios = [row["evaluation_ratio"] for row in rows_out]
        print(f"  the second reaches the first's loss at iteration {at} at iteration {statistics.median(reached):.1f} "
              f"(median), {min(reached):.1f}-{max(reached):.1f}; the first's evaluations over the second's: "
              f"{statistics.median(ratios):.2f} (median), {min(ratios):.2f}-{max(ratios):.2f}")
        if speedup:
            times = [row["time_ratio"] for row in rows_out]
            print(f"  the first's time to it over the second's: {statistics.median(times):.2f} (median), "
                  f"{min(times):.2f}-{max(times):.2f}")
    else:
        print(f"  the second never reaches the first's loss at iteration {at} on "
              f"{', '.join(row['pair'] for row in rows_out if row['reached_at'] is None)}")
    return {"at": at, "pairs": rows_out}


def _changes_from_pictures(folder, name, last_iteration, extra=()):
    """The picture change to the last picture, from the pictures a run of part (j) kept in ``folder``."""
    def read(iteration):
        path = os.path.join(folder, f"{name}-it{iteration}.png")
        return np.asarray(Image.open(path).convert("RGB")) if os.path.isfile(path) else None

    final = read(last_iteration)
    if final is None:
        return {}
    kept = {mark: read(mark) for mark in _marks(last_iteration, extra) + [last_iteration]}
    return {str(mark): picture_change(picture, final) for mark, picture in kept.items() if picture is not None}
