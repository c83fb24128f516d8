"""A run's settings, defined once: each setting's type, default, bounds, validation, words and display.

The engine takes a ``RunSettings``; the CLI builds its flags from ``SETTINGS``; the Django form,
pages, labels, sweeps, CSV and estimates read the same definitions. Adding a setting is one
``Setting`` here plus the code that uses it.
"""

import math
from dataclasses import dataclass, field, make_dataclass, replace
from typing import Callable, Optional

from .errors import SettingsError
from .images import MIN_SIDE
from .settings import (
    CONTENT_LAYERS, MAX_STYLE_SCALE, MAX_WEIGHT, MIN_STYLE_SCALE, STYLE_LAYER_PRESETS, _is_number, style_layers_text,
)


def format_number(value):
    """Numbers as the notebook wrote them in folder names: 0.1, 1000, 1e+06."""
    return f"{value:g}"


@dataclass(frozen=True)
class Setting:
    """One run setting.

    ``choices``: ((value, label), …) for a choice; ``sweep``: None (not sweepable), "values" (typed
    values, or every choice) or "log" (also log-spaced, for weights spanning decades);
    ``label_part``: the run label's text for a value other than the default (None: never in the label);
    ``display(value, settings)``: the pages' text of a value (default: the choice's label, or the number
    and ``unit``).
    """

    name: str
    type: type
    default: object
    label: str
    help: str
    minimum: Optional[float] = None
    maximum: Optional[float] = None
    choices: tuple = ()
    unit: str = ""
    optional: bool = False
    sweep: Optional[str] = None
    label_part: Optional[Callable] = None
    display: Optional[Callable] = None
    normalise: Optional[Callable] = None  # a further check that returns the canonical value
    applies: Optional[Callable] = None  # settings -> whether the setting matters to them (None: always)

    @property
    def flag(self):
        return "--" + self.name.replace("_", "-")

    @property
    def requirement(self):
        """What a valid value is, in words: "a number from 0 to 1", "lbfgs or adam"."""
        if self.choices:
            return _either(self.choice_values)
        if self.type is int:
            most = f" and at most {self.maximum}" if self.maximum is not None else ""
            return f"an integer of at least {self.minimum}{most}"
        if self.type is float:
            return f"a number from {self.minimum:g} to {self.maximum:g}"
        return "a text"

    @property
    def choice_values(self):
        return tuple(value for value, _label in self.choices)

    def validate(self, value):
        """The value in its canonical form; SettingsError with a person-readable message otherwise."""
        if value is None and self.optional:
            return None
        if self.choices:
            valid = value in self.choice_values
        elif self.type is int:
            valid = not isinstance(value, bool) and hasattr(value, "__index__") and value >= self.minimum \
                and (self.maximum is None or value <= self.maximum)
        elif self.type is float:
            valid = _is_number(value) and math.isfinite(value) and self.minimum <= value <= self.maximum
        else:
            valid = isinstance(value, str)
        if not valid:
            raise SettingsError(f"{self.name} must be {self.requirement}, not {value!r}.")
        value = self.type(value)
        return self.normalise(value) if self.normalise else value

    def text(self, value, settings=None):
        """The value as pages, tables and the compare page show it; ``settings`` (a RunSettings or a
        run) for displays that depend on another setting."""
        if value is None:
            return "–"
        if self.display:
            return self.display(value, settings)
        if self.choices:
            return dict(self.choices).get(value, value)
        number = format_number(value) if isinstance(value, float) else str(value)
        return f"{number} {self.unit}" if self.unit else number


STYLE_LAYER_LABELS = (("balanced", "Balanced (all five blocks)"), ("fine", "Fine texture"),
                      ("large", "Large strokes"))


def _one_size_or_rows(start_rows, settings):
    """Start rows at or above the rows mean one size throughout."""
    return f"{start_rows} px" if settings is None or start_rows < settings.rows else "one size"


def _either(values):
    """"a or b", "a, b or c"."""
    return " or ".join([", ".join(values[:-1]), values[-1]]) if len(values) > 1 else values[0]


def _weight(name, label, default, help_text):
    return Setting(name, float, default, label, help_text, minimum=0.0, maximum=MAX_WEIGHT, sweep="log")


SETTINGS = (
    _weight("content_weight", "Content weight", 1.0,
            "Keeps the photo's layout: shapes and edges stay where they are."),
    _weight("style_weight", "Style weight", 0.3,
            "Pulls in the painting's textures and colours; higher means more painterly."),
    _weight("tv_weight", "TV weight", 1e-4,
            "Total variation: smooths pixel noise; too high blurs details away."),
    # Chosen on the benchmark set at 400 rows (docs/PERFORMANCE.md, "How many iterations"): the default
    # run ends where more stop paying, the first iteration from which five more lower the loss by under
    # 2 %: 14-20 on the set's eight pairs, median 19 (the benchmark's part j, AMD EPYC Zen 4,
    # bfloat16). At 17 the runs were still gaining 0.4-1.2 % an iteration.
    Setting("iterations", int, 20, "Iterations",
            "Each iteration is up to 20 loss evaluations, as in the notebook. After the default {default}, five "
            "more iterations lower the loss by under 2 % on the pictures measured, and add a little more style.",
            minimum=1),
    Setting("rows", int, 400, "Rows", "The output's height in pixels; the width keeps the content's shape. "
            "Time grows with the number of pixels.", minimum=MIN_SIDE, unit="px", sweep="values",
            label_part=lambda rows: f"{rows}px"),
    Setting("save_every", int, 10, "Save every … iterations",
            "Every n-th iteration is kept as an image, plus the first and the last.", minimum=1,
            display=lambda n, _settings: "every iteration" if n == 1 else f"every {n} iterations"),
    Setting("style_fit", str, "crop", "Style fit",
            "Crop keeps the painting's proportions; resize squashes it to the photo's shape.",
            choices=(("crop", "Crop"), ("resize", "Resize (squash)")), sweep="values"),
    Setting("optimizer", str, "lbfgs", "Optimizer", "L-BFGS, as in the notebook, or Adam.",
            choices=(("lbfgs", "L-BFGS"), ("adam", "Adam")), sweep="values", label_part=str),
    # "iteration": continue from an image (a saved iteration), given to Engine.stylize as ``start``.
    # The photo, chosen on the benchmark set (docs/PERFORMANCE.md, "The deep set on eight pairs"): it
    # reached the 40-iteration quality on all 8 pairs at 128 rows (median 38 iterations), the AdaIN
    # picture at 0.2 on 4 (1.3-3x sooner there, trapped a little above it on the other 4, faces among
    # them); at 400 rows each start was ahead at iteration 15 on 2 of 4 pairs, and the AdaIN start drew
    # the portrait's face wrong (AMD EPYC Zen 4, bfloat16).
    Setting("init", str, "content", "Start from", "The content image (the notebook's start) keeps the photo, "
            "faces especially, and reached the finished picture on every pair measured; the instant AdaIN "
            "picture gets there sooner on some pairs, in the painting's colours, and stays a little short of it "
            "on others.",
            choices=(("adain", "Instant AdaIN picture"), ("content", "Content image"), ("noise", "Noise"),
                     ("iteration", "A saved iteration (continue)")),
            sweep="values", label_part=lambda init: "cont" if init == "iteration" else init),
    # For an AdaIN start: the AdaIN picture at a fifth of the style's strength, mostly the photo with the
    # painting's colours. Measured at 400 rows on landscape x swirls (docs/PERFORMANCE.md (h)), one-size
    # runs from it reached the first engine's 50-iteration loss in 17 iterations, against 33 from the
    # photo and more from stronger starts (24 at 0.15, 27 at 0.3).
    Setting("adain_alpha", float, 0.2, "AdaIN style strength", "0–1, for the AdaIN start: how much of the "
            "painting's look it begins with. The default {default} (mostly the photo, in the painting's "
            "colours) reached a finished picture soonest on the pair it was tuned on; higher starts more "
            "painterly.", minimum=0.0, maximum=1.0,
            applies=lambda settings: settings.init == "adain"),
    Setting("precision", str, "auto", "Precision", "Number type of the network's arithmetic. bfloat16 is about "
            "twice as fast where the processor has it, with the same picture; float32 everywhere else. A run in "
            "bfloat16 or float16 that converges early goes on in float32.",
            choices=(("auto", "Automatic (bfloat16 where the hardware has it)"), ("float32", "float32"),
                     ("bfloat16", "bfloat16"), ("float16", "float16")), sweep="values"),
    Setting("start_rows", int, 400, "Start rows (coarse to fine)", "Below Rows, the run starts at this height "
            "and grows by about 1.4× per step up to Rows (coarse to fine: a rough picture sooner). Rows or "
            "more: one size throughout, which reaches a finished picture soonest.", minimum=MIN_SIDE,
            display=_one_size_or_rows),
    Setting("seed", int, None, "Seed", "Optional: makes a noise start repeatable.", minimum=0, optional=True,
            applies=lambda settings: settings.seed is not None),
    Setting("preserve_colors", str, "none", "Keep the photo's colours", "Paint with the painting's strokes but "
            "keep the photo's colours (Gatys et al. 2016).",
            choices=(("none", "No: the painting's colours"), ("luminance", "Luminance: restyle the brightness only"),
                     ("histogram", "Histogram: recolour the painting to the photo's colours first")),
            sweep="values", label_part=str),
    Setting("style_scale", float, 1.0, "Style scale", "{minimum:g}–{maximum:g}: the size the painting is seen "
            "at, relative to the output. Below 1: finer brush strokes; above 1: larger shapes.",
            minimum=MIN_STYLE_SCALE, maximum=MAX_STYLE_SCALE, sweep="values",
            label_part=lambda scale: f"scale{format_number(scale)}"),
    Setting("content_layer", str, "block5_conv2", "Content layer",
            "The layer whose features keep the photo's layout; block4_conv2 keeps it more exactly.",
            choices=((CONTENT_LAYERS[0], "block5_conv2 (the notebook's: looser shapes)"),
                     (CONTENT_LAYERS[1], "block4_conv2 (Gatys': closer to the photo)")),
            sweep="values", label_part=lambda layer: layer.split("_")[0]),
    Setting("style_layers", str, "balanced", "Style layers",
            "Which VGG19 layers carry the style: shallow layers copy fine texture, deep ones large strokes. "
            "A preset, or layers and weights such as block1_conv1:1, block3_conv1:0.5.",
            sweep="values", normalise=style_layers_text,
            display=lambda layers, _settings: dict(STYLE_LAYER_LABELS).get(layers, layers),
            label_part=lambda layers: layers if layers in STYLE_LAYER_PRESETS else "layers"),
    # Gatys et al. (2016) replace VGG19's max pooling by average pooling for slightly more appealing
    # pictures; jcjohnson/neural-style offers it as -pooling avg. The AdaIN encoder keeps max pooling.
    Setting("pooling", str, "max", "Pooling", "How the network shrinks its feature maps between blocks: max, as "
            "VGG19 was trained, or average, which Gatys et al. found gives smoother, slightly nicer pictures.",
            choices=(("max", "Max (as VGG19 was trained)"), ("average", "Average (Gatys et al.)")),
            sweep="values", label_part=lambda pooling: f"{pooling}pool"),
)
SETTING = {setting.name: setting for setting in SETTINGS}
# The notebook named its folders output_{tv}_{style}_{content}; the label keeps that beginning.
LABEL_WEIGHTS = ("tv_weight", "style_weight", "content_weight")


def help_text(setting):
    """The setting's help with its own default and bounds filled in."""
    return setting.help.format(default=setting.default, minimum=setting.minimum, maximum=setting.maximum)


class _RunSettingsMethods:
    """What every RunSettings can do (the fields come from SETTINGS)."""

    @classmethod
    def from_mapping(cls, values):
        """RunSettings from a mapping of names to values; missing ones take their defaults, unknown
        names and invalid values raise SettingsError."""
        unknown = sorted(set(values) - set(SETTING))
        if unknown:
            raise SettingsError(f"Unknown setting{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}.")
        return cls(**values)

    def __post_init__(self):
        for setting in SETTINGS:
            object.__setattr__(self, setting.name, setting.validate(getattr(self, setting.name)))
        if not any(getattr(self, name) for name in LABEL_WEIGHTS):
            raise SettingsError("At least one of content_weight, style_weight and tv_weight must be above 0.")

    def replace(self, **changes):
        """A copy with ``changes``, validated."""
        return replace(self, **changes)

    def as_dict(self):
        return {setting.name: getattr(self, setting.name) for setting in SETTINGS}

    @property
    def weights(self):
        return (self.content_weight, self.style_weight, self.tv_weight)

    @property
    def label(self):
        return run_label(self)


RunSettings = make_dataclass(
    "RunSettings",
    [(setting.name, setting.type, field(default=setting.default)) for setting in SETTINGS],
    bases=(_RunSettingsMethods,),
    frozen=True,
    namespace={"__doc__": "A run's settings, each validated by its Setting (SETTINGS) when made."},
)
RunSettings.__module__ = __name__
DEFAULTS = RunSettings()


def saves_iteration(number, iterations, save_every):
    """Whether a run of ``iterations`` keeps iteration ``number`` as an image: iteration 0, every
    ``save_every``-th and the last (written once: the CLI, the gallery's workers and its quotas use it).
    Besides these, a run that converges early also keeps the iteration it stopped at."""
    return number % save_every == 0 or number == iterations


def saved_iteration_count(iterations, save_every):
    """How many iterations ``saves_iteration`` keeps of a run that runs all its ``iterations``."""
    return 1 + iterations // save_every + (1 if iterations % save_every else 0)


def run_label(settings):
    """The notebook's folder name, output_{tv}_{style}_{content}, plus what differs from the defaults, of
    anything with the settings as attributes (a RunSettings, a run's row: read as stored, not checked)."""
    parts = [format_number(getattr(settings, name)) for name in LABEL_WEIGHTS]
    for setting in SETTINGS:
        value = getattr(settings, setting.name)
        if setting.label_part and value != setting.default:
            parts.append(setting.label_part(value))
    return "_".join(parts)


__all__ = ["Setting", "SETTINGS", "SETTING", "RunSettings", "DEFAULTS", "STYLE_LAYER_LABELS",
           "format_number", "help_text", "run_label", "saved_iteration_count", "saves_iteration"]
