"""(k) A run's peak memory on this machine's device, against ``stylecore.memory``'s figures.

    python -m tests.bench --part memory [--sizes 64x64,300x300,600x600,400x800,400x400@4]
    python -m tests.bench --part memory --preview [--sizes 64x64,400x400,1000x1000/1,...]

Each size computes in a process of its own (a process's peak resident memory only grows): a whole
run of two iterations (40 evaluations) from the photo of random pixels against a style of random
pixels, by which time L-BFGS holds all the past steps it keeps at that size (scipy's workspace grows
as they come: its pages are touched one step at a time).
``ROWSxCOLS@S`` sees the style at S times the output's size (``style_scale``). The report gives each
process's peak (VmHWM), what ``stylecore.memory.settings_memory`` predicts for it, their ratio, and a
least-squares fit of the peaks less L-BFGS's past steps (counted exactly) to base + per output
megapixel + per style megapixel, from which the engine's figures were taken.

``--preview`` measures the AdaIN preview's peaks instead (``Engine.preview`` at each size, computed at
the engine's own fraction of each side on this machine, or at the size's ``/FRACTION``), against
``stylecore.memory.preview_memory``, with a least-squares fit to base + per computed megapixel + per
computed style megapixel + per output megapixel (the preview resized to the output's size and
finished there): the default sizes are computed at two fractions, to tell the last two apart.

``--convolutions 3000x3650,1000x11000`` instead tries, each in a process of its own, one 3×3
convolution of 64 channels into 64 (VGG19's first block, the widest layers at full size) over a
picture of that size on this machine's backend, and says whether it computed or how the process
ended: TensorFlow's CPU kernels end it with a segmentation fault above about 10.95 megapixels, where
``stylecore.images.MAX_NETWORK_PIXELS`` comes from.
"""
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout the children import
DEFAULT_SIZES = "64x64,300x300,600x600,400x800,400x400@4"
DEFAULT_PREVIEW_SIZES = "64x64,400x400,1000x1000,1600x2000,1000x1000@2,1000x1000/1,1600x2000/1"

CHILD = """
import os, sys
import numpy as np
import stylecore
from stylecore.engine import Engine
rows, cols, scale, precision, what = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4], sys.argv[5]
random = np.random.default_rng(0)
content = random.integers(0, 256, (rows, cols, 3), dtype=np.uint8)
style = random.integers(0, 256, (2600, 2600, 3), dtype=np.uint8)
engine = Engine()
if what == "run":
    settings = stylecore.DEFAULTS.replace(rows=rows, iterations=2, init="content", precision=precision,
                                          style_scale=scale)
    engine.stylize(content, style, settings)
    computed = 1.0
else:
    if what != "engine":
        engine.preview_scale = lambda pixels, fraction=float(what): fraction
    computed = engine.preview_fraction(rows, cols)
    engine.preview(content, style, rows=rows, precision=precision, style_scale=scale)
with open("/proc/self/status") as status:
    peak = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM"))
print("peak", peak, computed, engine.device, flush=True)
"""


CONVOLUTION = """
import sys
import numpy as np
from stylecore import backend
ops = backend.keras_ops()
rows, cols = int(sys.argv[1]), int(sys.argv[2])
picture = ops.zeros((1, rows, cols, 64), dtype="float32")
kernel = ops.ones((3, 3, 64, 64), dtype="float32")
corner = backend.to_numpy(ops.conv(picture, kernel, padding="same"))[0, 0, 0, 0]
print("computed", float(corner), backend.name(), flush=True)
"""


def try_convolutions(text):
    """Print, for each ROWSxCOLS of ``text``, whether one 3×3 convolution of 64 channels over a picture
    of that size computes in a process of its own, or how that process ended."""
    import signal

    environment = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    print("(k) one 3×3 convolution of 64 channels into 64, each in a process of its own")
    for rows, cols, _scale, _fraction in parse_sizes(text):
        done = subprocess.run([sys.executable, "-c", CONVOLUTION, str(rows), str(cols)], capture_output=True,
                              text=True, env=environment, cwd=ROOT)
        if done.returncode == 0:
            _, _value, chosen = next(line for line in done.stdout.splitlines() if line.startswith("computed ")).split()
            outcome = f"computes ({chosen})"
        elif done.returncode < 0:
            outcome = f"the process ended with {signal.Signals(-done.returncode).name}"
        else:
            outcome = f"failed (exit {done.returncode}): {(done.stderr.strip().splitlines() or [''])[-1][:200]}"
        print(f"    {f'{rows}x{cols}':>11} {rows * cols / 1e6:8.2f} megapixels: {outcome}", flush=True)


def parse_sizes(text):
    """[(rows, cols, style_scale, fraction or None)] from "600x600,600x600@4,600x600@2/0.5"."""
    sizes = []
    for part in text.split(","):
        part, _, fraction = part.strip().partition("/")
        size, _, scale = part.partition("@")
        rows, _, cols = size.partition("x")
        fraction = float(fraction) if fraction else None
        if fraction is not None and not 0 < fraction <= 1:
            raise ValueError(f"a fraction of each side is above 0 and at most 1, not {fraction}")
        sizes.append((int(rows), int(cols), float(scale or 1.0), fraction))
    return sizes


def peak_of(rows, cols, scale, precision, what="run"):
    """(peak bytes, fraction of each side computed, device) of a child process computing that run
    (``what`` "run"), or that preview at the engine's own fraction ("engine") or at a given one ("0.6")."""
    output = subprocess.run([sys.executable, "-c", CHILD, str(rows), str(cols), str(scale), precision, what],
                            capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT), cwd=ROOT,
                            check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("peak "))
    _, peak, computed, device = line.split(" ", 3)
    return int(peak), float(computed), device


def measure_memory(args):
    from stylecore import DEFAULTS
    from stylecore.images import style_size
    from stylecore.memory import GIB, lbfgs_history_bytes, lbfgs_memory, settings_memory

    if args.convolutions:
        return try_convolutions(args.convolutions)
    if args.preview:
        return measure_preview_memory(args)
    precision = args.precision
    rows_seen = []
    print(f"(k) peak memory of a run's process, {precision}, 2 iterations from the photo")
    print(f"    {'output':>11} {'style':>11} {'out Mpx':>8} {'style Mpx':>9} {'peak GiB':>9} {'model GiB':>9} "
          f"{'peak/model':>10}")
    for rows, cols, scale, fraction in parse_sizes(args.sizes or DEFAULT_SIZES):
        if fraction is not None:
            raise ValueError("a /FRACTION goes with --preview")
        peak, _computed, device = peak_of(rows, cols, scale, precision)
        style_rows, style_cols = style_size(rows, cols, scale)
        model = settings_memory(rows, cols, DEFAULTS.replace(style_scale=scale))
        history = lbfgs_history_bytes(rows * cols, lbfgs_memory(3 * rows * cols))
        rows_seen.append((rows * cols / 1e6, style_rows * style_cols / 1e6, (peak - history) / GIB))
        print(f"    {f'{rows}x{cols}':>11} {f'{style_rows}x{style_cols}':>11} {rows * cols / 1e6:8.3f} "
              f"{style_rows * style_cols / 1e6:9.3f} {peak / GIB:9.2f} {model / GIB:9.2f} {peak / model:10.2f}",
              flush=True)
    print(f"    on {device}")
    if len(rows_seen) >= 3:
        matrix = np.array([[1.0, output, style] for output, style, _ in rows_seen])
        peaks = np.array([peak for _, _, peak in rows_seen])
        (base, per_output, per_style), *_ = np.linalg.lstsq(matrix, peaks, rcond=None)
        print(f"    least squares of the peaks less L-BFGS's steps: {base:.2f} GiB + {per_output:.2f} GiB per output megapixel + "
              f"{per_style:.2f} GiB per style megapixel")


def measure_preview_memory(args):
    from stylecore.images import style_size
    from stylecore.memory import GIB, preview_memory, preview_size

    seen = []
    print(f"(k) peak memory of an AdaIN preview's process, {args.precision}")
    print(f"    {'output':>11} {'computed':>11} {'style':>11} {'peak GiB':>9} {'model GiB':>9} {'peak/model':>10}")
    for rows, cols, scale, fraction in parse_sizes(args.sizes or DEFAULT_PREVIEW_SIZES):
        at = "engine" if fraction is None else str(fraction)
        peak, computed, device = peak_of(rows, cols, scale, args.precision, at)
        at_rows, at_cols = preview_size(rows, cols, computed)
        style_rows, style_cols = style_size(at_rows, at_cols, scale)
        model = preview_memory(rows, cols, scale, computed)
        seen.append(([1.0, at_rows * at_cols / 1e6, style_rows * style_cols / 1e6, rows * cols / 1e6], peak / GIB))
        print(f"    {f'{rows}x{cols}':>11} {f'{at_rows}x{at_cols}':>11} {f'{style_rows}x{style_cols}':>11} "
              f"{peak / GIB:9.2f} {model / GIB:9.2f} {peak / model:10.2f}", flush=True)
    print(f"    on {device}")
    if len(seen) >= 4:
        matrix = np.array([terms for terms, _ in seen])
        peaks = np.array([peak for _, peak in seen])
        (base, per_computed, per_style, per_output), *_ = np.linalg.lstsq(matrix, peaks, rcond=None)
        print(f"    least squares of the peaks: {base:.2f} GiB + {per_computed:.2f} GiB per computed megapixel + "
              f"{per_style:.2f} GiB per computed style megapixel + {per_output:.3f} GiB per output megapixel")
