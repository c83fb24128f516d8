"""The launch form: a run's weights and settings, checked before anything is saved."""
import math

from django import forms
from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.urls import reverse_lazy
from django.utils.text import format_lazy

from gallery.models import RUN_DEFAULTS, STYLE_LAYER_LABELS, Run, format_number
from gallery.quotas import saved_iteration_count
from stylecore.errors import SettingsError
from stylecore.settings import (
    MAX_STYLE_SCALE, MAX_WEIGHT, MIN_STYLE_SCALE, STYLE_LAYER_PRESETS, parse_style_blend, style_layers_text,
)

MIN_ROWS = 64
MIN_START_ROWS = 32
MAX_ROWS = 2048
MAX_ITERATIONS = 5000
CUSTOM_LAYERS = "custom"
GUIDE_HELP = format_lazy('What each does, in pictures: <a href="{}">the colour and style guide</a>.',
                         reverse_lazy("colour_and_style_guide"))


def max_rows():
    """The largest size this site computes: 2048 rows, or less where RUN_MAX_ROWS says so."""
    return max(MIN_ROWS, min(MAX_ROWS, settings.RUN_MAX_ROWS))


class RunForm(forms.ModelForm):
    """Settings of a new run. ``continuing`` hides the start choice: the run starts from an iteration."""

    WEIGHT_FIELDS = ("content_weight", "style_weight", "tv_weight")
    OPTIONAL_ENGINE_FIELDS = (
        "init", "adain_alpha", "precision", "start_rows", "preserve_colors", "style_scale", "content_layer",
    )

    # The model's style_layers holds a preset's name or a custom list: here a choice, and the list apart.
    style_layers = forms.ChoiceField(
        label="Style layers",
        choices=[(name, STYLE_LAYER_LABELS[name]) for name in STYLE_LAYER_PRESETS] + [(CUSTOM_LAYERS, "Custom list")],
        required=False,
        help_text="Which VGG19 layers carry the style: shallow layers copy fine texture, deep ones large strokes.",
    )
    custom_style_layers = forms.CharField(
        label="Custom style layers",
        required=False,
        max_length=300,
        help_text="With “Custom list”: layers and weights, e.g. <code>block1_conv1:1, block3_conv1:0.5</code> "
                  "(block1_conv1 … block5_conv4, weights 0 or more).",
    )

    class Meta:
        model = Run
        fields = (
            "content_weight",
            "style_weight",
            "tv_weight",
            "iterations",
            "rows",
            "save_every",
            "style_fit",
            "optimizer",
            "init",
            "adain_alpha",
            "precision",
            "start_rows",
            "seed",
            "preserve_colors",
            "style_scale",
            "content_layer",
            "style_layers",
        )
        labels = {
            "tv_weight": "TV weight",
            "rows": "Rows",
            "save_every": "Save every … iterations",
            "init": "Start from",
            "start_rows": "Start rows (coarse to fine)",
            "preserve_colors": "Keep the photo's colours",
            "content_layer": "Content layer",
        }
        help_texts = {
            "content_weight": "Keeps the photo's layout: shapes and edges stay where they are.",
            "style_weight": "Pulls in the painting's textures and colours; higher means more painterly.",
            "tv_weight": "Total variation: smooths pixel noise; too high blurs details away.",
            "iterations": f"1–{MAX_ITERATIONS}. Each iteration is up to 20 loss evaluations, as in the notebook.",
            "save_every": "Every n-th iteration is kept as an image, plus the first and the last.",
            "style_fit": "Crop keeps the painting's proportions; resize squashes it to the photo's shape.",
            "seed": "Optional: makes a noise start repeatable.",
            "init": "The instant AdaIN picture gets to a finished image soonest; the content image is the "
                    "notebook's start.",
            "adain_alpha": "0–1, for the AdaIN start: how much of the painting's look it begins with. The "
                           "default 0.2 (mostly the photo, in the painting's colours) reached a finished "
                           "picture soonest; higher starts more painterly.",
            "precision": "Number type of the network's arithmetic. bfloat16 is about twice as fast where the "
                         "processor has it, with the same picture; float32 everywhere else.",
            "start_rows": "Below Rows, the run starts at this height and grows by about 1.4× per step up to "
                          "Rows (coarse to fine: a rough picture sooner). Rows or more: one size throughout, "
                          "which reaches a finished picture soonest.",
            "preserve_colors": format_lazy("Paint with the painting's strokes but keep the photo's colours "
                                           "(Gatys et al. 2016). {}", GUIDE_HELP),
            "style_scale": f"{MIN_STYLE_SCALE:g}–{MAX_STYLE_SCALE:g}: the size the painting is seen at, relative to "
                           "the output. Below 1: finer brush strokes; above 1: larger shapes.",
            "content_layer": "The layer whose features keep the photo's layout; block4_conv2 keeps it more exactly.",
        }
        widgets = {
            "content_weight": forms.NumberInput(attrs={"step": "any", "min": 0}),
            "style_weight": forms.NumberInput(attrs={"step": "any", "min": 0}),
            "tv_weight": forms.NumberInput(attrs={"step": "any", "min": 0}),
            "adain_alpha": forms.NumberInput(attrs={"step": "any", "min": 0, "max": 1}),
            "style_scale": forms.NumberInput(attrs={"step": "any", "min": MIN_STYLE_SCALE, "max": MAX_STYLE_SCALE}),
        }

    def __init__(self, *args, continuing=False, style_count=1, **kwargs):
        kwargs.setdefault("initial", {})
        for name, value in RUN_DEFAULTS.items():
            kwargs["initial"].setdefault(name, value)
        layers = kwargs["initial"]["style_layers"]
        if layers not in STYLE_LAYER_PRESETS:
            kwargs["initial"].update(style_layers=CUSTOM_LAYERS, custom_style_layers=layers)
        super().__init__(*args, **kwargs)
        self.continuing = continuing
        self.style_count = style_count
        if style_count > 1:
            # One blend weight per style image of the project; 0 leaves that image out.
            for number in range(1, style_count + 1):
                self.fields[f"blend_{number}"] = forms.FloatField(
                    label=f"Style image {number}",
                    initial=1 if number == 1 else 0,
                    min_value=0,
                    max_value=MAX_WEIGHT,
                    widget=forms.NumberInput(attrs={"step": "any", "min": 0}),
                    help_text="Blend weight; 0 leaves this image out." if number == 1 else "",
                )
        scale = self.fields["style_scale"]
        scale.validators += [MinValueValidator(MIN_STYLE_SCALE), MaxValueValidator(MAX_STYLE_SCALE)]
        top = max_rows()
        rows = self.fields["rows"]
        rows.validators += [MinValueValidator(MIN_ROWS), MaxValueValidator(top)]
        rows.widget.attrs.update(min=MIN_ROWS, max=top)
        rows.help_text = f"The output's height in pixels, {MIN_ROWS}–{top}. Time grows with the number of pixels."
        iterations = self.fields["iterations"]
        iterations.validators += [MinValueValidator(1), MaxValueValidator(MAX_ITERATIONS)]
        iterations.widget.attrs.update(min=1, max=MAX_ITERATIONS)
        save_every = self.fields["save_every"]
        save_every.validators += [MinValueValidator(1), MaxValueValidator(MAX_ITERATIONS)]
        save_every.widget.attrs.update(min=1)
        start_rows = self.fields["start_rows"]
        start_rows.validators += [MinValueValidator(MIN_START_ROWS), MaxValueValidator(top)]
        start_rows.widget.attrs.update(min=MIN_START_ROWS, max=top)
        self.fields["adain_alpha"].validators += [MinValueValidator(0.0), MaxValueValidator(1.0)]
        for name in self.OPTIONAL_ENGINE_FIELDS:
            self.fields[name].required = False  # left out or blank: the engine's default
        # Short enough for the select to show in full; the help text says what each does.
        self.fields["style_fit"].choices = [(Run.StyleFit.CROP, "Crop"), (Run.StyleFit.RESIZE, "Resize (squash)")]
        if continuing:
            # A continued run goes on from a full-size picture: one size, no fresh start.
            for name in ("init", "adain_alpha", "start_rows"):
                del self.fields[name]
        else:
            init = self.fields["init"]
            init.choices = [(value, label) for value, label in Run.Init.choices if value != Run.Init.ITERATION]

    def _bound(self, names):
        return [self[name] for name in names if name in self.fields]

    def weight_fields(self):
        return self._bound(self.WEIGHT_FIELDS)

    def size_fields(self):
        return self._bound(("iterations", "rows", "start_rows", "save_every", "seed"))

    def option_fields(self):
        return self._bound(("init", "adain_alpha", "precision", "style_fit", "optimizer"))

    def blend_fields(self):
        return self._bound([f"blend_{number}" for number in range(1, self.style_count + 1)])

    def colour_and_style_fields(self):
        return self._bound(("preserve_colors", "style_scale", "content_layer", "style_layers", "custom_style_layers"))

    def _clean_weight(self, name):
        value = self.cleaned_data[name]
        if value is not None and (not math.isfinite(value) or value < 0):
            raise forms.ValidationError("Enter a finite number of 0 or more.")
        if value is not None and value > MAX_WEIGHT:
            raise forms.ValidationError(f"Enter a number of at most {MAX_WEIGHT:g}.")
        return value

    def clean_content_weight(self):
        return self._clean_weight("content_weight")

    def clean_style_weight(self):
        return self._clean_weight("style_weight")

    def clean_tv_weight(self):
        return self._clean_weight("tv_weight")

    def _default_if_blank(self, name):
        value = self.cleaned_data.get(name)
        return RUN_DEFAULTS[name] if value in (None, "") else value

    def clean_init(self):
        return self._default_if_blank("init")

    def clean_precision(self):
        return self._default_if_blank("precision")

    def clean_start_rows(self):
        return self._default_if_blank("start_rows")

    def clean_preserve_colors(self):
        return self._default_if_blank("preserve_colors")

    def clean_content_layer(self):
        return self._default_if_blank("content_layer")

    def clean_style_scale(self):
        value = self._default_if_blank("style_scale")
        if not math.isfinite(value):
            raise forms.ValidationError(f"Enter a number from {MIN_STYLE_SCALE:g} to {MAX_STYLE_SCALE:g}.")
        return value

    def _clean_style_layers(self, cleaned):
        """The run's style_layers: the preset chosen, or the custom list in canonical form."""
        preset = cleaned.get("style_layers") or RUN_DEFAULTS["style_layers"]
        if preset != CUSTOM_LAYERS:
            return preset
        custom = cleaned.get("custom_style_layers", "").strip()
        if not custom:
            self.add_error("custom_style_layers", "List the layers, e.g. block1_conv1:1, block3_conv1:0.5, "
                                                  "or choose a preset.")
            return None
        try:
            return style_layers_text(custom)
        except SettingsError as exc:
            self.add_error("custom_style_layers", str(exc).removeprefix("style_layers: "))
            return None

    def _clean_blend(self, cleaned):
        """(the run's style_blend text, the numbers of the style images it uses), or None."""
        if self.style_count == 1:
            return "1", [1]
        weights = [cleaned.get(f"blend_{number}") for number in range(1, self.style_count + 1)]
        if any(weight is None for weight in weights):
            return None  # the field's own error says why
        if not any(weights):
            self.add_error("blend_1", "Give at least one style image a weight above 0.")
            return None
        used = [number for number, weight in enumerate(weights, start=1) if weight]
        blend = [weights[number - 1] for number in used]
        parse_style_blend(blend)  # finite and in range: the form fields checked it already
        return ",".join(format_number(weight) for weight in blend), used

    def chosen_styles(self, slots):
        """The project's style slots the run blends, in order (after is_valid())."""
        return [slots[number - 1] for number in self.used_styles]

    def clean_adain_alpha(self):
        value = self._default_if_blank("adain_alpha")
        if not math.isfinite(value):
            raise forms.ValidationError("Enter a number from 0 to 1.")
        return value

    def clean(self):
        cleaned = super().clean()
        if self.continuing and cleaned.get("rows"):
            self.instance.start_rows = cleaned["rows"]  # not a field of this form: set on the run itself
        cleaned["style_layers"] = self._clean_style_layers(cleaned)
        blend = self._clean_blend(cleaned)
        if blend is not None:
            self.instance.style_blend, self.used_styles = blend
        weights = [cleaned.get(name) for name in self.WEIGHT_FIELDS]
        if all(weight is not None for weight in weights) and not any(weights):
            raise forms.ValidationError("At least one weight must be above 0.")
        iterations, save_every = cleaned.get("iterations"), cleaned.get("save_every")
        if iterations and save_every:
            most = settings.RUN_MAX_SAVED_ITERATIONS
            saved = saved_iteration_count(iterations, save_every)
            if saved > most:
                self.add_error(
                    "save_every",
                    f"This would keep {saved} full-size images; a run keeps at most {most}. "
                    f"Save every {math.ceil(iterations / (most - 2))} iterations or more.",
                )
        return cleaned
