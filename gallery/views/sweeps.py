"""Sweeps: launch a grid of runs, watch it as a matrix, export it as a PNG figure or a zip.

The matrix page is the compare page laid out as a grid: the same slider, the same live parts
(swapped by live.js), the same crop zoom (compare.js), and the same ?iteration= and ?crop= in the
address.
"""
import csv
import io
import json
from functools import partial
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from PIL import Image, UnidentifiedImageError

from gallery import quotas
from gallery.access import get_project_for_user, get_sweep_for_user
from gallery.display import LOSS_FIELDS, compared_losses, format_duration, format_loss, swept_losses
from gallery.crop import clamp_region, full_size
from gallery.matrix_figure import cell_picture, matrix_png
from gallery.models import Sweep
from gallery.estimates import estimate_run, memory_refusal_within, workers_machine
from gallery.sweeps import SweepForm, choice_names, setting_label, sweep_progress, sweep_runs, value_text
from gallery.launching import LaunchError, launch_sweep
from gallery.views.pages import (
    iteration_text, iterations_by_run, parse_crop, render_page_or_live_parts, run_record,
    selected_iteration, shown_iteration, stream_zip, view_context, zip_entries, zip_response,
)
from gallery.views.runs import cancel_runs, content_aspect
from stylecore.schema import SETTING

# The sweep form starts as a 3 × 3 grid of the notebook's two favourite weights.
INITIAL_AXES = {
    "axis1-setting": "tv_weight", "axis1-values": "0.0001, 0.001, 0.01",
    "axis2-setting": "style_weight", "axis2-values": "0.1, 0.3, 1",
}


def _estimate(runs, aspect):
    """Seconds of computing for all the runs together (gallery.estimates, the launch form's
    estimator; each run also keeps its own), and whether the speeds were measured here."""
    total, measured, speeds = 0.0, True, {}
    for run in runs:
        estimate = estimate_run(run, aspect, measured=speeds)
        run.estimated_seconds = estimate.seconds
        total += estimate.seconds
        measured = measured and estimate.measured
    return total, measured


def _memory_refusal(runs, aspect):
    """The first of a sweep's runs too large for the workers' memory, as its refusal, or None."""
    machine = workers_machine()
    return next((refusal for refusal in (memory_refusal_within(run, aspect, machine) for run in runs) if refusal), None)


@require_http_methods(["GET", "POST"])
def sweep_create(request, project_id):
    """The sweep form: "Count and estimate" shows the grid's size and time; "Launch" queues it."""
    project = get_project_for_user(request, project_id, owner_only=True)
    form = SweepForm(request.POST if request.method == "POST" else None)
    if request.method == "GET":
        form.axis1.initial = {k.split("-")[1]: v for k, v in INITIAL_AXES.items() if k.startswith("axis1")}
        form.axis2.initial = {k.split("-")[1]: v for k, v in INITIAL_AXES.items() if k.startswith("axis2")}
    preview = None
    if request.method == "POST" and form.is_valid():
        aspect = content_aspect(project)
        runs = sweep_runs(project, form.cells)
        seconds, measured = _estimate(runs, aspect)
        preview = {
            "count": len(runs),
            "shape": " × ".join(str(len(values)) for _name, values in form.axes),
            "two_axes": len(form.axes) > 1,
            "seconds": format_duration(seconds),
            "measured": measured,
            "at_once": settings.USER_MAX_RUNNING_RUNS,
        }
        if "launch" in request.POST:
            sweep = Sweep(project=project)
            (sweep.axis1, sweep.axis1_values), *rest = form.axes
            if rest:
                sweep.axis2, sweep.axis2_values = rest[0]
            limits = partial(quotas.sweep_refusal, request.user, runs, aspect)
            error = _memory_refusal(runs, aspect) or limits()
            if error is None:
                try:
                    launch_sweep(sweep, runs, limits)
                    return redirect(sweep)
                except LaunchError as exc:
                    error = str(exc)
            form.grid_errors.append(error)
    context = {
        "form": form,
        "axis_forms": [form.axis1, form.axis2],
        "choice_names": choice_names(),
        "run_form": form.run_form,
        "project": project,
        "preview": preview,
        "max_runs": settings.SWEEP_MAX_RUNS,
        "queued_limit": settings.USER_MAX_QUEUED_RUNS,
        "sweep_limit": settings.USER_MAX_ACTIVE_SWEEPS,
    }
    return render(request, "gallery/sweep_form.html", context)


@require_POST
def sweep_cancel(request, sweep_id):
    """Cancel every run of the sweep that has not finished (running ones stop after their iteration)."""
    sweep = get_sweep_for_user(request, sweep_id, owner_only=True)
    cancel_runs(sweep.runs.all())
    return redirect(sweep.project if request.POST.get("next") == "project" else sweep)


# ---------------------------------------------------------------------------------------------
# The matrix page


def sweep_matrix(sweep, runs, selected, by_run):
    """Rows of the matrix (axis 1 down, axis 2 across): each {"value", "cells"}, a cell being
    {"run", "shown"} or None where the run is gone."""
    at = {(run.sweep_row, run.sweep_column): run for run in runs}
    columns = sweep.axis2_values or [None]
    rows = []
    for i, value in enumerate(sweep.axis1_values):
        cells = []
        for j in range(len(columns)):
            run = at.get((i, j))
            cells.append({"run": run, "shown": shown_iteration(by_run[run.id], selected)} if run else None)
        rows.append({"value": value_text(sweep.axis1, value), "cells": cells})
    return rows


def _view_query(selected, crop):
    query = {}
    if selected is not None:
        query["iteration"] = selected
    if crop:
        query["crop"] = ",".join(str(crop[key]) for key in ("x", "y", "w", "h"))
    return urlencode(query, safe=",")


def _sweep_state(request, sweep):
    runs = list(sweep.runs.order_by("sweep_row", "sweep_column"))
    by_run, numbers = iterations_by_run(runs)
    selected, slider_value = selected_iteration(request, numbers)
    crop = parse_crop(request.GET.get("crop"))
    return runs, by_run, numbers, selected, slider_value, crop


@require_GET
def sweep_detail(request, sweep_id):
    """The matrix at one iteration; with ?fragment=live, only the parts that change."""
    sweep = get_sweep_for_user(request, sweep_id)
    runs, by_run, numbers, selected, slider_value, crop = _sweep_state(request, sweep)
    matrix = sweep_matrix(sweep, runs, selected, by_run)
    columns = [cell for row in matrix for cell in row["cells"] if cell]
    view_query = _view_query(selected, crop)
    active = any(run.is_active for run in runs)
    live_query = view_query + ("&" if view_query else "") + "fragment=live"
    context = {
        "sweep": sweep,
        "project": sweep.project,
        "is_owner": sweep.project.owner_id == request.user.id,
        "axis1_label": setting_label(sweep.axis1),
        "axis2_label": setting_label(sweep.axis2),
        "column_values": [value_text(sweep.axis2, value) for value in sweep.axis2_values],
        "matrix": matrix,
        "columns": columns,
        "progress": sweep_progress(runs),
        "losses": compared_losses(runs, by_run),
        "against": swept_losses(sweep, runs, {cell["run"].id: cell["shown"] for cell in columns}),
        "view_query": view_query,
        "live_url": f"{reverse('sweep_detail', args=[sweep.id])}?{live_query}" if active else "",
    } | view_context(numbers, selected, slider_value, crop)
    return render_page_or_live_parts(request, "gallery/sweep_detail.html", "gallery/sweep_live.html", context)


# ---------------------------------------------------------------------------------------------
# Exports


def _open_image(iteration):
    """The iteration's full image as RGB, or None when its file is gone or unreadable."""
    if iteration is None:
        return None
    try:
        with iteration.image.open("rb") as handle:
            return Image.open(io.BytesIO(handle.read())).convert("RGB")
    except (OSError, ValueError, UnidentifiedImageError):
        return None


@require_GET
def sweep_png(request, sweep_id):
    """The matrix as one PNG with axis labels, at ?iteration= (else each run's last), cropped by ?crop=."""
    sweep = get_sweep_for_user(request, sweep_id)
    runs, by_run, numbers, selected, _slider, crop = _sweep_state(request, sweep)
    cells = []
    # The first image's size at its run's full size: crop coordinates are its pixels, as on the page.
    reference = None
    for row in sweep_matrix(sweep, runs, selected, by_run):
        line = []
        for cell in row["cells"]:
            if cell is None:
                line.append((None, "run deleted", ""))  # not "no image yet": none is coming
                continue
            shown = cell["shown"]
            caption = f"{cell['run'].label} · " + (f"it. {shown.number} · loss {format_loss(shown.loss)}" if shown
                                                    else cell["run"].get_status_display().lower())
            image = _open_image(shown)
            if image is not None:
                reference = reference or full_size(image.size, shown.rows, cell["run"].rows)
                image = cell_picture(image, crop, reference)  # one full image in memory at a time
            line.append((image, caption))
        cells.append(line)
    where = iteration_text(selected, numbers)
    if crop:
        crop = clamp_region(crop, reference)  # as the page's summary says it
        where += f" · crop x {crop['x']}, y {crop['y']}, {crop['w']}x{crop['h']} px"  # the font has no ×
    data = matrix_png(
        title=f"{sweep.project.title} · sweep {sweep.id} · {where}",
        fallback_title=f"Sweep {sweep.id} · {where}",  # where the font has no glyphs for the title's script
        axis1=setting_label(sweep.axis1),
        axis2=setting_label(sweep.axis2),
        row_values=[value_text(sweep.axis1, value) for value in sweep.axis1_values],
        column_values=[value_text(sweep.axis2, value) for value in sweep.axis2_values],
        cells=cells,
    )
    response = HttpResponse(data, content_type="image/png")
    suffix = f"-iteration-{selected}" if selected is not None else ""
    response["Content-Disposition"] = f'attachment; filename="sweep-{sweep.id}{suffix}.png"'
    response["Cache-Control"] = "private, no-store"
    return response


SETTING_COLUMNS = tuple(SETTING)
LOSS_COLUMNS = LOSS_FIELDS + ("evaluations", "seconds")


def _csv_text(sweep, runs, folders, records):
    """Every run's settings and every saved iteration's losses, one line per saved iteration."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    axes = [name for name in (sweep.axis1, sweep.axis2) if name]
    writer.writerow(["run", "label", "folder", "status", *[f"axis:{name}" for name in axes], *SETTING_COLUMNS,
                     "iteration", *LOSS_COLUMNS, "rows_computed", "width_computed", "image"])
    for run in runs:
        record = records[run.id]
        head = [run.id, run.label, folders[run.id], run.status, *[getattr(run, name) for name in axes],
                *[getattr(run, name) for name in SETTING_COLUMNS]]
        for saved in record["saved_iterations"] or [None]:
            if saved is None:
                writer.writerow(head)
                continue
            writer.writerow(head + [saved["number"], *[saved[name] for name in LOSS_COLUMNS],
                                    saved["rows"], saved["width"], f"{folders[run.id]}/{saved['file']}"])
    return buffer.getvalue()


def _losses_csv_text(sweep, runs, records):
    """Every computed iteration's losses of every run, one line each, for a chart in a spreadsheet."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    axes = [name for name in (sweep.axis1, sweep.axis2) if name]
    writer.writerow(["run", "label", *[f"axis:{name}" for name in axes], "iteration", *LOSS_FIELDS])
    for run in runs:
        head = [run.id, run.label, *[getattr(run, name) for name in axes]]
        for row in records[run.id]["losses"]:
            writer.writerow(head + [row["iteration"], *[row[name] for name in LOSS_FIELDS]])
    return buffer.getvalue()


@require_GET
def sweep_download(request, sweep_id):
    """A zip: sweep.csv (every run's settings and saved iterations), losses.csv (every computed
    iteration's losses), and each run's folder as the run download has it."""
    sweep = get_sweep_for_user(request, sweep_id)
    runs = list(sweep.runs.order_by("sweep_row", "sweep_column"))
    name = f"sweep-{sweep.id}"
    entries, texts, folders, records = [], [], {}, {}
    for run in runs:
        iterations = list(run.saved_iterations.order_by("number"))
        run_entries, file_names = zip_entries(run, iterations)
        folders[run.id] = f"{run.sweep_row + 1}-{run.sweep_column + 1}_output_{run.label}"
        records[run.id] = run_record(run, iterations, file_names)
        entries += [(f"{name}/{folders[run.id]}/{entry}", field_file) for entry, field_file in run_entries]
        texts.append((f"{name}/{folders[run.id]}/run.json", json.dumps(records[run.id], indent=2)))
    texts[:0] = [(f"{name}/sweep.csv", _csv_text(sweep, runs, folders, records)),
                 (f"{name}/losses.csv", _losses_csv_text(sweep, runs, records))]
    return zip_response(stream_zip(entries, texts), f"{sweep.project_id}-{name}.zip")

