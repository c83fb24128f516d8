"""Default settings and their validation (no TensorFlow here)."""

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

from .errors import SettingsError
from .images import validate_rows, validate_style_fit

OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise", "adain")
PRECISIONS = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class Defaults:
    """Default settings; readable as attributes (``DEFAULTS.rows``) or keys (``DEFAULTS["rows"]``).

    The loss weights multiply normalised loss terms (see ``stylecore.engine``),
    so the same values give the same balance at any image size.
    """

    content_weight: float = 1.0
    style_weight: float = 0.3
    tv_weight: float = 1e-4
    rows: int = 400
    iterations: int = 30
    save_every: int = 10
    style_fit: str = "crop"
    optimizer: str = "lbfgs"
    init: str = "adain"
    precision: str = "auto"
    start_rows: int = 200
    adain_alpha: float = 1.0

    def __getitem__(self, key):
        if key not in self.keys():
            raise KeyError(key)
        return getattr(self, key)

    def keys(self):
        return [f.name for f in fields(self)]

    def as_dict(self):
        return asdict(self)


DEFAULTS = Defaults()


# The engine computes in float32 (largest value about 3.4e38): larger weights can only overflow.
MAX_WEIGHT = 1e12


def validate_weights(content_weight, style_weight, tv_weight):
    """Return the three weights as floats; each must be finite, in [0, MAX_WEIGHT], not all zero."""
    values = {"content_weight": content_weight, "style_weight": style_weight, "tv_weight": tv_weight}
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise SettingsError(f"{name} must be a number, not {value!r}.")
        if not math.isfinite(value) or value < 0:
            raise SettingsError(f"{name} must be a finite number >= 0, not {value!r}.")
        if value > MAX_WEIGHT:
            raise SettingsError(f"{name} must be at most {MAX_WEIGHT:g}, not {value!r}.")
    if not any(values.values()):
        raise SettingsError("At least one of content_weight, style_weight and tv_weight must be above 0.")
    return tuple(float(v) for v in values.values())


def validate_count(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise SettingsError(f"{name} must be an integer of at least {minimum}, not {value!r}.")
    return int(value)


def validate_optimizer(optimizer):
    if optimizer not in OPTIMIZERS:
        raise SettingsError(f"optimizer must be 'lbfgs' or 'adam', not {optimizer!r}.")
    return optimizer


def validate_precision(precision):
    if precision not in PRECISIONS:
        raise SettingsError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}.")
    return precision


def validate_alpha(alpha):
    """AdaIN's style strength: a number from 0 (the content's own features) to 1 (all style)."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.integer, np.floating)) \
            or not 0.0 <= alpha <= 1.0:
        raise SettingsError(f"alpha must be a number from 0 to 1, not {alpha!r}.")
    return float(alpha)


def validate_seed(seed):
    if seed is not None:
        validate_count("seed", seed, 0)
    return seed


__all__ = [
    "DEFAULTS", "Defaults", "MAX_WEIGHT", "validate_weights", "validate_count", "validate_optimizer",
    "validate_seed", "validate_rows", "validate_style_fit", "validate_precision", "validate_alpha",
    "OPTIMIZERS", "INITS", "PRECISIONS",
]
