"""The crop zoom's arithmetic, written once for the server: the sweep's PNG (gallery.matrix_figure)
uses it, and static/gallery/crop.js is its line-for-line twin for the compare and sweep pages, so
the page and the exported PNG show the same pixels (tests/browser/test_compare_pages.py evaluates
both on the same cases).

A crop is x, y, w, h in the pixels of the reference image: the first run's picture at its run's
full size (an iteration saved at a coarse scale stands for the full-size picture). Images of
another size get the region scaled proportionally. Every rounding is ``round_half_up``, floor(v + 0.5),
computed in the same order of double-precision operations as the JavaScript, so both give the same
integers (Python's own round goes to even on ties, and Math.round differs from floor(v + 0.5) just
below one half: neither is used).
"""
import math


def round_half_up(value):
    """floor(value + 0.5): crop.js's roundHalfUp."""
    return math.floor(value + 0.5)


def full_size(size, rows, full_rows):
    """(width, height) an image of ``size`` stands for at its run's full size: an iteration saved at
    ``rows`` of a run of ``full_rows`` (either unknown: the image's own size). crop.js's fullSize."""
    factor = full_rows / rows if rows and full_rows and rows > 0 and full_rows > 0 else 1
    return round_half_up(size[0] * factor), round_half_up(size[1] * factor)


def clamp_region(region, reference):
    """The crop ({x, y, w, h}) moved and shrunk to lie within an image of ``reference`` (width,
    height); None stays None. crop.js's clamp."""
    if region is None or reference is None:
        return region
    x = max(0, min(region["x"], reference[0] - 1))
    y = max(0, min(region["y"], reference[1] - 1))
    return {"x": x, "y": y, "w": max(1, min(region["w"], reference[0] - x)),
            "h": max(1, min(region["h"], reference[1] - y))}


def scaled_region(region, reference, size):
    """The crop (in ``reference`` pixels) as (x, y, w, h) of an image of ``size``. crop.js's scaled."""
    fx = size[0] / reference[0]
    fy = size[1] / reference[1]
    x = min(round_half_up(region["x"] * fx), size[0] - 1)
    y = min(round_half_up(region["y"] * fy), size[1] - 1)
    w = max(1, min(round_half_up(region["w"] * fx), size[0] - x))
    h = max(1, min(round_half_up(region["h"] * fy), size[1] - y))
    return x, y, w, h
