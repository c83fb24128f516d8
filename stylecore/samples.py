"""Procedural sample images for the benchmark, tests and demos (no files needed).

``landscape`` is a photo-like scene (sky gradient, sun, mountains, lake, house,
tree); ``swirls`` is a strongly textured, painterly style image (swirling
brush strokes in a night-sky palette).
"""

import numpy as np


def _grid(rows, cols):
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    return y / rows, x / rows  # both in units of image height


def _mix(image, mask, colour):
    mask = np.clip(mask, 0.0, 1.0)[..., None]
    return image * (1 - mask) + np.asarray(colour, np.float32) * mask


def _soft(distance, width):
    """1 inside (distance < 0), 0 outside, with a smooth edge of ``width``."""
    return np.clip(0.5 - distance / width, 0.0, 1.0)


def landscape(rows=400, cols=533, seed=0):
    """A photo-like RGB uint8 landscape of rows x cols."""
    rng = np.random.default_rng(seed)
    y, x = _grid(rows, cols)
    width = cols / rows
    edge = 1.5 / rows
    sky_top = np.array([40, 90, 170], np.float32)
    sky_low = np.array([235, 200, 160], np.float32)
    t = np.clip(y / 0.55, 0, 1)[..., None]
    image = sky_top * (1 - t) + sky_low * t
    # sun with a glow
    sun_d = np.hypot(x - 0.72 * width, y - 0.22)
    image = _mix(image, 0.5 * np.exp(-(sun_d / 0.12) ** 2), (255, 230, 170))
    image = _mix(image, _soft(sun_d - 0.06, edge), (255, 245, 210))
    # two mountain ridges
    far = 0.42 + 0.06 * np.sin(x * 7.0 + 1.0) + 0.03 * np.sin(x * 17.0)
    image = _mix(image, _soft(far - y, edge), (110, 120, 150))
    near = 0.52 + 0.05 * np.sin(x * 4.0 + 2.5) + 0.015 * np.sin(x * 31.0)
    shade = 0.8 + 0.2 * np.sin(x * 9.0)
    hill = np.stack([70 * shade, 110 * shade, 60 * shade], axis=-1)
    mask = _soft(near - y, edge)[..., None]
    image = image * (1 - mask) + hill * mask
    # lake reflecting the sky, with ripples
    lake = 0.68
    ripple = 0.5 + 0.5 * np.sin(y * 180.0 + 3 * np.sin(x * 11.0))
    water = np.stack([60 + 30 * ripple, 110 + 30 * ripple, 160 + 30 * ripple], axis=-1)
    mask = _soft(lake - y, edge)[..., None]
    image = image * (1 - mask) + water * mask
    # meadow in front
    image = _mix(image, _soft(0.86 + 0.02 * np.sin(x * 6.0) - y, edge), (90, 140, 60))
    # a house with a roof, a door and a window
    hx, hy, hw, hh = 0.25 * width, 0.80, 0.20, 0.14
    wall = np.maximum(np.abs(x - hx) - hw / 2, np.abs(y - hy) - hh / 2)
    image = _mix(image, _soft(wall, edge), (225, 215, 195))
    roof = np.maximum(y - (hy - hh / 2), np.abs(x - hx) * 0.9 - (y - (hy - hh / 2 - 0.1)))
    image = _mix(image, _soft(roof, edge), (160, 50, 40))
    door = np.maximum(np.abs(x - hx + 0.04) - 0.025, np.abs(y - hy - 0.03) - 0.04)
    image = _mix(image, _soft(door, edge), (90, 55, 35))
    window = np.maximum(np.abs(x - hx - 0.05) - 0.025, np.abs(y - hy + 0.01) - 0.025)
    image = _mix(image, _soft(window, edge), (120, 170, 210))
    # a tree
    tx = 0.55 * width
    trunk = np.maximum(np.abs(x - tx) - 0.012, np.abs(y - 0.82) - 0.07)
    image = _mix(image, _soft(trunk, edge), (80, 50, 30))
    crown = np.hypot((x - tx) / 0.9, y - 0.70) - 0.08 - 0.01 * np.sin(np.arctan2(y - 0.70, x - tx) * 9)
    image = _mix(image, _soft(crown, edge), (40, 100, 40))
    image += rng.normal(0.0, 4.0, image.shape)  # sensor-like grain
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def swirls(rows=400, cols=533, seed=1):
    """A painterly RGB uint8 texture of swirling strokes (night-sky palette)."""
    rng = np.random.default_rng(seed)
    y, x = _grid(rows, cols)
    width = cols / rows
    wx, wy = x.copy(), y.copy()
    for _ in range(7):  # twirl the plane around random centres (continuous domain warp)
        cx, cy = rng.uniform(0, width), rng.uniform(0, 1)
        radius, turn = rng.uniform(0.15, 0.3), rng.choice([-1.0, 1.0]) * rng.uniform(3.0, 5.0)
        dx, dy = wx - cx, wy - cy
        theta = turn * np.exp(-(np.hypot(dx, dy) / radius) ** 2)
        wx = cx + dx * np.cos(theta) - dy * np.sin(theta)
        wy = cy + dx * np.sin(theta) + dy * np.cos(theta)
    phase = 14.0 * wy + 2.0 * np.sin(wx * 6.0)
    strokes = 0.5 + 0.5 * np.sin(phase * 3.0 + 1.5 * np.sin(wx * 45.0 + wy * 40.0))
    fine = 0.5 + 0.5 * np.sin(phase * 11.0)
    swirl_strength = 0.5 + 0.5 * np.sin(wx * 3.0 + 1.0)
    palette = np.array([[18, 35, 90], [40, 80, 160], [90, 150, 200], [240, 210, 90],
                        [250, 245, 200]], np.float32)
    level = np.clip(0.55 * strokes + 0.2 * fine + 0.3 * swirl_strength - 0.05, 0, 0.999)
    position = level * (len(palette) - 1)
    low = np.floor(position).astype(int)
    frac = (position - low)[..., None]
    image = palette[low] * (1 - frac) + palette[np.minimum(low + 1, len(palette) - 1)] * frac
    # dark brush outlines between strokes
    image *= (0.7 + 0.3 * np.abs(np.sin(phase * 1.5)))[..., None]
    image += rng.normal(0.0, 6.0, image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def mosaic(rows=400, cols=533, seed=2):
    """A second, different style: warm, flat tiles with dark outlines (a stained-glass look)."""
    rng = np.random.default_rng(seed)
    y, x = _grid(rows, cols)
    centres = np.stack([rng.uniform(0, cols / rows, 60), rng.uniform(0, 1, 60)], axis=1)
    distances = np.hypot(x[..., None] - centres[:, 0], y[..., None] - centres[:, 1])
    nearest = np.sort(distances, axis=-1)
    cell = np.argmin(distances, axis=-1)
    palette = np.array([[200, 60, 30], [230, 150, 40], [250, 220, 120], [140, 40, 60], [90, 120, 50]], np.float32)
    image = palette[rng.integers(0, len(palette), 60)][cell]
    image *= np.clip((nearest[..., 1] - nearest[..., 0]) * rows / 3.0, 0.15, 1.0)[..., None]  # lead lines
    image += rng.normal(0.0, 5.0, image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)
