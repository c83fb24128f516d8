"""The run download and the compare page (live while its runs compute).

Views only read rows and files. The compare page's live updates are rendered from the same
partials as its first load.
"""
import json
import posixpath
import time
import zipfile
from urllib.parse import urlencode

from django.http import Http404, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from gallery.access import get_run_for_user, visible_runs
from gallery.display import (
    COMPARED_MOST_RUNS, LOSS_FIELDS, RUN_SETTINGS_SHOWN, compared_losses, computed_losses, finite_or_none,
    iteration_record, loss_rows, loss_values, losses_against, setting_axes,
)
from gallery.models import Iteration
from gallery.query import query_number
from gallery.views.runs import POLL_MILLISECONDS
from stylecore.schema import SETTING

MIN_COMPARED = 2
MAX_COMPARED = COMPARED_MOST_RUNS


# ---------------------------------------------------------------------------------------------
# Run download: a zip streamed as it is written, laid out like the notebook's output folder.


class _ChunkBuffer:
    """A write-only file object that hands what zipfile wrote to a streaming response."""

    def __init__(self):
        self.chunks = []

    def write(self, data):
        self.chunks.append(bytes(data))
        return len(data)

    def flush(self):
        pass

    def take(self):
        data = b"".join(self.chunks)
        self.chunks = []
        return data


def run_record(run, iterations, file_names):
    """The settings and losses of a run, as written to run.json."""
    return {
        "project": run.project.title,
        "label": run.label,
        "settings": {name: getattr(run, name) for name in SETTING} | {
            "precision_used": run.precision_used,
            "init_iteration": (
                {"run": run.init_iteration.run_id, "number": run.init_iteration.number} if run.init_iteration else None
            ),
            "style_blend": list(run.blend_weights),
        },
        "status": run.status,
        "error": run.error,
        "device": run.device,
        "iterations_done": run.iterations_done,
        "evaluations": run.evaluations,
        "elapsed_seconds": run.elapsed_seconds,
        "seconds_per_iteration": finite_or_none(run.seconds_per_iteration),
        "created": run.created.isoformat() if run.created else None,
        "started": run.started.isoformat() if run.started else None,
        "finished": run.finished.isoformat() if run.finished else None,
        "saved_iterations": [
            iteration_record(it) | {"file": file_names[it.number]}
            for it in iterations
        ],
        "losses": [
            {"iteration": row.number} | loss_values(row)
            for row in computed_losses(iterations, loss_rows(run.loss_points))
        ],
    }


def zip_entries(run, iterations):
    """(name in the zip, stored file) pairs named as the notebook named its files, and each
    saved iteration's file name by number."""
    entries = []
    inputs = [(run.style_image, "output_at_iteration_0_style"), (run.base_image, "output_at_iteration_0_base")]
    inputs += [(style.source, f"style_{style.position}") for style in run.extra_styles.all()]
    for field_file, stem in inputs:
        if field_file and field_file.name:
            entries.append((stem + (posixpath.splitext(field_file.name)[1] or ".png"), field_file))
    names = {}
    for iteration in iterations:
        extension = posixpath.splitext(iteration.image.name)[1] or ".png"
        names[iteration.number] = f"output_at_iteration_{iteration.number}{extension}"
        entries.append((names[iteration.number], iteration.image))
    return entries, names


def stream_zip(entries, texts):
    """Chunks of a zip of stored files [(name, file field)], then of texts [(name, str)]."""
    buffer = _ChunkBuffer()
    stamp = time.localtime()[:6]
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, field_file in entries:
            try:
                field_file.open("rb")
            except OSError:
                continue  # a file removed since the listing; the rest is still worth having
            # Images are compressed already: store them rather than deflate them again.
            with field_file, archive.open(zipfile.ZipInfo(name, stamp), "w") as target:
                while chunk := field_file.read(256 * 1024):
                    target.write(chunk)
                    yield buffer.take()
        for name, text in texts:
            info = zipfile.ZipInfo(name, stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, text)
    yield buffer.take()


def zip_response(chunks, filename):
    response = StreamingHttpResponse(chunks, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    return response


@require_GET
def run_download(request, run_id):
    run = get_run_for_user(request, run_id)
    iterations = list(run.saved_iterations.order_by("number"))
    entries, file_names = zip_entries(run, iterations)
    folder = f"output_{run.label}"
    record = run_record(run, iterations, file_names)
    chunks = stream_zip(
        [(f"{folder}/{name}", field_file) for name, field_file in entries],
        [(f"{folder}/run.json", json.dumps(record, indent=2))],
    )
    return zip_response(chunks, f"{run.project_id}-{folder}.zip")


# ---------------------------------------------------------------------------------------------
# Compare page: 2–6 runs side by side at one iteration, with a zoomed crop of one region.


class CompareError(Exception):
    pass


def parse_run_ids(request):
    """Run ids from ?runs=1,2,3 (or repeated ?runs=1&runs=2 from the project page's checkboxes)."""
    ids = []
    for part in ",".join(request.GET.getlist("runs")).split(","):
        part = part.strip()
        if not part:
            continue
        run_id = query_number(part)
        if run_id is None:
            raise CompareError(f"“{part[:30]}” is not a run number. Use ?runs=1,2,3.")
        if run_id not in ids:
            ids.append(run_id)
    if len(ids) < MIN_COMPARED:
        raise CompareError(f"Choose at least {MIN_COMPARED} runs to compare (you chose {len(ids)}).")
    if len(ids) > MAX_COMPARED:
        raise CompareError(f"Compare at most {MAX_COMPARED} runs at a time (you chose {len(ids)}).")
    return ids


def parse_crop(value):
    """x,y,width,height in the full image's pixels, or None when absent or malformed."""
    parts = value.split(",") if value else []
    if len(parts) != 4:
        return None
    x, y, width, height = (query_number(part, minimum=minimum) for part, minimum in zip(parts, (0, 0, 1, 1)))
    if None in (x, y, width, height):
        return None
    return {"x": x, "y": y, "w": width, "h": height}


COMPARED_SETTINGS = (("Project", lambda run: run.project.title),) + RUN_SETTINGS_SHOWN


def selected_iteration(request, numbers):
    """?iteration=N as one of the saved numbers (the latest at or before N), or None for each
    run's last; and the slider's position for it (one past the numbers: "each run's last")."""
    selected = query_number(request.GET.get("iteration"), minimum=0)
    if selected is not None and numbers and selected not in numbers:
        selected = max([n for n in numbers if n <= selected] or [numbers[0]])
    if not numbers:
        selected = None
    return selected, numbers.index(selected) if selected is not None else len(numbers)


def iterations_by_run(runs):
    """{run id: its saved iterations in order} (only the fields the pages need), and every number saved."""
    by_run = {run.id: [] for run in runs}
    saved = Iteration.objects.filter(run__in=runs).order_by("number").only(
        "id", "run_id", "number", "seconds", "rows", "width", *LOSS_FIELDS)
    for iteration in saved:
        by_run[iteration.run_id].append(iteration)
    return by_run, sorted({it.number for its in by_run.values() for it in its})


def shown_iteration(iterations, selected):
    """The saved iteration to show for one run: the selected number, else the latest before it."""
    if not iterations:
        return None
    if selected is None:
        return iterations[-1]
    earlier = [it for it in iterations if it.number <= selected]
    return earlier[-1] if earlier else None


def iteration_text(selected, numbers):
    """The slider's words: "iteration 40 of 400", or "each run's last"."""
    if selected is None:
        return "each run’s last iteration"
    return f"iteration {selected} of {numbers[-1]}"


@require_GET
def compare(request):
    """2–6 runs side by side in launch order; with ?fragment=live, only the parts that change."""
    try:
        ids = parse_run_ids(request)
    except CompareError as error:
        return render(request, "gallery/compare.html", {"error": str(error)}, status=400)
    runs = list(visible_runs(request.user).filter(id__in=ids).order_by("created", "id")
                .prefetch_related("extra_styles"))
    if len(runs) != len(ids):
        raise Http404("No such run.")

    by_run, numbers = iterations_by_run(runs)

    selected, slider_value = selected_iteration(request, numbers)

    differing = set()
    for name, value_of in COMPARED_SETTINGS:
        if len({value_of(run) for run in runs}) > 1:
            differing.add(name)
    columns = []
    for run in runs:
        settings = [
            {"name": name, "value": value_of(run), "differs": name in differing}
            for name, value_of in COMPARED_SETTINGS
            if name != "Project" or "Project" in differing
        ]
        columns.append({"run": run, "shown": shown_iteration(by_run[run.id], selected), "settings": settings})
    axes = setting_axes(runs)  # the settings that differ, for the losses against them
    crop = parse_crop(request.GET.get("crop"))
    query = {"runs": ",".join(str(run_id) for run_id in ids), "fragment": "live"}
    if selected is not None:
        query["iteration"] = selected
    context = {
        "columns": columns,
        "runs": runs,
        "differing": [name for name, _v in COMPARED_SETTINGS if name in differing],
        "losses": compared_losses(runs, by_run),
        "against": losses_against(axes, runs, {column["run"].id: column["shown"] for column in columns})
        if axes else None,
        "live_url": f"{reverse('compare')}?{urlencode(query)}" if any(run.is_active for run in runs) else "",
    } | view_context(numbers, selected, slider_value, crop)
    return render_page_or_live_parts(request, "gallery/compare.html", "gallery/compare_live.html", context)


def view_context(numbers, selected, slider_value, crop):
    """What the slider, the crop form and the live poller of a compare or sweep page need."""
    return {
        "numbers": numbers,
        "selected": selected,
        "iteration_text": iteration_text(selected, numbers),
        "slider_value": slider_value,
        "crop": crop,
        "poll_milliseconds": POLL_MILLISECONDS,
    }


def render_page_or_live_parts(request, page_template, live_template, context):
    """The page; with ?fragment=live only its live parts, never cached."""
    if request.GET.get("fragment") == "live":
        response = render(request, live_template, context)
        response["Cache-Control"] = "no-store"
        return response
    return render(request, page_template, context)
