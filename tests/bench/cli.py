"""The benchmark's command line: ``python -m tests.bench`` (parts in ``tests.bench.timing``, the set in
``tests.bench.benchset``)."""

import argparse
import sys

from stylecore import DEFAULTS, Engine, prepare_images
from stylecore.errors import SettingsError
from stylecore.samples import landscape, swirls
from stylecore.settings import validate_alpha

from . import timing
from .memory import DEFAULT_PREVIEW_SIZES, measure_memory
from .benchset import (
    CANDIDATES, QUICK_CANDIDATES, QUICK_REFERENCE_ITERATIONS, QUICK_ROWS, SETS, run_iterations_set, run_set,
    compare_iteration_reports, select_candidates, select_pairs, summarise_iteration_reports,
)
from .timing import (
    TIME_TO_QUALITY_VARIANTS, EngineObjective, compare_backends, compare_optimizers, compare_pauses, compare_starts,
    time_all, time_defaults, time_lbfgs_bookkeeping, time_preview, time_preview_against_evaluation,
    time_run_overhead, time_to_quality,
)


def _variant_list(text):
    keys = [key.strip() for key in text.split(",") if key.strip()]
    unknown = [key for key in keys if key not in TIME_TO_QUALITY_VARIANTS]
    if unknown or not keys:
        raise argparse.ArgumentTypeError(
            f"unknown variant {', '.join(unknown) or '(none given)'}; choose among {', '.join(TIME_TO_QUALITY_VARIANTS)}")
    return keys


def _alpha_list(text):
    try:
        return tuple(validate_alpha(float(part)) for part in text.split(","))
    except (ValueError, SettingsError):
        raise argparse.ArgumentTypeError(f"give AdaIN strengths from 0 to 1, comma-separated (e.g. 1,0.3); not {text!r}")



def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=timing.__doc__.split("\n\n")[0])
    parser.add_argument("content", nargs="?", help="content image (default: procedural landscape)")
    parser.add_argument("style", nargs="?", help="style image (default: procedural swirls)")
    parser.add_argument("--rows", type=int, help=f"image height (default {DEFAULTS.rows}, {QUICK_ROWS} with --quick)")
    parser.add_argument("--rounds", type=int, default=4, help="rotating timing rounds (default 4)")
    parser.add_argument("--per-round", type=int, default=3, help="evaluations per contender per round")
    parser.add_argument("--evaluations", type=int, default=200,
                        help="evaluation budget of the optimiser comparison (default 200)")
    parser.add_argument("--reference-iterations", type=int,
                        help=f"iterations of the time-to-quality reference, and of part (j)'s default runs (default 50, "
                             f"{QUICK_REFERENCE_ITERATIONS} with --quick)")
    parser.add_argument("--images", help="folder for the time-to-quality images, and part (h)'s pictures at every 5th iteration and "
                        "the defaults' last (default: none saved)")
    parser.add_argument("--give-up-below", type=float,
                        help="stop a time-to-quality variant once its speed-up would be below this "
                             "(default 3; with --set none: there candidates stop by iterations only)")
    parser.add_argument("--compare-with", help="part (i): also time the engine of this checkout (e.g. an older commit)")
    parser.add_argument("--compare-backends", default="tensorflow", choices=("tensorflow,jax", "tensorflow", "jax"),
                        metavar="tensorflow|jax|tensorflow,jax",
                        help="part (i): the backends --compare-with's checkout is timed on (default tensorflow)")
    parser.add_argument("--backends", default="tensorflow,jax", choices=("tensorflow,jax", "tensorflow", "jax"),
                        metavar="tensorflow|jax|tensorflow,jax",
                        help="part (i): the backends timed (default both)")
    parser.add_argument("--backends-precision", default="float32", choices=("float32", "auto"),
                        help="part (i): the precision both backends compute in (default float32)")
    parser.add_argument("--variants", type=_variant_list,
                        help=f"time-to-quality variants to run, comma-separated (default: all): "
                             f"{', '.join(TIME_TO_QUALITY_VARIANTS)}")
    parser.add_argument("--part", default="all",
                        choices=("all", "timing", "optimizer", "time-to-quality", "preview", "preview-ratio", "lbfgs", "overhead",
                                 "defaults", "starts", "backends", "iterations", "memory", "pauses"),
                        help="run only one part (default: all); 'iterations' (part j) needs --set")
    parser.add_argument("--alphas", type=_alpha_list, default=(1.0, 0.5, 0.3, 0.2),
                        help="AdaIN strengths that part (h) starts from, comma-separated (default 1,0.5,0.3,0.2)")
    parser.add_argument("--start-iterations", type=int, default=30,
                        help="iterations of each run in part (h) (default 30)")
    parser.add_argument("--target", type=float, help="part (h): report the first iteration at this loss or lower")
    parser.add_argument("--set", choices=sorted(SETS),
                        help="part (c) over a benchmark set of content x style pairs (tests/bench/benchset.py)")
    parser.add_argument("--pairs", type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
                        help="with --set (or --summarise): only these pairs, comma-separated")
    parser.add_argument("--candidates", type=lambda text: [key.strip() for key in text.split(",") if key.strip()],
                        help=f"with --set: only these candidates, comma-separated (default all, "
                             f"{','.join(QUICK_CANDIDATES)} with --quick): {', '.join(key for key, _ in CANDIDATES)}")
    parser.add_argument("--quick", action="store_true",
                        help=f"quick mode: {QUICK_ROWS} rows, {QUICK_REFERENCE_ITERATIONS} reference iterations and "
                             f"the candidates {', '.join(QUICK_CANDIDATES)} (unless --rows, --reference-iterations or "
                             f"--candidates say otherwise)")
    parser.add_argument("--lbfgs-memory", type=int, choices=range(3, 101), metavar="STEPS",
                        help="part (j): the past steps L-BFGS keeps (default: the engine's choice, 30 at 400 rows)")
    parser.add_argument("--summarise", type=lambda text: [path for path in text.split(",") if path],
                        metavar="JSON[,JSON]", help="part (j): print the table again from these reports (of runs over "
                        "some pairs each) instead of running; with --images, the picture change from that folder")
    parser.add_argument("--against", type=lambda text: [path for path in text.split(",") if path],
                        metavar="JSON[,JSON]", help="part (j), with --summarise: compare those runs, iteration by "
                        "iteration, with the runs of the same pairs in these reports (e.g. another L-BFGS memory)")
    parser.add_argument("--at-iteration", type=int, metavar="N",
                        help="with --against: where the second runs reach the first's loss at this iteration (default "
                             "the default's last; the first runs' last, e.g. 50, for the reference's L*)")
    parser.add_argument("--bfloat16-speedup", type=float, metavar="X",
                        help="with --against: float32's seconds per evaluation over bfloat16's on the machine the "
                             "runs are for, measured side by side (--part timing); adds the ratio of times, each "
                             "run's bfloat16 evaluations (up to its switch to float32) counted 1/X of a float32 one")
    parser.add_argument("--pause-at", type=int, default=6, metavar="N",
                        help="part (l): the iteration at which the run paused once pauses (default 6)")
    parser.add_argument("--pause-iterations", type=int, default=20, metavar="N",
                        help="part (l): the run's iterations (default 20)")
    parser.add_argument("--sizes", help="part (k): ROWSxCOLS[@STYLE_SCALE][/FRACTION],... the runs whose peak memory is "
                        "measured (default 64x64,300x300,600x600,400x800,400x400@4); with --preview, the previews, "
                        "computed at FRACTION of each side (default the engine's own on this machine; default "
                        f"sizes {DEFAULT_PREVIEW_SIZES})")
    parser.add_argument("--preview", action="store_true",
                        help="part (k): measure the AdaIN preview's peak memory instead of a run's")
    parser.add_argument("--convolutions", metavar="SIZES",
                        help="part (k): ROWSxCOLS,... try one 3×3 convolution of 64 channels at each size, each in a "
                             "process of its own, and say which compute (TensorFlow's CPU kernels crash above ~11 Mpx)")
    parser.add_argument("--json", help="with --set: write the report's fields to this JSON file")
    parser.add_argument("--precision", default="auto", choices=("auto", "float32", "bfloat16"),
                        help="with --set: the precision the candidates compute in (default auto, what a user's run "
                             "gets; float32 compares the starts in the reference's precision)")
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # progress shows up when redirected to a file
    if (args.content is None) != (args.style is None):
        parser.error("give both CONTENT and STYLE, or neither")
    args.rows = args.rows or (QUICK_ROWS if args.quick else DEFAULTS.rows)
    args.reference_iterations = args.reference_iterations or (QUICK_REFERENCE_ITERATIONS if args.quick else 50)
    if args.give_up_below is None and not args.set:
        args.give_up_below = 3.0
    if (args.lbfgs_memory or args.summarise) and args.part != "iterations":
        parser.error("--lbfgs-memory and --summarise go with --part iterations")
    if args.against and not args.summarise:
        parser.error("--against goes with --summarise")
    if (args.at_iteration or args.bfloat16_speedup) and not args.against:
        parser.error("--at-iteration and --bfloat16-speedup go with --against")
    if not 0 < args.pause_at < args.pause_iterations:
        parser.error("--pause-at: an iteration from 1 to --pause-iterations − 1")
    if args.bfloat16_speedup is not None and not args.bfloat16_speedup > 0:
        parser.error("--bfloat16-speedup: a ratio of two times, above 0 (e.g. 1.85)")
    if args.summarise:
        try:
            if args.against:
                compare_iteration_reports(args.summarise, args.against, at=args.at_iteration,
                                          speedup=args.bfloat16_speedup, only=args.pairs)
            else:
                summarise_iteration_reports(args.summarise, images=args.images, only=args.pairs)
        except (OSError, ValueError, KeyError) as exc:
            parser.error(f"cannot summarise {', '.join(args.summarise)}: {exc}")
        return 0
    if args.part == "memory":
        if args.set or args.content:
            parser.error("part (k) computes random pictures of --sizes: give no --set and no images")
        try:
            measure_memory(args)
        except ValueError as exc:
            parser.error(f"--sizes: {exc}")
        return 0
    if args.sizes or args.preview or args.convolutions:
        parser.error("--sizes, --preview and --convolutions go with --part memory")
    if args.part == "iterations":
        if not args.set or args.content or args.candidates or args.quick or args.precision == "bfloat16":
            parser.error("part (j) runs the default run over a set's pairs: give --set, and no images, "
                         "--candidates, --quick or --precision bfloat16 (--precision float32 with --lbfgs-memory 10 "
                         "runs the first engine's reference instead)")
        try:
            select_pairs(args.set, args.pairs)
        except ValueError as exc:
            parser.error(str(exc))
        run_iterations_set(Engine(), args, (DEFAULTS.content_weight, DEFAULTS.style_weight, DEFAULTS.tv_weight))
        return 0
    if args.set:
        if args.part != "time-to-quality" or args.content:
            parser.error("--set runs part (c) over its own pairs (or part j: --part iterations): use --part "
                         "time-to-quality, without images")
        if args.candidates is None and args.quick:
            args.candidates = list(QUICK_CANDIDATES)
        try:
            select_pairs(args.set, args.pairs)
            select_candidates(args.candidates)
        except ValueError as exc:
            parser.error(str(exc))
        run_set(Engine(), args, (DEFAULTS.content_weight, DEFAULTS.style_weight, DEFAULTS.tv_weight))
        return 0
    if args.pairs or args.json or args.candidates or args.precision != "auto":
        parser.error("--pairs, --candidates, --precision and --json go with --set")
    if args.part == "backends":
        compare_backends(args)
        return 0
    if args.content:
        content, style = prepare_images(args.content, args.style, rows=args.rows)
    else:
        cols = round(args.rows * 4 / 3)
        content, style = landscape(args.rows, cols), swirls(args.rows, cols)

    engine = Engine()
    rows, cols = content.shape[:2]
    print(f"stylecore benchmark: {rows}x{cols} pixels on {engine.device} (auto precision: "
          f"{engine.resolve_precision('auto')}, {engine.solver})")
    weights = (DEFAULTS.content_weight, DEFAULTS.style_weight, DEFAULTS.tv_weight)
    if args.part in ("all", "timing"):
        if engine.backend != "tensorflow":
            parser.error("part (a) times the notebook's TensorFlow formulation: run it with KERAS_BACKEND=tensorflow")
        time_all(engine, content, style, weights, args)
    if args.part in ("all", "optimizer"):
        objective = EngineObjective(engine, content, style, weights)
        compare_optimizers(engine, objective, content, style, args.evaluations)
    if args.part in ("all", "preview"):
        time_preview(engine, content, style, args)
    if args.part in ("all", "preview", "preview-ratio"):
        time_preview_against_evaluation(engine, content, style, weights, args.rounds)
    if args.part in ("all", "lbfgs"):
        time_lbfgs_bookkeeping(content.shape, args.rounds)
    if args.part in ("all", "defaults"):
        time_defaults(engine, content, style, weights, args)
    if args.part in ("all", "overhead"):
        time_run_overhead(engine, content, style, args)
    if args.part in ("all", "time-to-quality"):
        time_to_quality(engine, content, style, weights, args)
    if args.part in ("all", "starts"):
        compare_starts(engine, content, style, weights, args)
    if args.part in ("all", "pauses"):
        compare_pauses(engine, content, style, args.pause_iterations, args.pause_at)
    return 0
