"""How much memory a run needs on a CPU, and whether this machine has that much.

A Gatys evaluation keeps VGG19's features of the whole image, and their gradients, up to the deepest
layer a loss uses: its memory grows with the output's pixels. Without a check, a run too large for
the machine (2048 rows of a 4:1 picture, or any size of a picture 1,500 times wider than high) is
killed by the kernel's out-of-memory killer without a word, or swaps for hours. ``check_run_fits``
refuses it first, with the largest size that fits.

The figures are peak resident memory of a whole process computing a run in float32 on TensorFlow's CPU
build (Keras 3, oneDNN), measured with ``python -m tests.bench --part memory`` at 64-600 rows
(docs/PERFORMANCE.md, "A run's memory"): 0.95 GiB for the process and the network, 3.9 GiB per megapixel
of output, 0.15 GiB per megapixel of the largest style image (its features are computed once, without a
gradient), plus L-BFGS's past steps (``LBFGS_MEMORY_BYTES`` at most), counted exactly. Lower precisions
were not measured apart (the CPU measured only emulates bfloat16): float32's figure stands for them,
likely above what their half-size features need. On a GPU the check is not made: the device's memory,
not the host's, bounds a run there, and it has not been measured.
"""
import math
import os

from .errors import SettingsError
from .images import MIN_SIDE, output_size, style_size

GIB = 2 ** 30
BASE_BYTES = int(0.95 * GIB)
OUTPUT_BYTES_PER_PIXEL = 3.9 * GIB / 1e6
STYLE_BYTES_PER_PIXEL = 0.15 * GIB / 1e6
# What a run may use of the machine's memory: the rest is the operating system's and the other
# processes' (the web server, the preview lane).
USABLE_SHARE = 0.9
# STYLECORE_MEMORY_LIMIT caps what the engine assumes it may use (e.g. "8G", "512M" or bytes), for a
# worker that shares its machine with other heavy processes.
LIMIT_VARIABLE = "STYLECORE_MEMORY_LIMIT"
# A content image whose long side is more than this many times its short side is called elongated in the
# advice (cropping it is a way to a larger size).
ELONGATED = 2
_UNITS = {"": 1, "K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30, "T": 2 ** 40}
# L-BFGS keeps this many past steps (scipy's default is 10): at 400×533 in bfloat16, 30 reached
# the first engine's 50-iteration loss at iteration 27, where 10 were still 2.4 % above it at
# iteration 28, for 0.07 s more per evaluation (docs/PERFORMANCE.md, 29 Nov). Each step
# is two float64 vectors of the image's size, so large images keep fewer, down to 10, within
# LBFGS_MEMORY_BYTES (4:3 images: 400 rows keep 30 steps, 307 MB; 1024 rows 14; from 1250 rows 10).
LBFGS_MEMORY = (10, 30)
LBFGS_MEMORY_BYTES = 10 ** 9


def parse_bytes(text):
    """Bytes from "8G", "512M", "1.5G", "123456" (binary units, an optional trailing "B" or "iB")."""
    value = str(text).strip().upper().removesuffix("IB").removesuffix("B")
    unit = value[-1] if value and value[-1] in _UNITS else ""
    try:
        number = float(value[:-1] if unit else value)
    except ValueError:
        number = -1.0
    if not math.isfinite(number) or number <= 0:
        raise SettingsError(f"{LIMIT_VARIABLE} must be an amount of memory such as 8G or 512M, not {text!r}.")
    return int(number * _UNITS[unit])


def _read_number(path):
    try:
        with open(path) as file:
            text = file.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def machine_memory():
    """Bytes of memory this process may use: the machine's physical memory, or less where a control
    group (a container's limit) or STYLECORE_MEMORY_LIMIT says so."""
    candidates = []
    try:
        candidates.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        pass
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        limit = _read_number(path)
        if limit and limit < 2 ** 60:  # "max", or cgroup v1's "no limit" (about 2**63)
            candidates.append(limit)
    configured = os.environ.get(LIMIT_VARIABLE, "").strip()
    if configured:
        candidates.append(parse_bytes(configured))
    return min(candidates) if candidates else None


def lbfgs_history_bytes(pixels, steps):
    """L-BFGS's past steps: two float64 vectors of the image's values per step."""
    return 2 * 8 * 3 * pixels * steps


def lbfgs_memory(variables):
    """How many past steps L-BFGS keeps for an image of ``variables`` values (see LBFGS_MEMORY)."""
    fewest, most = LBFGS_MEMORY
    return max(fewest, min(most, LBFGS_MEMORY_BYTES // (2 * 8 * variables)))  # two float64 vectors a step


def run_memory(rows, cols, style_pixels=0, lbfgs_steps=0):
    """Bytes a run computing an output of rows × cols needs at its peak, on a CPU."""
    pixels = rows * cols
    return int(BASE_BYTES + OUTPUT_BYTES_PER_PIXEL * pixels + STYLE_BYTES_PER_PIXEL * style_pixels
               + lbfgs_history_bytes(pixels, lbfgs_steps))


def gigabytes(count):
    """A byte count as a person reads it: "17 GB", "1.4 GB"."""
    value = count / 1e9
    return f"{value:.1f} GB" if value < 10 else f"{value:,.0f} GB"


def settings_memory(rows, cols, settings, lbfgs_steps=None):
    """Bytes a run of ``settings`` (anything with ``style_scale`` and ``optimizer``: a RunSettings, a
    gallery Run) needs at its peak at an output of rows × cols: L-BFGS's past steps as the engine
    keeps them (``lbfgs_steps``, or its choice at that size), Adam's two moments."""
    pixels = rows * cols
    if settings.optimizer == "lbfgs":
        steps = lbfgs_steps if lbfgs_steps is not None else lbfgs_memory(3 * pixels)
    else:
        steps = 1
    style_rows, style_cols = style_size(rows, cols, settings.style_scale)
    return run_memory(rows, cols, style_rows * style_cols, steps)


def _valid(content_shape, rows):
    try:
        output_size(content_shape, rows)
    except SettingsError:  # too narrow at that size
        return False
    return True


def _largest_rows_that_fit(content_shape, rows, need, usable):
    """The most rows below ``rows`` (a valid size that does not fit) whose output fits in ``usable``
    bytes, or 0. Larger outputs need more memory; smaller ones may be too narrow for VGG19."""
    low, high = MIN_SIDE - 1, rows  # the smallest valid size is in (low, high]
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if _valid(content_shape, middle) else (middle, high)
    if need(high) > usable:
        return 0
    low = high  # fits; the largest size that fits is in [low, rows)
    high = rows
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if need(middle) <= usable else (low, middle)
    return low


def check_run_fits(content_shape, settings, available=None, *, lbfgs_steps=None, where="this machine"):
    """Raise SettingsError when a run of ``settings`` (its ``rows``, ``style_scale``, ``optimizer``)
    on a content image of ``content_shape`` needs more memory than ``available`` bytes (default
    ``machine_memory()``; None: not known, no check) allow, saying how many rows fit. ``where``
    names the machine in the message."""
    available = machine_memory() if available is None else available
    if available is None:
        return
    usable = available * USABLE_SHARE

    def need(rows):
        return settings_memory(*output_size(content_shape, rows), settings, lbfgs_steps)

    rows = settings.rows
    needed = need(rows)
    if needed <= usable:
        return
    low = _largest_rows_that_fit(content_shape, rows, need, usable)
    out_rows, out_cols = output_size(content_shape, rows)
    if low:
        height, width = content_shape[:2]
        elongated = ", or a less elongated one" if max(height, width) > ELONGATED * min(height, width) else ""
        advice = f"Use at most {low} rows for this content image{elongated}."
    elif BASE_BYTES > usable:
        advice = f"Even the smallest run needs about {gigabytes(BASE_BYTES)}: compute on a machine with more memory."
    else:
        advice = "No size of this content image fits: crop it to a less elongated shape."
    raise SettingsError(
        f"A {out_rows}×{out_cols}-pixel picture needs about {gigabytes(needed)} of memory to compute, and "
        f"{where} lets a run use {gigabytes(usable)}. {advice}"
    )


__all__ = ["LBFGS_MEMORY", "LBFGS_MEMORY_BYTES", "lbfgs_memory", "machine_memory", "run_memory", "settings_memory", "check_run_fits", "lbfgs_history_bytes",
           "parse_bytes", "gigabytes"]
