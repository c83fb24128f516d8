"""How much memory a run (or an AdaIN preview) needs on a CPU, and whether this machine has that much.

A Gatys evaluation keeps VGG19's features of the whole image, and their gradients, up to the deepest
layer a loss uses: its memory grows with the output's pixels. Without a check, a run too large for
the machine (2048 rows of a 4:1 picture, or any size of a picture 1,500 times wider than high) is
killed by the kernel's out-of-memory killer without a word, or swaps for hours. ``check_run_fits``
refuses it first, with the largest size that fits; ``check_preview_fits`` does the same for a
preview, whose pass keeps no gradients.

The figures (``FIGURES``, one set per Keras backend) are peak resident memory of a whole process
computing in float32 on a CPU, measured with ``python -m tests.bench --part memory [--preview]``
(docs/PERFORMANCE.md, "A run's memory"): on TensorFlow's CPU build (Keras 3, oneDNN) a run needs
0.95 GiB for the process and the network, 3.9 GiB per megapixel of output, 0.15 GiB per megapixel of
the largest style image (its features are computed once, without a gradient), plus L-BFGS's past
steps (``LBFGS_MEMORY_BYTES`` at most), counted exactly; XLA on the CPU (JAX) 0.9 GiB, 4.0 GiB per
output megapixel and 1.1 GiB per style megapixel (7 Dec 2026, with the network's weights passed to
its programs rather than copied into each). Lower precisions were not measured apart (the CPU measured only emulates bfloat16): float32's
figure stands for them, likely above what their half-size features need.

TensorFlow's CPU convolutions also have a size limit of their own: a 3×3 convolution of 64 channels
over more than about 10.95 megapixels ends the process with a segmentation fault (TensorFlow 2.21,
with oneDNN and without; XLA's do not), so no picture over ``MAX_NETWORK_PIXELS`` goes through the
network there: larger runs and previews are refused with the rows that fit, and a style image is
seen at most that large (``stylecore.images.MAX_STYLE_PIXELS``).

On a GPU nothing is checked: the device's memory, not the host's, bounds a run there, and it has not
been measured.
"""
import math
import os
from dataclasses import dataclass
from typing import Optional

from . import backend as backends
from .errors import SettingsError
from .images import MAX_NETWORK_PIXELS, MIN_SIDE, output_size, style_size

GIB = 2 ** 30


@dataclass(frozen=True)
class Figures:
    """What a run and a preview need on a CPU under one backend, in bytes (per pixel: per output
    pixel, or per pixel of the style as the network sees it)."""

    base: int
    per_output_pixel: float
    per_style_pixel: float
    preview_base: int
    preview_per_pixel: float  # per pixel of the content as the preview computes it
    preview_per_style_pixel: float  # per pixel of the style as the preview computes it
    preview_per_output_pixel: float  # the picture resized to the output's size and finished there
    largest_picture: Optional[int]  # pixels of the largest picture the network takes, or None (no limit)


FIGURES = {
    # Runs: 64-600 rows, within -8 %…+6 % of the peaks, 5 % above at 1200×1600. Previews: 0.4-16.8 output
    # megapixels computed at 0.6 and 1 of each side, styles up to 10 megapixels: the least-squares fit (0.89
    # GiB + 0.06 per content megapixel + 0.47 per style megapixel + 0.006 per output megapixel) rounded up,
    # 1 %…18 % above the peaks from 1000×1000 up.
    "tensorflow": Figures(base=int(0.95 * GIB), per_output_pixel=3.9 * GIB / 1e6, per_style_pixel=0.15 * GIB / 1e6,
                          preview_base=int(1.0 * GIB), preview_per_pixel=0.1 * GIB / 1e6,
                          preview_per_style_pixel=0.5 * GIB / 1e6, preview_per_output_pixel=0.01 * GIB / 1e6,
                          largest_picture=MAX_NETWORK_PIXELS),
    # XLA on the CPU: runs at 64-800 rows (7 Dec 2026, the weights each program's argument: 0.85 GiB + 3.80
    # per output megapixel + 1.08 per style megapixel, rounded up; the peaks at 0.92-0.98 of the figures).
    # Previews (6 Dec, the weights still copied into each program): as TensorFlow's, the style again the
    # costly part (0.36 megapixels of content, 1.44 of style: 2.86 GiB), within -2 %…+16 % from 1000×1000 up.
    "jax": Figures(base=int(0.9 * GIB), per_output_pixel=4.0 * GIB / 1e6, per_style_pixel=1.1 * GIB / 1e6,
                   preview_base=int(0.8 * GIB), preview_per_pixel=0.3 * GIB / 1e6,
                   preview_per_style_pixel=1.3 * GIB / 1e6, preview_per_output_pixel=0.03 * GIB / 1e6,
                   largest_picture=None),
}


def figures(backend=None):
    """The Figures of ``backend`` (default: the engine's, ``stylecore.backend.name()``)."""
    return FIGURES[backend or backends.name()]


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


def run_memory(rows, cols, style_pixels=0, lbfgs_steps=0, backend=None):
    """Bytes a run computing an output of rows × cols needs at its peak, on a CPU under ``backend``."""
    pixels = rows * cols
    spent = figures(backend)
    return int(spent.base + spent.per_output_pixel * pixels + spent.per_style_pixel * style_pixels
               + lbfgs_history_bytes(pixels, lbfgs_steps))


def preview_size(rows, cols, fraction=1.0):
    """(rows, cols) an AdaIN preview of an output of rows × cols computes at, ``fraction`` of each side."""
    return max(1, round(rows * fraction)), max(1, round(cols * fraction))


def preview_memory(rows, cols, style_scale=1.0, fraction=1.0, backend=None):
    """Bytes an AdaIN preview of an output of rows × cols needs at its peak, on a CPU under ``backend``:
    computed at ``fraction`` of each side (``Engine.preview_fraction``) with the style at
    ``style_scale``, then resized to the output's size and finished there."""
    at_rows, at_cols = preview_size(rows, cols, fraction)
    style_rows, style_cols = style_size(at_rows, at_cols, style_scale)
    spent = figures(backend)
    return int(spent.preview_base + spent.preview_per_pixel * at_rows * at_cols
               + spent.preview_per_style_pixel * style_rows * style_cols + spent.preview_per_output_pixel * rows * cols)


def gigabytes(count):
    """A byte count as a person reads it: "17 GB", "1.4 GB"."""
    value = count / 1e9
    return f"{value:.1f} GB" if value < 10 else f"{value:,.0f} GB"


def settings_memory(rows, cols, settings, lbfgs_steps=None, backend=None):
    """Bytes a run of ``settings`` (anything with ``style_scale`` and ``optimizer``: a RunSettings, a
    gallery Run) needs at its peak at an output of rows × cols: L-BFGS's past steps as the engine
    keeps them (``lbfgs_steps``, or its choice at that size), Adam's two moments."""
    pixels = rows * cols
    if settings.optimizer == "lbfgs":
        steps = lbfgs_steps if lbfgs_steps is not None else lbfgs_memory(3 * pixels)
    else:
        steps = 1
    style_rows, style_cols = style_size(rows, cols, settings.style_scale)
    return run_memory(rows, cols, style_rows * style_cols, steps, backend)


def _valid(content_shape, rows):
    try:
        output_size(content_shape, rows)
    except SettingsError:  # too narrow at that size
        return False
    return True


def _largest_rows_that_fit(content_shape, rows, fits):
    """The most rows below ``rows`` (a valid size that does not fit) at which ``fits(rows)``, or 0.
    Larger outputs need more; smaller ones may be too narrow for VGG19."""
    low, high = MIN_SIDE - 1, rows  # the smallest valid size is in (low, high]
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if _valid(content_shape, middle) else (middle, high)
    if not fits(high):
        return 0
    low = high  # fits; the largest size that fits is in [low, rows)
    high = rows
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def _check_fits(content_shape, rows, need_at, computed_at, available, where, what, backend):
    """Raise SettingsError when an output ``rows`` high would put a picture of more than the backend's
    ``largest_picture`` pixels (``computed_at(out_rows, out_cols)``) through the network, or needs
    (``need_at(out_rows, out_cols)``, bytes) more than the usable share of ``available`` bytes (None:
    ``machine_memory()``; still None: memory is not checked), saying how many rows fit both. ``what``:
    the thing computed, "run" or "preview"."""
    largest = figures(backend).largest_picture
    available = machine_memory() if available is None else available
    usable = None if available is None else available * USABLE_SHARE

    def computed(rows):
        return computed_at(*output_size(content_shape, rows))

    def need(rows):
        return need_at(*output_size(content_shape, rows))

    def fits(rows):
        return (largest is None or computed(rows) <= largest) and (usable is None or need(rows) <= usable)

    if fits(rows):
        return
    noun = "picture" if what == "run" else what
    out_rows, out_cols = output_size(content_shape, rows)
    through = computed_at(out_rows, out_cols)
    if largest is not None and through > largest:
        reason = (f"A {out_rows}×{out_cols}-pixel {noun} would put {through / 1e6:,.1f} megapixels through "
                  f"the network; on a CPU the engine takes at most {largest / 1e6:g} (TensorFlow's convolutions crash "
                  f"above about 11).")
    else:
        reason = (f"A {out_rows}×{out_cols}-pixel {noun} needs about {gigabytes(need_at(out_rows, out_cols))} of "
                  f"memory to compute, and {where} lets a {what} use {gigabytes(usable)}.")
    low = _largest_rows_that_fit(content_shape, rows, fits)
    smallest = need_at(MIN_SIDE, MIN_SIDE)
    if low:
        height, width = content_shape[:2]
        elongated = ", or a less elongated one" if max(height, width) > ELONGATED * min(height, width) else ""
        advice = f"Use at most {low} rows for this content image{elongated}."
    elif usable is not None and smallest > usable:
        advice = f"Even the smallest {what} needs about {gigabytes(smallest)}: compute on a machine with more memory."
    else:
        advice = "No size of this content image fits: crop it to a less elongated shape."
    raise SettingsError(f"{reason} {advice}")


def check_run_fits(content_shape, settings, available=None, *, lbfgs_steps=None, where="this machine", backend=None):
    """Raise SettingsError when a run of ``settings`` (its ``rows``, ``style_scale``, ``optimizer``)
    on a content image of ``content_shape`` is too large for the network on ``backend``'s CPU (default
    the engine's), or needs more memory than ``available`` bytes (default ``machine_memory()``; None:
    not known, not checked) allow, saying how many rows fit. ``where`` names the machine in the message."""
    def need_at(rows, cols):
        return settings_memory(rows, cols, settings, lbfgs_steps, backend)

    _check_fits(content_shape, settings.rows, need_at, lambda rows, cols: rows * cols, available, where, "run",
                backend)


def check_preview_fits(content_shape, rows, style_scale=1.0, fraction=None, available=None, *, where="this machine",
                       backend=None):
    """As ``check_run_fits``, for an AdaIN preview ``rows`` high of a content image of ``content_shape``.
    ``fraction(rows, cols)``: the fraction of each side the preview computes at for an output of rows ×
    cols (default 1)."""
    def fraction_at(rows, cols):
        return fraction(rows, cols) if fraction else 1.0

    def need_at(rows, cols):
        return preview_memory(rows, cols, style_scale, fraction_at(rows, cols), backend)

    def computed_at(rows, cols):  # the content as computed (a style is never seen over the limit)
        at_rows, at_cols = preview_size(rows, cols, fraction_at(rows, cols))
        return at_rows * at_cols

    _check_fits(content_shape, rows, need_at, computed_at, available, where, "preview", backend)


__all__ = ["FIGURES", "Figures", "figures", "LBFGS_MEMORY", "LBFGS_MEMORY_BYTES", "lbfgs_memory", "machine_memory",
           "run_memory", "settings_memory", "check_run_fits", "lbfgs_history_bytes", "preview_size", "preview_memory",
           "check_preview_fits", "parse_bytes", "gigabytes"]
