"""``python -m stylecore.gpucheck`` (``make gpu-check``): does this host compute on its GPU, and right?

1. Which devices TensorFlow sees, whether it was built with CUDA, and memory growth.
2. Seconds per loss+gradient evaluation at ``--rows`` (512) in float32 and in the precision
   ``auto`` picks there, alternating.
3. A ``--iterations`` (20) iteration run at 64 rows on the GPU against the same run on the CPU
   (a child process with ``CUDA_VISIBLE_DEVICES=-1``): the final losses must agree within 5 %.

Exit status: 0 when every check passed, or when the machine has no NVIDIA GPU at all (``nvidia-smi``
missing or failing: nothing to check, said as "skipped"); 1 when a GPU is there but TensorFlow does
not use it or a check fails.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time


from . import Engine
from .images import preprocess
from .samples import landscape, swirls

AGREEMENT = 0.05


def nvidia_gpus():
    """GPU lines of ``nvidia-smi -L``, or [] where there is none (or no driver)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line for line in listed.stdout.splitlines() if line.startswith("GPU")] if listed.returncode == 0 else []


def small_run(iterations, precision):
    """The final loss of a 64-row run from the content image (deterministic: no noise)."""
    result = Engine().stylize(landscape(64, 85), swirls(64, 85), rows=64, start_rows=64, iterations=iterations,
                              init="content", precision=precision)
    return result.loss


def seconds_per_evaluation(engine, rows, precisions, rounds=3, per_round=3):
    from .bench import EngineObjective, time_evaluations
    from .settings import DEFAULTS

    cols = round(rows * 4 / 3)
    content, style = landscape(rows, cols), swirls(rows, cols)
    weights = (DEFAULTS.content_weight, DEFAULTS.style_weight, DEFAULTS.tv_weight)
    x = preprocess(content)
    contenders = {}
    for precision in precisions:
        objective = EngineObjective(engine, content, style, weights, precision)
        contenders[precision] = lambda o=objective: o(x.ravel())
    times = time_evaluations(contenders, rounds, per_round)
    return {precision: statistics.median(values) for precision, values in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m stylecore.gpucheck", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=512, help="size of the timing (default 512)")
    parser.add_argument("--iterations", type=int, default=20, help="iterations of the 64-row comparison")
    parser.add_argument("--cpu-leg", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cpu_leg:
        print(json.dumps({"loss": small_run(args.iterations, "float32")}))
        return 0

    gpus = nvidia_gpus()
    if not gpus:
        print("gpu-check skipped: no NVIDIA GPU on this machine (nvidia-smi missing or failing).")
        return 0
    print("nvidia-smi:", *gpus, sep="\n  ")
    try:
        from .engine import _tensorflow

        tf = _tensorflow()
    except ImportError as exc:
        print(f"FAIL: TensorFlow cannot be imported ({exc}). Run `make setup` (it installs "
              "requirements-gpu.txt where nvidia-smi works).")
        return 1
    built_with_cuda = tf.test.is_built_with_cuda()
    seen = tf.config.list_physical_devices("GPU")
    print(f"TensorFlow {tf.__version__}, built with CUDA: {built_with_cuda}; GPUs it sees: "
          f"{[device.name for device in seen] or 'none'}")
    if not seen:
        print("FAIL: the machine has a GPU but TensorFlow computes on the CPU. Install TensorFlow's CUDA "
              "build: `make setup` on this host installs requirements-gpu.txt in place of tensorflow-cpu.")
        return 1
    engine = Engine()
    details = tf.config.experimental.get_device_details(seen[0])
    growth = tf.config.experimental.get_memory_growth(seen[0])
    low = engine.resolve_precision("auto")
    print(f"device: {engine.device}, compute capability {details.get('compute_capability')}, "
          f"memory growth {'on' if growth else 'OFF'}, auto precision: {low}")
    failures = [] if growth else ["memory growth is off"]

    precisions = ["float32"] + ([low] if low != "float32" else [])
    timings = seconds_per_evaluation(engine, args.rows, precisions)
    for precision, seconds in timings.items():
        print(f"seconds per evaluation at {args.rows} rows, {precision}: {seconds:.4f}")
    if len(timings) == 2:
        print(f"{low} is {timings['float32'] / timings[low]:.2f}x faster than float32")

    started = time.perf_counter()
    gpu_loss = small_run(args.iterations, "float32")
    gpu_seconds = time.perf_counter() - started
    environment = dict(os.environ, CUDA_VISIBLE_DEVICES="-1")
    child = subprocess.run([sys.executable, "-m", "stylecore.gpucheck", "--cpu-leg", "--iterations",
                            str(args.iterations)], capture_output=True, text=True, env=environment)
    if child.returncode != 0:
        failures.append(f"the CPU comparison run failed: {child.stderr.strip()[-500:]}")
    else:
        cpu_loss = json.loads(child.stdout.strip().splitlines()[-1])["loss"]
        difference = abs(gpu_loss - cpu_loss) / cpu_loss
        print(f"{args.iterations} iterations at 64 rows: loss {gpu_loss:.5f} on the GPU ({gpu_seconds:.1f} s), "
              f"{cpu_loss:.5f} on the CPU: {100 * difference:.2f} % apart")
        if difference > AGREEMENT:
            failures.append(f"GPU and CPU losses differ by {100 * difference:.1f} % (more than "
                            f"{100 * AGREEMENT:.0f} %)")
    if failures:
        print("FAIL:", "; ".join(failures))
        return 1
    print("gpu-check passed.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
