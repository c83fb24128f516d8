"""The settings' vocabularies and the checks the engine makes of its other arguments (no TensorFlow here).

A run's settings themselves, with their defaults, are defined in ``stylecore.schema``.
"""

import math

import numpy as np

from .errors import SettingsError
from .images import validate_rows, validate_style_fit

PRECISIONS = ("auto", "float32", "bfloat16", "float16")
# Gatys et al. 2016, "Preserving Color in Neural Artistic Style Transfer": "luminance" transfers on
# the luminance only and puts the content's chroma back; "histogram" recolours each style image to
# the content's colour mean and covariance first. "none": the style's colours (the original method).
PRESERVE_COLORS = ("none", "luminance", "histogram")
# The style image is seen at this size relative to the output (jcjohnson/neural-style's -style_scale).
MIN_STYLE_SCALE, MAX_STYLE_SCALE = 0.25, 4.0
# VGG19's convolutions, in network order (Keras' names).
VGG19_CONV_LAYERS = (
    "block1_conv1", "block1_conv2", "block2_conv1", "block2_conv2",
    "block3_conv1", "block3_conv2", "block3_conv3", "block3_conv4",
    "block4_conv1", "block4_conv2", "block4_conv3", "block4_conv4",
    "block5_conv1", "block5_conv2", "block5_conv3", "block5_conv4",
)
# block5_conv2: the seed notebook's content layer; block4_conv2: Gatys' and jcjohnson's.
CONTENT_LAYERS = ("block5_conv2", "block4_conv2")
# Named style-layer weightings. "balanced" is the original method (five blocks, equal weights);
# shallow layers see small patches (fine texture), deep ones large patterns (large strokes).
STYLE_LAYER_PRESETS = {
    "balanced": (("block1_conv1", 1.0), ("block2_conv1", 1.0), ("block3_conv1", 1.0),
                 ("block4_conv1", 1.0), ("block5_conv1", 1.0)),
    "fine": (("block1_conv1", 1.0), ("block2_conv1", 1.0), ("block3_conv1", 0.5)),
    "large": (("block3_conv1", 0.5), ("block4_conv1", 1.0), ("block5_conv1", 1.0)),
}


# The instant preview shows the style at full strength (the slider lowers it).
PREVIEW_ALPHA = 1.0


# The engine computes in float32 (largest value about 3.4e38): larger weights can only overflow.
MAX_WEIGHT = 1e12


def validate_count(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise SettingsError(f"{name} must be an integer of at least {minimum}, not {value!r}.")
    return int(value)


def validate_precision(precision):
    if precision not in PRECISIONS:
        raise SettingsError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}.")
    return precision


PRECISIONS_TEXT_LENGTH = 40  # the longest precisions_text of a run: "bfloat16, then float32" and room


def precisions_text(used, latest):
    """What a run has computed in so far, given that text (``used``, "" at first) and the precision of
    its latest iteration: "bfloat16", or "bfloat16, then float32" once a run in a low precision went
    on in float32 (``TransferResult.refined_at``). A precision already named is not repeated (a
    resumed run starts in its low precision again)."""
    named = [part for part in (used or "").split(", then ") if part]
    if latest not in named:
        named.append(latest)
    return ", then ".join(named)[:PRECISIONS_TEXT_LENGTH]


def validate_alpha(alpha):
    """AdaIN's style strength: a number from 0 (the content's own features) to 1 (all style)."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)) \
            or not 0.0 <= alpha <= 1.0:
        raise SettingsError(f"alpha must be a number from 0 to 1, not {alpha!r}.")
    return float(alpha)


def _is_number(value):
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating))


def validate_preserve_colors(preserve_colors):
    """None and "none" both mean off; returns one of PRESERVE_COLORS."""
    if preserve_colors is None:
        return "none"
    if preserve_colors not in PRESERVE_COLORS:
        raise SettingsError(
            f"preserve_colors must be none, luminance or histogram, not {preserve_colors!r}.")
    return preserve_colors


def validate_style_scale(style_scale):
    if not _is_number(style_scale) or not MIN_STYLE_SCALE <= style_scale <= MAX_STYLE_SCALE:
        raise SettingsError(
            f"style_scale must be a number from {MIN_STYLE_SCALE:g} to {MAX_STYLE_SCALE:g}, not {style_scale!r}.")
    return float(style_scale)


def _number_text(text, what):
    try:
        value = float(text)
    except ValueError:
        raise SettingsError(f"{what}: {text.strip()!r} is not a number.") from None
    if not math.isfinite(value) or value < 0:
        raise SettingsError(f"{what}: weights must be finite numbers >= 0, not {text.strip()!r}.")
    return value


def parse_style_layers(spec):
    """The style layers and their weights, ((layer, weight), ...) in network order, layers of weight 0 left out.

    ``spec`` is a preset name (STYLE_LAYER_PRESETS), a text such as ``"block1_conv1:1, block3_conv1:0.5"``
    (a name alone weighs 1), or a sequence of (layer, weight) pairs. Layers must be VGG19 convolutions,
    each named once, weights finite and >= 0, not all 0.
    """
    if isinstance(spec, str) and spec.strip() in STYLE_LAYER_PRESETS:
        return STYLE_LAYER_PRESETS[spec.strip()]
    if isinstance(spec, str):
        pairs = []
        for item in spec.replace(";", ",").split(","):
            if not item.strip():
                continue
            name, _, weight = item.partition(":")
            pairs.append((name.strip(), _number_text(weight, "style_layers") if weight.strip() else 1.0))
    else:
        try:
            pairs = [(name, weight) for name, weight in spec]
        except (TypeError, ValueError):
            raise SettingsError(f"style_layers must be a preset name or (layer, weight) pairs, not {spec!r}.") from None
    if not pairs:
        raise SettingsError(
            f"style_layers is empty; name a preset ({', '.join(STYLE_LAYER_PRESETS)}) or layers such as "
            "block1_conv1:1, block3_conv1:0.5.")
    weights = {}
    for name, weight in pairs:
        if name not in VGG19_CONV_LAYERS:
            raise SettingsError(
                f"style_layers: {name!r} is not a VGG19 layer; use block1_conv1 … block5_conv4 "
                f"(e.g. block3_conv1) or a preset ({', '.join(STYLE_LAYER_PRESETS)}).")
        if name in weights:
            raise SettingsError(f"style_layers: {name} is named twice.")
        if not _is_number(weight) or not math.isfinite(weight) or weight < 0 or weight > MAX_WEIGHT:
            raise SettingsError(f"style_layers: the weight of {name} must be a finite number >= 0, not {weight!r}.")
        weights[name] = float(weight)
    if not any(weights.values()):
        raise SettingsError("style_layers: at least one layer's weight must be above 0.")
    return tuple((name, weights[name]) for name in VGG19_CONV_LAYERS if weights.get(name))


def style_layers_text(spec):
    """The canonical text of a style-layer choice: the preset's name, or ``block1_conv1:1, …``."""
    if isinstance(spec, str) and spec.strip() in STYLE_LAYER_PRESETS:
        return spec.strip()
    return ", ".join(f"{name}:{weight:g}" for name, weight in parse_style_layers(spec))


def parse_style_blend(blend, count=None):
    """Blend weights of the style images as a tuple of floats (a text ``"0.7,0.3"`` or numbers).

    Each weight finite and >= 0, not all 0; with ``count``, exactly one per style image.
    """
    if isinstance(blend, str):
        values = tuple(_number_text(part, "style_blend") for part in blend.split(",") if part.strip())
    else:
        values = tuple(blend)
    for value in values:
        if not _is_number(value) or not math.isfinite(value) or value < 0 or value > MAX_WEIGHT:
            raise SettingsError(f"style_blend: weights must be finite numbers >= 0, not {value!r}.")
    if not values:
        raise SettingsError("style_blend needs one weight per style image, e.g. 0.7,0.3.")
    if count is not None and len(values) != count:
        raise SettingsError(
            f"style_blend has {len(values)} weight{'s' if len(values) != 1 else ''} for {count} style "
            f"image{'s' if count != 1 else ''}; give one weight per style image.")
    if not any(values):
        raise SettingsError("style_blend: at least one style image's weight must be above 0.")
    return tuple(float(v) for v in values)


__all__ = [
    "PREVIEW_ALPHA", "MAX_WEIGHT", "validate_count", "validate_rows", "validate_style_fit", "validate_precision",
    "validate_alpha", "PRECISIONS", "PRESERVE_COLORS", "CONTENT_LAYERS", "STYLE_LAYER_PRESETS", "VGG19_CONV_LAYERS",
    "MIN_STYLE_SCALE", "MAX_STYLE_SCALE", "validate_preserve_colors", "validate_style_scale", "parse_style_layers",
    "style_layers_text", "parse_style_blend",
]
