"""The launch form: a run's weights and settings, checked before anything is saved."""
import math

from django import forms
from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.urls import reverse_lazy
from django.utils.text import format_lazy

from gallery.estimates import precision_refusal
from gallery.models import RUN_DEFAULTS, Run
from stylecore.errors import SettingsError
from stylecore.schema import (
    SETTING, SETTINGS, STYLE_LAYER_LABELS, format_number, help_text, saved_iteration_count,
)
from stylecore.settings import MAX_WEIGHT, STYLE_LAYER_PRESETS, parse_style_blend, style_layers_text

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


def _bound_text(value):
    """A bound as a person would type it: 0, 0.25, 2048, 1e12."""
    if float(value).is_integer() and abs(value) < 1e9:
        return str(int(value))
    return f"{value:g}".replace("e+", "e")


def set_bounds(field, minimum, maximum=None):
    """A number field's bounds, set in one place: its check, with one message in plain words for
    either side ("Use a whole number from 1 to 5000."), and its input's min and max. Replaces any
    bound the field had (a positive integer column's form field brings its own minimum 0)."""
    kind = "a number" if isinstance(field, forms.FloatField) else "a whole number"
    span = (f"from {_bound_text(minimum)} to {_bound_text(maximum)}" if maximum is not None
            else f"of at least {_bound_text(minimum)}")
    message = f"Use {kind} {span}."
    field.min_value, field.max_value = minimum, maximum
    field.validators = [validator for validator in field.validators
                        if not isinstance(validator, (MinValueValidator, MaxValueValidator))]
    field.validators.append(MinValueValidator(minimum, message))
    field.widget.attrs["min"] = minimum
    if maximum is None:
        field.widget.attrs.pop("max", None)
    else:
        field.validators.append(MaxValueValidator(maximum, message))
        field.widget.attrs["max"] = maximum


class RunForm(forms.ModelForm):
    """Settings of a new run, as stylecore.schema defines them (labels, help, bounds, validation).
    ``continuing`` hides the start choice: the run starts from an iteration."""

    WEIGHT_FIELDS = ("content_weight", "style_weight", "tv_weight")
    # The form's fieldsets (option_fields also shows any setting not named here).
    SIZE_FIELDS = ("iterations", "rows", "start_rows", "save_every", "seed")
    OPTION_FIELDS = ("init", "adain_alpha", "precision", "style_fit", "optimizer")
    COLOUR_AND_STYLE_FIELDS = ("preserve_colors", "style_scale", "content_layer", "style_layers", "custom_style_layers")
    # The launch form's first settings; any later one left out or blank takes its default.
    REQUIRED_FIELDS = WEIGHT_FIELDS + ("iterations", "rows", "save_every", "style_fit", "optimizer")

    # The model's style_layers holds a preset's name or a custom list: here a choice, and the list apart.
    style_layers = forms.ChoiceField(
        label=SETTING["style_layers"].label,
        choices=list(STYLE_LAYER_LABELS) + [(CUSTOM_LAYERS, "Custom list")],
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
        fields = tuple(SETTING)
        labels = {setting.name: setting.label for setting in SETTINGS}
        help_texts = {setting.name: help_text(setting) for setting in SETTINGS}
        # Decimal inputs take any decimal; every number input gets the schema's bounds in __init__.
        widgets = {setting.name: forms.NumberInput(attrs={"step": "any"})
                   for setting in SETTINGS if setting.type is float and not setting.choices}

    SHOWN_WHEN = {"adain_alpha": ("init", Run.Init.ADAIN), "custom_style_layers": ("style_layers", CUSTOM_LAYERS)}

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
                field = self.fields[f"blend_{number}"] = forms.FloatField(
                    label=f"Style image {number}",
                    initial=1 if number == 1 else 0,
                    widget=forms.NumberInput(attrs={"step": "any"}),
                    help_text="Blend weight; 0 leaves this image out." if number == 1 else "",
                )
                set_bounds(field, 0, MAX_WEIGHT)
        top = max_rows()
        # The launch form's own bounds, within the schema's (a site computes at most max_rows() rows).
        narrower = {"rows": (MIN_ROWS, top), "start_rows": (MIN_START_ROWS, top),
                    "iterations": (SETTING["iterations"].minimum, MAX_ITERATIONS),
                    "save_every": (SETTING["save_every"].minimum, MAX_ITERATIONS)}
        for setting in SETTINGS:
            field = self.fields[setting.name]
            field.required = setting.name in self.REQUIRED_FIELDS
            field.show_hidden_initial = False  # the schema's defaults are callables
            if setting.type in (int, float) and not setting.choices:
                set_bounds(field, *narrower.get(setting.name, (setting.minimum, setting.maximum)))
        self.fields["preserve_colors"].help_text = format_lazy("{} {}", help_text(SETTING["preserve_colors"]),
                                                               GUIDE_HELP)
        rows = self.fields["rows"]
        rows.help_text = f"{help_text(SETTING['rows'])} {MIN_ROWS}–{top} here."
        iterations = self.fields["iterations"]
        iterations.help_text = f"1–{MAX_ITERATIONS}. {iterations.help_text}"
        if continuing:
            # A continued run goes on from a full-size picture: one size, no fresh start.
            for name in ("init", "adain_alpha", "start_rows"):
                del self.fields[name]
            iterations.label = "Further iterations"
            iterations.help_text = (f"1–{MAX_ITERATIONS}: how many more to compute. The new run's iteration 0 is the "
                                    "picture it continues from, so its iteration N is N more.")
        else:
            init = self.fields["init"]
            init.choices = [(value, label) for value, label in Run.Init.choices if value != Run.Init.ITERATION]
        # Fields that matter only with another's value: the launch form shows them with it (site.js); they
        # are always submitted, and without script always shown.
        for name, (other, value) in self.SHOWN_WHEN.items():
            if name in self.fields and other in self.fields:
                self.fields[name].widget.attrs["data-shown-when"] = f"{self[other].html_name}={value}"
        # In the order the page shows them, so that the error summary lists them so.
        self.order_fields(self.WEIGHT_FIELDS + self.SIZE_FIELDS + self._option_names() + self._blend_names()
                          + self.COLOUR_AND_STYLE_FIELDS)

    def _bound(self, names):
        return [self[name] for name in names if name in self.fields]

    def _option_names(self):
        """The start and the optimiser, then every setting the other fieldsets do not show."""
        shown = self.WEIGHT_FIELDS + self.SIZE_FIELDS + self.OPTION_FIELDS + self.COLOUR_AND_STYLE_FIELDS
        return self.OPTION_FIELDS + tuple(name for name in SETTING if name not in shown)

    def _blend_names(self):
        return tuple(f"blend_{number}" for number in range(1, self.style_count + 1))

    def weight_fields(self):
        return self._bound(self.WEIGHT_FIELDS)

    def size_fields(self):
        return self._bound(self.SIZE_FIELDS)

    def option_fields(self):
        return self._bound(self._option_names())

    def blend_fields(self):
        return self._bound(self._blend_names())

    def colour_and_style_fields(self):
        return self._bound(self.COLOUR_AND_STYLE_FIELDS)

    def _clean_settings(self, cleaned):
        """Each setting through the schema's own check (a blank optional one takes its default)."""
        for name in SETTING:
            if name not in self.fields or name in self.errors or name == "style_layers":
                continue
            value = cleaned.get(name)
            if value in (None, "") and not self.fields[name].required:
                cleaned[name] = SETTING[name].default
                continue
            try:
                cleaned[name] = SETTING[name].validate(value)
            except SettingsError:
                self.add_error(name, f"Enter {SETTING[name].requirement}.")

    def _clean_style_layers(self, cleaned):
        """The run's style_layers: the preset chosen, or the custom list in canonical form."""
        preset = cleaned.get("style_layers") or SETTING["style_layers"].default
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

    def clean(self):
        cleaned = super().clean()
        self._clean_settings(cleaned)
        if self.continuing and cleaned.get("rows"):
            self.instance.start_rows = cleaned["rows"]  # not a field of this form: set on the run itself
        cleaned["style_layers"] = self._clean_style_layers(cleaned)
        blend = self._clean_blend(cleaned)
        if blend is not None:
            self.instance.style_blend, self.used_styles = blend
        refusal = precision_refusal(cleaned.get("precision"))
        if refusal:
            self.add_error("precision", f"{refusal}. Choose float32 or auto.")
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
