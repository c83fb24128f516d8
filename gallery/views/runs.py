"""Launching, cancelling and watching runs. Views never import the engine; gallery.launching queues the work.

Continue from a saved iteration: ``/projects/<project_id>/runs/new/?from_run=<run_id>&from_iteration=<number>``.
"""
from functools import partial
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.db import transaction
from django.http import Http404, HttpResponseBadRequest, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from gallery import files, quotas
from gallery.access import get_project_for_user, get_run_for_user
from gallery.display import (
    format_loss, iteration_record, loss_chart, loss_rows, loss_values, settings_rows,
)
from gallery.estimates import (
    content_aspect, enlarged_note, estimate_run, expected_starts, memory_refusal, turn_ends,
)
from gallery.previews import current_preview, preview_context, shown_alpha
from gallery.models import RUN_DEFAULTS, Iteration, Run
from gallery.query import query_number
from gallery.run_forms import RunForm
from gallery.launching import LaunchError, launch_run
from stylecore.schema import SETTING

# How often a live page asks for news while a run is queued or running.
POLL_MILLISECONDS = 2000

# What a continued run takes over from the run it continues: every setting but its start.
CONTINUED_SETTINGS = tuple(name for name in SETTING if name not in ("init", "adain_alpha", "start_rows", "seed"))


def continue_source(request, project):
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


class _RunStyleCopy:
    """One of a run's own style images, in the shape of a project's style slot (``.image``)."""

    def __init__(self, image):
        self.image = image


def continued_styles(run):
    """The style images a continued run keeps: the run's own copies, in blend order (its project's
    may have changed since); the project's first style image for a run from before the copies."""
    if not run.style_source:
        return None
    return [_RunStyleCopy(image) for image in run.style_files()]


def _launch(run, source, style_slots, limits):
    """Queue the run; the reason it could not be, or None."""
    try:
        launch_run(run, init_iteration=source, style_slots=style_slots, limits=limits)
    except LaunchError as exc:
        return str(exc)
    return None


@require_http_methods(["GET", "POST"])
def run_create(request, project_id):
    project = get_project_for_user(request, project_id, owner_only=True)
    source = continue_source(request, project)
    initial = {name: getattr(source.run, name) for name in CONTINUED_SETTINGS} if source else _preview_start(request)
    # A continued run keeps the styles and blend of the run it continues: no blend to choose.
    slots = [project] if source else project.style_slots()
    form = RunForm(request.POST or None, initial=initial, continuing=source is not None, style_count=len(slots))
    if request.method == "POST" and form.is_valid():
        run = form.save(commit=False)
        run.project = project
        if source:
            run.style_blend = source.run.style_blend
        aspect = content_aspect(project)
        run.estimated_seconds = estimate_run(run, aspect).seconds
        styles = continued_styles(source.run) if source else form.chosen_styles(slots)
        limits = partial(quotas.run_refusal, request.user, run, aspect)
        error = memory_refusal(run, aspect) or limits() or _launch(run, source, styles, limits)
        if error is None:
            # No flash message: the run page says the run's current state, and keeps saying it.
            return redirect(run)
        form.add_error(None, error)
    estimate_form = form if request.method == "POST" else RunForm(
        _initial_data(form), continuing=source is not None, style_count=len(slots)
    )
    context = {"form": form, "project": project, "source": source, "style_count": len(slots)}
    context |= estimate_context(estimate_form, project, request.user)
    if source is None:
        # The style at full strength, as on the project page; opened from a preview at another
        # strength ("Start a run from this preview"), that one.
        alpha = shown_alpha(request.GET.get("adain_alpha"))
        context |= preview_context(project, current_preview(project, alpha), alpha)
    return render(request, "gallery/run_form.html", context)


def estimate_context(form, project, user):
    """What _estimate.html shows for a launch form's values (no estimate while they are invalid, but
    the labels of the fields that are not), and why the workers' machine could not compute the run,
    if it could not."""
    if not form.is_valid():
        return {"estimate": None, "invalid": [field.label for field in form if field.errors]}
    run = form.save(commit=False)
    run.project = project
    aspect = content_aspect(project)
    return {"estimate": estimate_run(run, aspect, owner=user), "too_large": memory_refusal(run, aspect),
            "enlarged": "" if form.continuing else enlarged_note(project, run.rows)}


def _preview_start(request):
    """?init=adain&adain_alpha=A (the preview's "Start a run from this preview"): the form prefilled."""
    if request.GET.get("init") != Run.Init.ADAIN:
        return {}
    alpha = shown_alpha(request.GET.get("adain_alpha"), RUN_DEFAULTS["adain_alpha"])
    return {"init": Run.Init.ADAIN, "adain_alpha": alpha}


def _initial_data(form):
    """The unbound form's initial values as the data a browser would submit."""
    return {name: form[name].value() for name in form.fields if form[name].value() is not None}


def cancel_runs(runs):
    """Cancel the queued runs among ``runs`` at once and ask the running ones to stop (after the
    evaluation each is computing); (how many were cancelled, how many are stopping)."""
    cancelled = runs.filter(status=Run.Status.QUEUED).update(
        status=Run.Status.CANCELLED, cancel_requested=True, finished=timezone.now()
    )
    return cancelled, runs.filter(status=Run.Status.RUNNING).update(cancel_requested=True)


@require_POST
def run_cancel(request, run_id):
    """A queued run is cancelled at once; a running one stops after the evaluation it is computing.

    The run page then shows the run's state ("Cancelling…", later "cancelled"), so there is no
    flash message to go stale."""
    run = get_run_for_user(request, run_id, owner_only=True)
    cancelled, stopping = cancel_runs(Run.objects.filter(id=run.id))
    if cancelled:
        message = "Run cancelled."
    elif stopping:
        message = CANCELLING
    else:
        message = "The run had already finished."
    run.refresh_from_db()
    if _wants_json(request):
        return JsonResponse({"status": run.status, "cancel_requested": run.cancel_requested, "message": message})
    return redirect(run)


def _wants_json(request):
    return request.accepts("application/json") and not request.accepts("text/html")


@require_GET
def run_progress(request, run_id):
    """Status, losses, speed and ETA, plus the iterations saved after ``?after=<number>`` (JSON)."""
    run = get_run_for_user(request, run_id)
    after = _after(request)
    if after is None:
        return JsonResponse({"error": "after must be an iteration number."}, status=400)
    saved = [
        iteration_record(iteration)
        | {
            "thumbnail_url": reverse("iteration_thumbnail", args=[run.id, iteration.number]),
            "image_url": iteration.get_absolute_url(),
        }
        for iteration in run.saved_iterations.filter(number__gt=after)
    ]
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
        **loss_values(run),
        "evaluations": run.evaluations,
        "next_iteration_evaluations": run.next_iteration_done,
        "seconds_per_iteration": run.seconds_per_iteration,
        "elapsed_seconds": run.elapsed_seconds,
        "eta_seconds": run.eta_seconds,
        "turn_ends": turn_ends(run),
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


def _after(request):
    """?after=<number>: the last iteration the page already shows (-1 when absent, as the page sends
    before the first saved iteration); None when it is not an iteration number."""
    raw = request.GET.get("after", "")
    return -1 if raw in ("", "-1") else query_number(raw, minimum=0)


# ---------------------------------------------------------------------------------------------
# Run page: the notebook's print_iterations grid, live. The first load and every live update
# are rendered from the same partials; the page's script only swaps what changed.

CANCELLING = ("Cancelling: the run stops after the step it is computing and keeps the iterations it saved, "
              "and the last one it completed.")


def cancelled_text(run, latest):
    """Where a cancelled run stopped and what it kept, ``latest`` being its latest saved iteration."""
    if latest is None:
        if run.started is None:
            return "This run was cancelled before it started, so it has no iterations."
        return "This run was cancelled before it saved any iteration."
    if latest.number >= run.iterations_done:
        return (f"This run was cancelled at iteration {latest.number}. "
                f"Its saved iterations are kept, iteration {latest.number} included.")
    # Its worker stopped after computing further (gone, or shut down), and the run was cancelled before it went on.
    return (f"This run was cancelled at iteration {run.iterations_done}. "
            f"Its saved iterations are kept, up to iteration {latest.number}.")


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
            "alt": f"Style image of run {run.label}",
        },
        {
            "title": "Base",
            "name": "output_at_iteration_0_base",
            "url": base_url,
            "thumbnail_url": reverse("project_media", args=[project_id, "content-thumb"]),
            "caption": f"Base (content) at {run.rows} rows" if run.base_image else "Base (content)",
            "alt": f"Base (content) image of run {run.label}",
        },
    ]


def _settings_rows(run):
    """(label, value) pairs describing a run, in the order the launch form asks for them."""
    rows = settings_rows(run)
    if run.converged:
        rows.append(("Ended", f"converged at iteration {run.iterations_done}"))
    if run.device:
        rows.append(("Device", run.device))
    return rows


def announcement(run, latest):
    """What a screen reader hears, politely: a change of state, and progress in tenths, so that
    a live page speaks every few seconds at most (``latest``: the run's latest saved iteration)."""
    if run.status == Run.Status.QUEUED:
        return "Queued: waiting for a worker."
    if run.status == Run.Status.RUNNING:
        if run.cancel_requested:
            return "Cancelling."
        return f"Running: {run.progress_percent // 10 * 10}% done."
    if run.status == Run.Status.DONE:
        return f"Done: {run.iterations_done} iterations, final loss {format_loss(run.loss)}."
    if run.status == Run.Status.FAILED:
        return "Failed."
    return cancelled_text(run, latest)


def _live_url(run, last_number):
    return f"{reverse('run_detail', args=[run.id])}?{urlencode({'fragment': 'live', 'after': last_number})}"


@require_GET
def run_detail(request, run_id):
    """The run page; with ?fragment=live&after=N, only its live parts and the iterations after N."""
    run = get_run_for_user(request, run_id)
    live = request.GET.get("fragment") == "live"
    after = _after(request) if live else -1
    if after is None:
        return HttpResponseBadRequest("after must be an iteration number.")
    iterations = list(run.saved_iterations.all())
    latest = iterations[-1] if iterations else None
    context = {
        "run": run,
        "project": run.project,
        "is_owner": run.project.owner_id == request.user.id,
        "iterations": [it for it in iterations if it.number > after],
        "saved_count": len(iterations),
        "latest": latest,
        "chart": loss_chart(run, iterations, loss_rows(run.loss_points)),
        "cancelling_text": CANCELLING,
        "announcement": announcement(run, latest),
        "cancelled_text": cancelled_text(run, latest) if run.status == Run.Status.CANCELLED else "",
        "live_url": _live_url(run, latest.number if latest else -1) if run.is_active else "",
        "poll_milliseconds": POLL_MILLISECONDS,
    }
    context["queue_ahead"], context["expected_start"] = expected_starts([run]).get(run.id, (None, None))
    now = timezone.now()
    context["turn_ends"] = turn_ends(run, now)
    context["turn_over"] = context["turn_ends"] == now  # no turn left: it pauses at this iteration's end
    context["turn_seconds"] = settings.RUN_TURN_SECONDS
    if live:
        response = render(request, "gallery/run_live.html", context)
        response["Cache-Control"] = "no-store"
        return response
    context.update(inputs=_input_figures(run), settings_rows=_settings_rows(run))
    return render(request, "gallery/run_detail.html", context)


@require_http_methods(["GET", "POST"])
def run_delete(request, run_id):
    """A finished, failed or cancelled run goes with its saved iterations and their files; a run
    still queued or computing is cancelled first. The pictures it computed from are the project's
    (gallery.run_inputs, shared with its other runs) and stay with it."""
    run = get_run_for_user(request, run_id, owner_only=True)
    project = run.project
    context = {"name": run.label, "button": "Delete run", "keep_url": run.get_absolute_url()}
    if run.is_active:
        context["refusal"] = "The run is still queued or computing: cancel it first, then delete it."
        return render(request, "gallery/confirm_delete.html", context, status=409 if request.method == "POST" else 200)
    if request.method == "POST":
        shared = set(project.run_inputs.values_list("file", flat=True))
        with transaction.atomic():
            names = [name for name in files.stored_names(run.image_files()) if name not in shared]
            deleted, _rows = Run.objects.filter(id=run.id, status__in=Run.FINISHED).delete()
            files.delete_names_on_commit(names)
        if deleted:
            messages.success(request, f"Run {run.label} deleted with its saved iterations.")
        return redirect(project)
    count = run.saved_iterations.count()
    context["consequence"] = f"This removes the run and its {count} saved iteration{pluralize(count)}."
    return render(request, "gallery/confirm_delete.html", context)
