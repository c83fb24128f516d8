"""The launch form: a run's weights and settings, checked before anything is saved."""
import math

from django import forms
from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator

from gallery.models import RUN_DEFAULTS, Run
from gallery.quotas import saved_iteration_count
from stylecore.settings import MAX_WEIGHT

MIN_ROWS = 64
MIN_START_ROWS = 32
MAX_ROWS = 2048
MAX_ITERATIONS = 5000


def max_rows():
    """The largest size this site computes: 2048 rows, or less where RUN_MAX_ROWS says so."""
    return max(MIN_ROWS, min(MAX_ROWS, settings.RUN_MAX_ROWS))


class RunForm(forms.ModelForm):
    """Settings of a new run. ``continuing`` hides the start choice: the run starts from an iteration."""

    WEIGHT_FIELDS = ("content_weight", "style_weight", "tv_weight")
    OPTIONAL_ENGINE_FIELDS = ("init", "adain_alpha", "precision", "start_rows")

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
        )
        labels = {
            "tv_weight": "TV weight",
            "rows": "Rows",
            "save_every": "Save every … iterations",
            "init": "Start from",
            "start_rows": "Start rows (coarse to fine)",
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
            "adain_alpha": "0–1, for the AdaIN start: how much of the painting's look it begins with.",
            "precision": "Number type of the network's arithmetic. bfloat16 is about twice as fast where the "
                         "processor has it, with the same picture; float32 everywhere else.",
            "start_rows": "The run starts at this height and grows by about 1.4× per step up to Rows: most "
                          "of the work happens where pixels are few. Rows or more: one size throughout.",
        }
        widgets = {
            "content_weight": forms.NumberInput(attrs={"step": "any", "min": 0}),
            "style_weight": forms.NumberInput(attrs={"step": "any", "min": 0}),
            "tv_weight": forms.NumberInput(attrs={"step": "any", "min": 0}),
            "adain_alpha": forms.NumberInput(attrs={"step": "any", "min": 0, "max": 1}),
        }

    def __init__(self, *args, continuing=False, **kwargs):
        kwargs.setdefault("initial", {})
        for name, value in RUN_DEFAULTS.items():
            kwargs["initial"].setdefault(name, value)
        super().__init__(*args, **kwargs)
        self.continuing = continuing
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

    def clean_adain_alpha(self):
        value = self._default_if_blank("adain_alpha")
        if not math.isfinite(value):
            raise forms.ValidationError("Enter a number from 0 to 1.")
        return value

    def clean(self):
        cleaned = super().clean()
        if self.continuing and cleaned.get("rows"):
            self.instance.start_rows = cleaned["rows"]  # not a field of this form: set on the run itself
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
