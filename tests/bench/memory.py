"""(k) A run's peak memory on this machine's device, against ``stylecore.memory``'s figures.

    python -m tests.bench --part memory [--sizes 64x64,300x300,600x600,400x800,400x400@4]

Each size computes in a process of its own (a process's peak resident memory only grows): a whole
run of two iterations (40 evaluations) from the photo of random pixels against a style of random
pixels, by which time L-BFGS holds all the past steps it keeps at that size (scipy's workspace grows
as they come: its pages are touched one step at a time).
``ROWSxCOLS@S`` sees the style at S times the output's size (``style_scale``). The report gives each
process's peak (VmHWM), what ``stylecore.memory.settings_memory`` predicts for it, their ratio, and a
least-squares fit of the peaks less L-BFGS's past steps (counted exactly) to base + per output
megapixel + per style megapixel, from which the engine's figures were taken.
"""
import os
import subprocess
import sys

import numpy as np

DEFAULT_SIZES = "64x64,300x300,600x600,400x800,400x400@4"

CHILD = """
import os, sys
import numpy as np
import stylecore
from stylecore.engine import Engine
rows, cols, scale, precision = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
random = np.random.default_rng(0)
content = random.integers(0, 256, (rows, cols, 3), dtype=np.uint8)
style = random.integers(0, 256, (2600, 2600, 3), dtype=np.uint8)
engine = Engine()
settings = stylecore.DEFAULTS.replace(rows=rows, iterations=2, init="content", precision=precision,
                                      style_scale=scale)
engine.stylize(content, style, settings)
with open("/proc/self/status") as status:
    peak = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM"))
print("peak", peak, engine.device, flush=True)
"""


def parse_sizes(text):
    """[(rows, cols, style_scale)] from "600x600,600x600@4"."""
    sizes = []
    for part in text.split(","):
        size, _, scale = part.strip().partition("@")
        rows, _, cols = size.partition("x")
        sizes.append((int(rows), int(cols), float(scale or 1.0)))
    return sizes


def peak_of(rows, cols, scale, precision):
    """(peak bytes, device) of a child process computing that run."""
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    environment = dict(os.environ, PYTHONPATH=here)
    output = subprocess.run([sys.executable, "-c", CHILD, str(rows), str(cols), str(scale), precision],
                            capture_output=True, text=True, env=environment, cwd=here, check=True).stdout
    line = next(line for line in output.splitlines() if line.startswith("peak "))
    _, peak, device = line.split(" ", 2)
    return int(peak), device


def measure_memory(args):
    from stylecore import DEFAULTS
    from stylecore.images import style_size
    from stylecore.memory import GIB, lbfgs_history_bytes, lbfgs_memory, settings_memory

    precision = args.precision
    rows_seen = []
    print(f"(k) peak memory of a run's process, {precision}, 2 iterations from the photo")
    print(f"    {'output':>11} {'style':>11} {'out Mpx':>8} {'style Mpx':>9} {'peak GiB':>9} {'model GiB':>9} "
          f"{'peak/model':>10}")
    for rows, cols, scale in parse_sizes(args.sizes or DEFAULT_SIZES):
        peak, device = peak_of(rows, cols, scale, precision)
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
