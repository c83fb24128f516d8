"""The run page (the notebook's print_iterations grid, live), the run download and the compare page.

Views only read rows and files; the loss chart comes from gallery.display as SVG data, so the
pages need no chart library and work offline.
"""
import json
import math
import posixpath
import time
import zipfile
from urllib.parse import urlencode

from django.db.models import Q
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from gallery.access import get_run_for_user
from gallery.display import format_duration, format_loss, loss_chart
from gallery.models import Iteration, Run, format_number
from gallery.query import query_number

MIN_COMPARED = 2
MAX_COMPARED = 6
# How often the run page asks the progress endpoint for news while a run is queued or running.
POLL_MILLISECONDS = 2000


def continue_url(run, number):
    """The launch form prefilled to start a new run from this saved iteration."""
    query = urlencode({"from_run": run.id, "from_iteration": number})
    return f"{reverse('run_create', args=[run.project_id])}?{query}"


# ---------------------------------------------------------------------------------------------
# Run page


def _saved_iterations(run):
    iterations = list(run.saved_iterations.order_by("number"))
    for iteration in iterations:
        iteration.loss_text = format_loss(iteration.loss)
        iteration.seconds_text = format_duration(iteration.seconds)
    return iterations


def _input_figures(run):
    """The grid's first two cells, style and base: the images as the engine saw them once the run
    has started, the project's uploads before that."""
    project_id = run.project_id
    style_url = (
        reverse("run_media", args=[run.id, "style"]) if run.style_image
        else reverse("project_media", args=[project_id, "style"])
    )
    base_url = (
        reverse("run_media", args=[run.id, "base"]) if run.base_image
        else reverse("project_media", args=[project_id, "content"])
    )
    return [
        {
            "title": "Style",
            "name": "output_at_iteration_0_style",
            "url": style_url,
            "thumbnail_url": reverse("project_media", args=[project_id, "style-thumb"]),
            "caption": "Style (as the engine saw it)" if run.style_image else "Style",
            "alt": "Style image",
        },
        {
            "title": "Base",
            "name": "output_at_iteration_0_base",
            "url": base_url,
            "thumbnail_url": reverse("project_media", args=[project_id, "content-thumb"]),
            "caption": f"Base (content) at {run.rows} rows" if run.base_image else "Base (content)",
            "alt": "Base (content) image",
        },
    ]


@require_GET
def run_detail(request, run_id):
    run = get_run_for_user(request, run_id)
    is_owner = run.project.owner_id == request.user.id
    iterations = _saved_iterations(run)
    chart = loss_chart(iterations, run.iterations)
    if request.GET.get("fragment") == "chart":
        # The live page refreshes its chart from here when new iterations arrive.
        return render(request, "gallery/_loss_chart.html", {"chart": chart, "run": run})
    if is_owner:
        for iteration in iterations:
            iteration.continue_url = continue_url(run, iteration.number)
    last_number = iterations[-1].number if iterations else -1
    return render(
        request,
        "gallery/run_detail.html",
        {
            "run": run,
            "project": run.project,
            "is_owner": is_owner,
            "inputs": _input_figures(run),
            "iterations": iterations,
            "latest": iterations[-1] if iterations else None,
            "last_number": last_number,
            "chart": chart,
            "settings_rows": _settings_rows(run),
            "eta_text": format_duration(run.eta_seconds),
            "seconds_per_iteration_text": format_duration(run.seconds_per_iteration),
            "elapsed_text": format_duration(run.elapsed_seconds),
            "loss_text": format_loss(run.loss),
            "poll_milliseconds": POLL_MILLISECONDS,
            # The live page fills in __N__ for iterations that arrive while it is open.
            "continue_url_template": continue_url(run, "__N__"),
        },
    )


def _precision(run):
    """What the run computes in: the precision used once a worker has chosen it, else the choice."""
    return run.precision_used or run.get_precision_display()


def _settings_rows(run):
    """(label, value) pairs describing a run, in the order the launch form asks for them."""
    rows = [
        ("Content weight", format_number(run.content_weight)),
        ("Style weight", format_number(run.style_weight)),
        ("Total variation weight", format_number(run.tv_weight)),
        ("Rows", f"{run.rows} px"),
        ("Iterations", run.iterations),
        ("Saved", "every iteration" if run.save_every == 1 else f"every {run.save_every} iterations"),
        ("Optimizer", run.get_optimizer_display()),
        ("Style fit", run.get_style_fit_display()),
        ("Starts from", run.get_init_display()),
        ("Start rows", run.start_rows if run.start_rows < run.rows else "one size"),
        ("Precision", _precision(run)),
    ]
    if run.init == Run.Init.ADAIN:
        rows.append(("AdaIN style strength", format_number(run.adain_alpha)))
    if run.converged:
        rows.append(("Ended", f"converged at iteration {run.iterations_done}"))
    if run.seed is not None:
        rows.append(("Seed", run.seed))
    if run.device:
        rows.append(("Device", run.device))
    return rows


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


def _finite_or_none(value):
    return value if value is not None and math.isfinite(value) else None


def run_record(run, iterations, file_names):
    """The settings and losses of a run, as written to run.json."""
    return {
        "project": run.project.title,
        "label": run.label,
        "settings": {
            "content_weight": run.content_weight,
            "style_weight": run.style_weight,
            "tv_weight": run.tv_weight,
            "rows": run.rows,
            "iterations": run.iterations,
            "save_every": run.save_every,
            "style_fit": run.style_fit,
            "optimizer": run.optimizer,
            "init": run.init,
            "adain_alpha": run.adain_alpha,
            "precision": run.precision,
            "precision_used": run.precision_used,
            "start_rows": run.start_rows,
            "init_iteration": (
                {"run": run.init_iteration.run_id, "number": run.init_iteration.number} if run.init_iteration else None
            ),
            "seed": run.seed,
        },
        "status": run.status,
        "error": run.error,
        "device": run.device,
        "iterations_done": run.iterations_done,
        "evaluations": run.evaluations,
        "elapsed_seconds": run.elapsed_seconds,
        "seconds_per_iteration": _finite_or_none(run.seconds_per_iteration),
        "created": run.created.isoformat() if run.created else None,
        "started": run.started.isoformat() if run.started else None,
        "finished": run.finished.isoformat() if run.finished else None,
        "saved_iterations": [
            {
                "number": it.number,
                "file": file_names[it.number],
                "loss": _finite_or_none(it.loss),
                "content_loss": _finite_or_none(it.content_loss),
                "style_loss": _finite_or_none(it.style_loss),
                "tv_loss": _finite_or_none(it.tv_loss),
                "evaluations": it.evaluations,
                "seconds": it.seconds,
                "rows": it.rows,
                "width": it.width,
            }
            for it in iterations
        ],
    }


def _zip_entries(run, iterations):
    """(name in the zip, stored file) pairs named as the notebook named its files, and each
    saved iteration's file name by number."""
    entries = []
    inputs = ((run.style_image, "output_at_iteration_0_style"), (run.base_image, "output_at_iteration_0_base"))
    for field_file, stem in inputs:
        if field_file and field_file.name:
            entries.append((stem + (posixpath.splitext(field_file.name)[1] or ".png"), field_file))
    names = {}
    for iteration in iterations:
        extension = posixpath.splitext(iteration.image.name)[1] or ".png"
        names[iteration.number] = f"output_at_iteration_{iteration.number}{extension}"
        entries.append((names[iteration.number], iteration.image))
    return entries, names


def _stream_zip(folder, entries, record):
    buffer = _ChunkBuffer()
    stamp = time.localtime()[:6]
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, field_file in entries:
            try:
                field_file.open("rb")
            except OSError:
                continue  # a file removed since the listing; the rest of the run is still worth having
            # Images are compressed already: store them rather than deflate them again.
            with field_file, archive.open(zipfile.ZipInfo(f"{folder}/{name}", stamp), "w") as target:
                while chunk := field_file.read(256 * 1024):
                    target.write(chunk)
                    yield buffer.take()
        info = zipfile.ZipInfo(f"{folder}/run.json", stamp)
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, json.dumps(record, indent=2))
    yield buffer.take()


@require_GET
def run_download(request, run_id):
    run = get_run_for_user(request, run_id)
    iterations = list(run.saved_iterations.order_by("number"))
    entries, file_names = _zip_entries(run, iterations)
    folder = f"output_{run.label}"
    record = run_record(run, iterations, file_names)
    response = StreamingHttpResponse(_stream_zip(folder, entries, record), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{run.project_id}-{folder}.zip"'
    response["Cache-Control"] = "private, no-store"
    return response


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


COMPARED_SETTINGS = (
    ("Project", lambda run: run.project.title),
    ("Content weight", lambda run: format_number(run.content_weight)),
    ("Style weight", lambda run: format_number(run.style_weight)),
    ("TV weight", lambda run: format_number(run.tv_weight)),
    ("Rows", lambda run: f"{run.rows} px"),
    ("Iterations", lambda run: str(run.iterations)),
    ("Optimizer", lambda run: run.get_optimizer_display()),
    ("Style fit", lambda run: "crop" if run.style_fit == Run.StyleFit.CROP else "resize"),
    ("Starts from", lambda run: run.get_init_display()),
    ("Start rows", lambda run: str(min(run.start_rows, run.rows))),
    ("Precision", _precision),
)


def _shown_iteration(iterations, selected):
    """The saved iteration to show for one run: the selected number, else the latest before it."""
    if not iterations:
        return None
    if selected is None:
        return iterations[-1]
    earlier = [it for it in iterations if it.number <= selected]
    return earlier[-1] if earlier else None


@require_GET
def compare(request):
    try:
        ids = parse_run_ids(request)
    except CompareError as error:
        return render(request, "gallery/compare.html", {"error": str(error)}, status=400)
    visible = Q(project__owner=request.user) | Q(project__is_public=True)
    found = {run.id: run for run in Run.objects.filter(visible, id__in=ids).select_related("project")}
    if len(found) != len(ids):
        raise Http404("No such run.")
    runs = [found[run_id] for run_id in ids]

    by_run = {run.id: [] for run in runs}
    saved = Iteration.objects.filter(run__in=runs).order_by("number").only("id", "run_id", "number", "loss", "seconds")
    for iteration in saved:
        by_run[iteration.run_id].append(iteration)
    numbers = sorted({it.number for its in by_run.values() for it in its})

    selected = query_number(request.GET.get("iteration"), minimum=0)
    if selected is not None and numbers and selected not in numbers:
        selected = max([n for n in numbers if n <= selected] or [numbers[0]])
    if not numbers:
        selected = None
    slider_value = numbers.index(selected) if selected is not None else len(numbers)

    differing = set()
    for name, value_of in COMPARED_SETTINGS:
        if len({value_of(run) for run in runs}) > 1:
            differing.add(name)
    columns = []
    script_runs = []
    for run in runs:
        iterations = by_run[run.id]
        shown = _shown_iteration(iterations, selected)
        settings = [
            {"name": name, "value": value_of(run), "differs": name in differing}
            for name, value_of in COMPARED_SETTINGS
            if name != "Project" or "Project" in differing
        ]
        loss_text = format_loss(shown.loss) if shown else "–"
        columns.append({"run": run, "shown": shown, "settings": settings, "loss_text": loss_text})
        script_runs.append(
            {
                "id": run.id,
                "label": run.label,
                "iterations": [
                    {
                        "number": it.number,
                        "image": reverse("iteration_image", args=[run.id, it.number]),
                        "loss": format_loss(it.loss),
                    }
                    for it in iterations
                ],
            }
        )
    crop = parse_crop(request.GET.get("crop"))
    return render(
        request,
        "gallery/compare.html",
        {
            "columns": columns,
            "runs": runs,
            "differing": [name for name, _v in COMPARED_SETTINGS if name in differing],
            "numbers": numbers,
            "selected": selected,
            "slider_value": slider_value,
            "crop": crop,
            "compare_data": {"runs": script_runs, "numbers": numbers, "crop": crop},
            "run_ids": ",".join(str(run_id) for run_id in ids),
        },
    )
