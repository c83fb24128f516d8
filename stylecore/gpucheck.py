"""``python -m stylecore.gpucheck`` (``make gpu-check``): does this host compute on its GPU, how fast, and right?

Under either backend (``KERAS_BACKEND``: tensorflow or jax), on the GPU the backend sees:

1. the devices, the backend, the solver and the precision ``auto`` picks;
2. seconds per loss+gradient evaluation at ``--rows``² (512) in float32 and in bfloat16;
3. the wall time of ``--evaluations`` (500) L-BFGS evaluations at ``--rows``², the optimiser included,
   and the share of it the network was busy (evaluations × seconds per evaluation ÷ wall time);
4. the wall time of the default run (``--run-rows`` 400, the default iterations and start);
5. the AdaIN preview at ``--rows``²;
6. agreement: the same ``--agreement-iterations`` (20) iterations at 64 rows in float32 on the GPU and
   on the CPU (a child process without the GPU); the final losses must agree within 1 %;
7. workers: how many worker processes one GPU serves. For each count in ``--workers`` (1,2,3), that
   many processes (as django-q2's workers are) each compile and warm up, then all start together and
   each does ``--worker-runs`` (3) default runs: runs per second together, seconds a run, and each
   process's peak GPU memory. The suggested count is the smallest within 10 % of the most runs per
   second measured. Counts are skipped once ``--workers-seconds`` (240) have gone by.

Each timing follows an untimed warm-up of the same shape, so it leaves out compilation (JAX compiles
once per image size; the first run's time is printed too). Targets (issue 22, bfloat16 on an H200)
are printed beside the figures; ``--json PATH`` writes everything measured.

Exit status: 0 when the checks passed, or when the machine has no GPU (said as "skipped") and
``--cpu`` was not given; 1 when a GPU is there but the backend does not use it, or the agreement
check fails. ``--cpu`` measures on the CPU instead (the dry run of ``docs/gpu-check.sh`` here).
"""

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from . import Engine, backend
from .engine import lbfgs_scale
from .images import caffe_bounds, preprocess
from .samples import landscape, swirls
from .schema import DEFAULTS

AGREEMENT = 0.01
AGREEMENT_ROWS = 64
# Issue 22's targets on an H200 in bfloat16 (seconds, except the share).
TARGETS = {"evaluation_512": 0.005, "lbfgs_500_evaluations": 3.0, "default_run": 5.0, "preview_512": 0.05,
           "network_share": 0.8}


def nvidia_gpus():
    """GPU lines of ``nvidia-smi -L``, or [] where there is none (or no driver)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line for line in listed.stdout.splitlines() if line.startswith("GPU")] if listed.returncode == 0 else []


def agreement_run(engine, iterations):
    """The final loss of a 64-row float32 run from the content image (deterministic: no noise)."""
    rows, cols = AGREEMENT_ROWS, round(AGREEMENT_ROWS * 4 / 3)
    settings = DEFAULTS.replace(rows=rows, start_rows=rows, iterations=iterations, init="content", precision="float32")
    result = engine.stylize(landscape(rows, cols), swirls(rows, cols), settings)
    return result.loss


class Evaluation:
    """One loss+gradient evaluation of a square image, as the engine's optimisers call it."""

    def __init__(self, engine, rows, precision):
        self.engine, self.precision = engine, precision
        content, style = landscape(rows, rows), swirls(rows, rows)
        self.functions = engine.loss_functions(precision)
        target, _ = self.functions.targets(backend.constant(preprocess(content)[None]))
        _, grams = self.functions.targets(backend.constant(preprocess(style)[None]))
        weights = backend.constant(np.array([DEFAULTS.content_weight, DEFAULTS.style_weight, DEFAULTS.tv_weight],
                                            np.float32))
        layer_weights = backend.constant(np.ones(len(self.functions.style_names), np.float32))
        low, high = caffe_bounds((rows, rows, 3))
        x = backend.constant(np.clip(preprocess(content), low, high)[None])
        self.arguments = (x, target, grams, weights, layer_weights, backend.constant(lbfgs_scale((rows, rows, 3))))

    def __call__(self):
        total, _parts, gradient = self.functions.loss_and_gradient(*self.arguments)
        backend.to_numpy(total)  # waits for the whole program, the gradient included
        return gradient


def seconds_per_evaluation(engine, rows, precisions, rounds=5, per_round=5):
    """Median seconds of one evaluation per precision, the precisions alternating round by round."""
    contenders = {precision: Evaluation(engine, rows, precision) for precision in precisions}
    for evaluate in contenders.values():
        evaluate()  # compile and warm up
    times = {precision: [] for precision in precisions}
    for _ in range(rounds):
        for precision, evaluate in contenders.items():
            started = time.perf_counter()
            for _ in range(per_round):
                evaluate()
            times[precision].append((time.perf_counter() - started) / per_round)
    return {precision: statistics.median(values) for precision, values in times.items()}


def timed_twice(function):
    """(first call's seconds, second call's seconds, second call's value): compiled, then warm."""
    started = time.perf_counter()
    function()
    first = time.perf_counter() - started
    started = time.perf_counter()
    value = function()
    return first, time.perf_counter() - started, value


def lbfgs_evaluations(engine, rows, evaluations, precision):
    """A one-size L-BFGS run from the photo of ``evaluations`` evaluations (20 per iteration)."""
    content, style = landscape(rows, rows), swirls(rows, rows)
    settings = DEFAULTS.replace(rows=rows, start_rows=rows, init="content", precision=precision,
                                iterations=max(1, round(evaluations / 20)))
    return engine.stylize(content, style, settings)


def default_run(engine, rows, iterations):
    cols = round(rows * 4 / 3)
    return engine.stylize(landscape(rows, cols), swirls(rows, cols),
                          DEFAULTS.replace(rows=rows, start_rows=rows, iterations=iterations))


def _counts(text):
    """"1,2,3" as [1, 2, 3]; "0" or "" as []."""
    try:
        counts = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise argparse.ArgumentTypeError(f"worker counts are whole numbers separated by commas, not {text!r}")
    if any(count < 0 for count in counts):
        raise argparse.ArgumentTypeError("worker counts cannot be negative")
    return [count for count in counts if count > 0]


def verdict(name, value, better="lower"):
    target = TARGETS[name]
    met = value <= target if better == "lower" else value >= target
    return f"(target {'≤' if better == 'lower' else '≥'} {target:g}: {'met' if met else 'NOT met'})"


def measure(engine, args, report):
    low = engine.resolve_precision("auto")
    report.update(backend=engine.backend, device=engine.device, solver=engine.solver, auto_precision=low)
    print(f"backend {engine.backend}, device {engine.device}, solver: {engine.solver}, auto precision: {low}")

    # bfloat16 where the device computes it natively (an emulated one would only time the emulation)
    precisions = ["float32"] + [p for p in ("bfloat16",) if engine.emulation(p) is None]
    timings = seconds_per_evaluation(engine, args.rows, precisions)
    report["seconds_per_evaluation"] = timings
    for precision, seconds in timings.items():
        tail = verdict("evaluation_512", seconds) if precision == "bfloat16" and args.rows == 512 else ""
        print(f"one evaluation at {args.rows}x{args.rows}, {precision}: {seconds * 1000:.2f} ms {tail}")

    first, warm, result = timed_twice(lambda: lbfgs_evaluations(engine, args.rows, args.evaluations, low))
    share = result.evaluations * timings.get(low, timings["float32"]) / warm
    report["lbfgs"] = {"evaluations": result.evaluations, "seconds": warm, "first_seconds": first,
                       "network_share": share, "precision": low, "loss": result.loss}
    print(f"{result.evaluations} L-BFGS evaluations at {args.rows}x{args.rows} in {low}: {warm:.3f} s "
          f"{verdict('lbfgs_500_evaluations', warm) if args.rows == 512 else ''} (first run, compiling: {first:.1f} s)")
    print(f"the network was busy {100 * share:.0f} % of that time {verdict('network_share', share, 'higher')}")

    first, warm, result = timed_twice(lambda: default_run(engine, args.run_rows, args.run_iterations))
    report["default_run"] = {"rows": args.run_rows, "iterations": result.iterations_done, "seconds": warm,
                             "first_seconds": first, "precision": result.precision, "loss": result.loss}
    print(f"the default run ({args.run_rows} rows, {result.iterations_done} iterations from "
          f"{DEFAULTS.init}, {result.precision}): {warm:.3f} s "
          f"{verdict('default_run', warm) if (args.run_rows, args.run_iterations) == (400, DEFAULTS.iterations) else ''}"
          f" (first run: {first:.1f} s)")

    content, style = landscape(args.rows, args.rows), swirls(args.rows, args.rows)
    engine.preview(content, style, rows=args.rows)  # compile
    seconds = []
    for _ in range(5):
        engine.forget_encodings()
        started = time.perf_counter()
        engine.preview(content, style, rows=args.rows)
        seconds.append(time.perf_counter() - started)
    report["preview_seconds"] = statistics.median(seconds)
    print(f"the AdaIN preview at {args.rows}x{args.rows}: {1000 * report['preview_seconds']:.1f} ms "
          f"{verdict('preview_512', report['preview_seconds']) if args.rows == 512 else ''}")


def agreement(engine, args, report, failures):
    started = time.perf_counter()
    here = agreement_run(engine, args.agreement_iterations)
    seconds = time.perf_counter() - started
    environment = dict(os.environ, CUDA_VISIBLE_DEVICES="-1", JAX_PLATFORMS="cpu")
    child = subprocess.run([sys.executable, "-m", "stylecore.gpucheck", "--cpu-leg", "--agreement-iterations",
                            str(args.agreement_iterations)], capture_output=True, text=True, env=environment)
    if child.returncode != 0:
        failures.append(f"the CPU comparison run failed: {child.stderr.strip()[-500:]}")
        return
    on_cpu = json.loads(child.stdout.strip().splitlines()[-1])["loss"]
    difference = abs(here - on_cpu) / on_cpu
    report["agreement"] = {"iterations": args.agreement_iterations, "loss": here, "cpu_loss": on_cpu,
                           "difference": difference, "seconds": seconds}
    print(f"{args.agreement_iterations} iterations at {AGREEMENT_ROWS} rows in float32: loss {here:.5f} on "
          f"{engine.device} ({seconds:.1f} s), {on_cpu:.5f} on the CPU: {100 * difference:.2f} % apart")
    if difference > AGREEMENT:
        failures.append(f"the losses differ by {100 * difference:.2f} % (more than {100 * AGREEMENT:.0f} %)")


WORKERS_WITHIN = 0.9  # the suggested worker count: the smallest reaching this share of the best throughput


def worker_leg(args):
    """One process of the workers check: compile and warm up, say "ready", wait for the start on stdin,
    then time ``--worker-runs`` default runs; the last line printed is JSON."""
    engine = Engine()
    default_run(engine, args.run_rows, args.run_iterations)
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.perf_counter()
    for _ in range(args.worker_runs):
        default_run(engine, args.run_rows, args.run_iterations)
    print(json.dumps({"seconds": time.perf_counter() - started, "peak_bytes": backend.peak_memory()}), flush=True)
    return 0


def _start_workers(count, args, logs):
    command = [sys.executable, "-m", "stylecore.gpucheck", "--worker-leg", "--run-rows", str(args.run_rows),
               "--run-iterations", str(args.run_iterations), "--worker-runs", str(args.worker_runs)]
    return [subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
            for log in logs[:count]]


def _ready(process):
    """Reads the process's output up to its "ready"; False when it ended first."""
    for line in process.stdout:
        if line.strip() == "ready":
            return True
    return False


def _failed(count, log):
    """What a failed worker process of the workers check wrote on stderr (``log``), as a failure."""
    log.seek(0)
    return f"a worker process of the {count}-worker check failed: {log.read().strip()[-500:]}"


def _time_workers(count, args):
    """Each process's JSON line and the wall seconds of ``count`` worker processes started together;
    RuntimeError with the failing one's stderr when one fails."""
    with contextlib.ExitStack() as stack:
        logs = [stack.enter_context(tempfile.TemporaryFile("w+")) for _ in range(count)]
        processes = _start_workers(count, args, logs)
        ready = [_ready(process) for process in processes]
        if not all(ready):
            for process in processes:
                process.kill()
                process.wait()
            raise RuntimeError(_failed(count, next(log for log, ok in zip(logs, ready) if not ok)))
        started = time.perf_counter()
        for process in processes:
            process.stdin.write("go\n")
            process.stdin.flush()
        outputs = [process.communicate()[0].strip().splitlines() for process in processes]
        wall = time.perf_counter() - started
        failed = [log for process, log in zip(processes, logs) if process.returncode != 0]
        if failed:
            raise RuntimeError(_failed(count, failed[0]))
        return [json.loads(lines[-1]) for lines in outputs], wall


def workers(args, report, failures, save=lambda: None):
    """Item 7 of the module's docstring: throughput of 1, 2, 3 … worker processes on one device."""
    budget_ends = time.perf_counter() + args.workers_seconds
    measured = []
    for count in args.workers:
        if time.perf_counter() > budget_ends:
            print(f"{count} workers: skipped, past --workers-seconds {args.workers_seconds}")
            continue
        try:
            legs, wall = _time_workers(count, args)
        except RuntimeError as exc:
            failures.append(str(exc))
            return
        runs = count * args.worker_runs
        peaks = [leg["peak_bytes"] for leg in legs if leg["peak_bytes"] is not None]
        row = {"workers": count, "runs": runs, "wall_seconds": wall, "runs_per_second": runs / wall,
               "seconds_a_run": statistics.mean(leg["seconds"] for leg in legs) / args.worker_runs,
               "peak_bytes": max(peaks) if peaks else None}
        measured.append(row)
        report["workers"] = {"rows": args.run_rows, "iterations": args.run_iterations, "measured": measured}
        save()
        ratio = row["runs_per_second"] / measured[0]["runs_per_second"]
        memory = f", at most {row['peak_bytes'] / 2**30:.1f} GiB of GPU memory a process" if peaks else ""
        print(f"{count} worker{'s' if count > 1 else ''} on one {report['device']}: {runs} default "
              f"run{'s' if runs > 1 else ''} in {wall:.2f} s, {row['runs_per_second']:.3f} runs/s "
              f"({ratio:.2f}x the rate of {measured[0]['workers']}), {row['seconds_a_run']:.2f} s a run{memory}")
    if measured:
        best = max(row["runs_per_second"] for row in measured)
        suggested = next(row["workers"] for row in measured if row["runs_per_second"] >= WORKERS_WITHIN * best)
        report["workers"]["suggested"] = suggested
        print(f"suggested run workers for this device: {suggested} (Q_WORKERS; the fewest within "
              f"{100 - 100 * WORKERS_WITHIN:.0f} % of the most runs per second measured)")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m stylecore.gpucheck", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=512, help="side of the square timings (default 512)")
    parser.add_argument("--evaluations", type=int, default=500, help="L-BFGS evaluations timed (default 500)")
    parser.add_argument("--run-rows", type=int, default=DEFAULTS.rows, help="rows of the default run timed")
    parser.add_argument("--run-iterations", type=int, default=DEFAULTS.iterations,
                        help="iterations of the default run timed (default: the default)")
    parser.add_argument("--agreement-iterations", type=int, default=20)
    parser.add_argument("--cpu", action="store_true", help="measure on the CPU where there is no GPU")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--workers", type=_counts, default=[1, 2, 3],
                        help="worker process counts to time together on the device (default 1,2,3; 0: none)")
    parser.add_argument("--worker-runs", type=int, default=3, help="default runs each worker process times")
    parser.add_argument("--workers-seconds", type=float, default=240,
                        help="no further worker count is started after this many seconds of the check")
    parser.add_argument("--cpu-leg", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker-leg", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cpu_leg:
        print(json.dumps({"loss": agreement_run(Engine(), args.agreement_iterations)}))
        return 0
    if args.worker_leg:
        return worker_leg(args)

    gpus = nvidia_gpus()
    if not gpus and not args.cpu:
        print("gpu-check skipped: no NVIDIA GPU on this machine (nvidia-smi missing or failing).")
        return 0
    print("nvidia-smi:", *(gpus or ["no GPU"]), sep="\n  ")
    report = {"date": time.strftime("%Y-%m-%d %H:%M"), "nvidia_smi": gpus}
    failures = []

    def save():
        if args.json:
            with open(args.json, "w", encoding="utf-8") as handle:
                json.dump(report | {"failures": failures}, handle, indent=2)
    engine = Engine()
    try:
        device = engine.device
    except ImportError as exc:
        print(f"FAIL: the {backend.name()} backend cannot be imported ({exc}). Run `make setup`.")
        return 1
    if gpus and not device.startswith("GPU"):
        failures.append(f"the machine has a GPU but {backend.name()} computes on the CPU; see docs/DEPLOY.md for "
                        "the GPU install")
    else:
        # The figures are written after each part, so that a check cut short keeps what it measured.
        for part in (lambda: measure(engine, args, report), lambda: agreement(engine, args, report, failures),
                     lambda: workers(args, report, failures, save)):
            part()
            save()
    report["failures"] = failures
    save()
    if failures:
        print("FAIL:", "; ".join(failures))
        return 1
    print("gpu-check passed.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
