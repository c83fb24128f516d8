"""Launching, cancelling and watching runs. Views never import the engine; gallery.tasks queues the work.

Continue from a saved iteration: ``/projects/<project_id>/runs/new/?from_run=<run_id>&from_iteration=<number>``.
"""
import math

from django.contrib import messages
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from gallery import quotas
from gallery.access import get_project_for_user, get_run_for_user
from gallery.models import Iteration, Run
from gallery.query import query_number
from gallery.run_forms import RunForm
from gallery.tasks import LaunchError, launch_run

# What a continued run takes over from the run it continues.
CONTINUED_SETTINGS = (
    "content_weight", "style_weight", "tv_weight", "iterations", "rows", "save_every", "style_fit", "optimizer",
    "precision",
)


def _get_continue_source(request, project):
    """The saved iteration named by ?from_run=&from_iteration=, of a run of this project; else 404."""
    from_run = request.GET.get("from_run")
    from_iteration = request.GET.get("from_iteration")
    if from_run is None and from_iteration is None:
        return None
    run_id = query_number(from_run)
    number = query_number(from_iteration, minimum=0)
    if run_id is None or number is None:
        raise Http404("No such iteration.")
    return get_object_or_404(Iteration.objects.select_related("run"), run__project=project, run_id=run_id, number=number)


def _launch(run, source):
    """Queue the run; the reason it could not be, or None."""
    try:
        launch_run(run, init_iteration=source)
    except LaunchError as exc:
        return str(exc)
    return None


def _aspect(project):
    """Width over height of the project's content image (the run's output has its shape)."""
    try:
        return project.content_image.width / project.content_image.height
    except (OSError, ValueError, ZeroDivisionError):
        return 4.0  # the widest an upload may be: the estimate stays an upper bound


@require_http_methods(["GET", "POST"])
def run_create(request, project_id):
    project = get_project_for_user(request, project_id, owner_only=True)
    source = _get_continue_source(request, project)
    initial = {name: getattr(source.run, name) for name in CONTINUED_SETTINGS} if source else {}
    form = RunForm(request.POST or None, initial=initial, continuing=source is not None)
    if request.method == "POST" and form.is_valid():
        run = form.save(commit=False)
        run.project = project
        error = quotas.run_refusal(request.user, run, _aspect(project)) or _launch(run, source)
        if error is None:
            messages.success(request, f"Run {run.label} is queued.")
            return redirect(run)
        form.add_error(None, error)
    context = {"form": form, "project": project, "source": source}
    return render(request, "gallery/run_form.html", context)


@require_POST
def run_cancel(request, run_id):
    """A queued run is cancelled at once; a running one stops at its next iteration."""
    run = get_run_for_user(request, run_id, owner_only=True)
    runs = Run.objects.filter(id=run.id)
    if runs.filter(status=Run.Status.QUEUED).update(
        status=Run.Status.CANCELLED, cancel_requested=True, finished=timezone.now()
    ):
        message = "Run cancelled."
    elif runs.filter(status=Run.Status.RUNNING).update(cancel_requested=True):
        message = "Cancelling: the run stops after its current iteration and keeps what it saved."
    else:
        message = "The run had already finished."
    run.refresh_from_db()
    if _wants_json(request):
        return JsonResponse({"status": run.status, "cancel_requested": run.cancel_requested, "message": message})
    messages.info(request, message)
    return redirect(run)


def _wants_json(request):
    return request.accepts("application/json") and not request.accepts("text/html")


def _number(value):
    """Floats for JSON: NaN and infinity (a diverged loss) become null."""
    return value if value is None or math.isfinite(value) else None


def _iteration_json(run, iteration):
    return {
        "number": iteration.number,
        "loss": _number(iteration.loss),
        "content_loss": _number(iteration.content_loss),
        "style_loss": _number(iteration.style_loss),
        "tv_loss": _number(iteration.tv_loss),
        "evaluations": iteration.evaluations,
        "seconds": iteration.seconds,
        "rows": iteration.rows,
        "width": iteration.width,
        "thumbnail_url": reverse("iteration_thumbnail", args=[run.id, iteration.number]),
        "image_url": reverse("iteration_image", args=[run.id, iteration.number]),
    }


@require_GET
def run_progress(request, run_id):
    """Status, losses, speed and ETA, plus the iterations saved after ``?after=<number>``."""
    run = get_run_for_user(request, run_id)
    raw_after = request.GET.get("after", "")
    # -1 (nothing seen yet) is what the page sends before the first saved iteration.
    after = -1 if raw_after in ("", "-1") else query_number(raw_after, minimum=0)
    if after is None:
        return JsonResponse({"error": "after must be an iteration number."}, status=400)
    saved = [_iteration_json(run, iteration) for iteration in run.saved_iterations.filter(number__gt=after)]
    latest = run.latest_iteration()
    data = {
        "id": run.id,
        "label": run.label,
        "status": run.status,
        "status_display": run.get_status_display(),
        "is_active": run.is_active,
        "cancel_requested": run.cancel_requested,
        "error": run.error,
        "notice": run.notice,
        "iteration": run.iterations_done,
        "iterations": run.iterations,
        "percent": run.progress_percent,
        "loss": _number(run.loss),
        "content_loss": _number(run.content_loss),
        "style_loss": _number(run.style_loss),
        "tv_loss": _number(run.tv_loss),
        "evaluations": run.evaluations,
        "seconds_per_iteration": run.seconds_per_iteration,
        "elapsed_seconds": run.elapsed_seconds,
        "eta_seconds": run.eta_seconds,
        "device": run.device,
        "started": run.started,
        "finished": run.finished,
        "latest_iteration": latest.number if latest else None,
        "latest_thumbnail_url": reverse("iteration_thumbnail", args=[run.id, latest.number]) if latest else None,
        "saved": saved,
    }
    response = JsonResponse(data)
    response["Cache-Control"] = "no-store"
    return response
