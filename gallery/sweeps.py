"""Sweeps: the settings a user may vary, the sweep form, and the grid of runs it makes.

Every value of every axis is checked by the launch form itself (gallery.run_forms.RunForm): each
cell of the grid is validated as the run it will be, so a sweep obeys exactly the rules of a
single launch and there is no second copy of them here.
"""
import itertools
import math
import re

from django import forms
from django.conf import settings

from gallery.models import Run
from gallery.run_forms import RunForm, set_bounds
from stylecore.schema import SETTING, SETTINGS

# The run settings a sweep may vary (stylecore.schema), in the order the form offers them.
SWEEPABLE = tuple(setting.name for setting in SETTINGS if setting.sweep)
# Settings spanning decades (the weights) may also be given as "log-spaced from A to B in N steps".
LOG_SPACEABLE = tuple(setting.name for setting in SETTINGS if setting.sweep == "log")
_SEPARATORS = re.compile(r"[\s,;]+")


def setting_field(name):
    """The launch form's field for a sweepable setting (with the form's own validators)."""
    return RunForm().fields[name]


def setting_label(name):
    return SETTING[name].label if name else ""


def value_text(name, value):
    """An axis value as headers and labels show it: weights as the notebook wrote them, choices by label."""
    return SETTING[name].text(value)


def _choice_values(field):
    return [value for value, _label in field.choices if value != ""]


def log_spaced(start, stop, steps):
    """``steps`` values from start to stop, evenly spaced in log scale, to three significant digits."""
    if steps == 1:
        return [start]
    # In logs, so that no quotient or product of the ends can underflow or overflow (1e-300 to 1e300).
    low, ratio = math.log(start), math.log(stop) - math.log(start)
    return [float(f"{math.exp(low + ratio * i / (steps - 1)):.3g}") for i in range(steps)]


class SweepAxisForm(forms.Form):
    """One axis: a setting and its values, typed or (for weights) log-spaced. Its form-wide errors are
    about its values: the error summary links them there."""

    summary_field = "values"

    setting = forms.ChoiceField(required=False)
    values = forms.CharField(
        required=False, max_length=1000,
        help_text="Separated by commas or spaces, e.g. 0.0001, 0.001, 0.01. For a choice, its names; "
                  "blank: every choice.",
    )
    log_from = forms.FloatField(required=False, label="Log-spaced from")
    log_to = forms.FloatField(required=False, label="to")
    log_steps = forms.IntegerField(required=False, label="in steps")

    def __init__(self, *args, required=True, **kwargs):
        super().__init__(*args, **kwargs)
        self.required = required
        choices = [(name, setting_label(name)) for name in SWEEPABLE]
        self.fields["setting"].choices = ([] if required else [("", "— none: one row —")]) + choices
        self.fields["setting"].label = "Setting down the matrix" if required else "Setting across the matrix"
        self.legend = "Down the matrix (rows)" if required else "Across the matrix (columns, optional)"
        self.summary_place = "down the matrix" if required else "across the matrix"
        # The maximum is the settings' of the moment, so the bounds are set here, not on the class.
        set_bounds(self.fields["log_steps"], 2, settings.SWEEP_MAX_RUNS)
        for name in ("log_from", "log_to"):
            self.fields[name].widget.attrs.update(step="any", min=0)

    def clean(self):
        cleaned = super().clean()
        name = cleaned.get("setting")
        if not name:
            if self.required:
                self.add_error("setting", "Choose the setting to vary.")
            cleaned["resolved"] = []
            return cleaned
        log = [cleaned.get(key) for key in ("log_from", "log_to", "log_steps")]
        typed = (cleaned.get("values") or "").strip()
        if any(value is not None for value in log):
            cleaned["resolved"] = self._log_values(name, typed, *log)
        else:
            cleaned["resolved"] = self._typed_values(name, typed)
        return cleaned

    def _log_values(self, name, typed, start, stop, steps):
        if name not in LOG_SPACEABLE:
            raise forms.ValidationError(f"Only weights can be log-spaced; type the values of {setting_label(name)}.")
        if typed:
            # The form starts with values typed in: say which box to empty.
            raise forms.ValidationError(
                "Type the values or give a log-spaced range, not both: empty Values to use the range.")
        if None in (start, stop, steps):
            raise forms.ValidationError("A log-spaced range needs a start, an end and a number of steps.")
        if not (math.isfinite(start) and math.isfinite(stop)) or start <= 0 or stop <= 0:
            raise forms.ValidationError("A log-spaced range runs between two numbers above 0.")
        values = log_spaced(start, stop, steps)
        if len(set(values)) != len(values):
            raise forms.ValidationError("These steps are too close together to tell apart; use fewer steps.")
        return values

    def _typed_values(self, name, typed):
        field = setting_field(name)
        tokens = [token for token in _SEPARATORS.split(typed) if token]
        if not tokens:
            if isinstance(field, forms.ChoiceField):
                return _choice_values(field)
            raise forms.ValidationError(f"Type the values of {setting_label(name)} to try, or a log-spaced range.")
        if len(tokens) > settings.SWEEP_MAX_RUNS:
            raise forms.ValidationError(f"At most {settings.SWEEP_MAX_RUNS} values per axis (you typed {len(tokens)}).")
        values = []
        for token in tokens:
            try:
                value = field.clean(token)
            except forms.ValidationError as error:
                raise forms.ValidationError(f"“{token[:30]}”: {' '.join(error.messages)}") from None
            if value in values:
                raise forms.ValidationError(f"“{token[:30]}” is there twice; each value makes one run.")
            values.append(value)
        return values


def _form_value(value):
    return repr(value) if isinstance(value, float) else str(value)


class SweepForm:
    """The two axis forms and the launch form for every other setting, checked together.

    ``cells`` (after is_valid) holds (row, column, cleaned run settings) for every run of the grid.
    """

    def __init__(self, data=None):
        self.data = data
        self.axis1 = SweepAxisForm(data, prefix="axis1")
        self.axis2 = SweepAxisForm(data, prefix="axis2", required=False)
        self.run_form = RunForm(data)
        self.grid_errors = []  # messages about the whole grid
        self.cells = []

    @property
    def axes(self):
        """[(setting, values)] of the axes given, the first down and the second across."""
        return [(form.cleaned_data["setting"], form.cleaned_data["resolved"])
                for form in (self.axis1, self.axis2) if form.cleaned_data.get("setting")]

    def run_count(self):
        return math.prod(len(values) for _name, values in self.axes)

    def is_valid(self):
        if self.data is None or not (self.axis1.is_valid() & self.axis2.is_valid()):
            self._check_base(())
            return False
        axes = self.axes
        names = [name for name, _values in axes]
        if len(set(names)) != len(names):
            self.axis2.add_error("setting", "Choose two different settings, or none across.")
            return False
        count = self.run_count()
        most = settings.SWEEP_MAX_RUNS
        if count > most:
            sizes = " × ".join(str(len(values)) for _name, values in axes)
            self.grid_errors.append(
                f"This sweep would launch {count} runs ({sizes}); a sweep may launch at most {most}. "
                "Use fewer values."
            )
            return False
        base_ok = self._check_base(names)
        return self._check_cells(axes) and base_ok

    def _check_base(self, swept):
        """The launch form's own errors, less those of the swept settings (each cell checks those)."""
        self.run_form.is_valid()
        for name in list(swept) + ["__all__"]:
            self.run_form.errors.pop(name, None)
        return not self.run_form.errors

    def _check_cells(self, axes):
        """Validate every cell of the grid as the run it will be, with the launch form's rules."""
        names = [name for name, _values in axes]
        grid = [list(enumerate(values)) for _name, values in axes]
        problems = []
        for combination in itertools.product(*grid):
            data = self.data.copy()
            for name, (_index, value) in zip(names, combination):
                data[name] = _form_value(value)
            form = RunForm(data)
            if form.is_valid():
                indices = [index for index, _value in combination] + [0]
                self.cells.append((indices[0], indices[1], form.cleaned_data))
                continue
            where = ", ".join(f"{setting_label(name)} {value_text(name, value)}"
                              for name, (_index, value) in zip(names, combination))
            for field, messages in form.errors.items():
                if field in names or field == "__all__":
                    for message in messages:
                        problems.append(f"The run with {where}: {message}")
        for message in dict.fromkeys(problems):  # each message once, in grid order
            self.grid_errors.append(message)
        return not problems


def sweep_runs(project, cells):
    """Unsaved runs of the project, one per cell (row-major, so the queue fills the matrix by rows)."""
    fields = RunForm._meta.fields
    runs = []
    for row, column, cleaned in cells:
        run = Run(project=project, sweep_row=row, sweep_column=column,
                  **{name: cleaned[name] for name in fields if name in cleaned})
        runs.append(run)
    return runs


def sweep_progress(runs):
    """How far a sweep's runs are: counts by status and the share of iterations done (with the part
    done of each iteration in progress)."""
    total = sum(run.iterations for run in runs) or 1
    done = sum(run.progress_value for run in runs)
    statuses = [run.status for run in runs]
    return {
        "runs": len(runs),
        "active": sum(status in Run.ACTIVE for status in statuses),
        "done": statuses.count(Run.Status.DONE),
        "failed": statuses.count(Run.Status.FAILED),
        "cancelled": statuses.count(Run.Status.CANCELLED),
        "percent": round(100 * done / total),
    }


def choice_names():
    """[(setting label, its values' names)] for the sweepable choices: what the values box accepts."""
    return [(setting_label(name), _choice_values(setting_field(name)))
            for name in SWEEPABLE if isinstance(setting_field(name), forms.ChoiceField)]
