"""The instant preview: an AdaIN picture of a project's images, computed on the preview lane.

The web process never computes: ``request_preview`` finds the cached Preview for (content file,
style file, alpha, rows, colour) or creates it and queues ``compute_preview`` on the preview
cluster (settings.PREVIEW_CLUSTER), which its own worker serves (``WORKER_LANE=preview manage.py
worker``; ``make run`` starts it). That worker keeps the engine, and with it the AdaIN model and
the encodings of recent images, loaded between previews, so moving the alpha slider only decodes
again. A run never waits behind a preview and a preview never waits behind a run.
"""
import logging
import math
import time
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_q.tasks import async_task
from PIL import Image

from gallery import files
from gallery.models import Lane, Preview
from stylecore.settings import PREVIEW_ALPHA

log = logging.getLogger(__name__)

COMPUTE_PREVIEW = "gallery.previews.compute_preview"
WARM_UP = "gallery.previews.warm_up"
LANE = "preview"
# The alpha slider's step: previews are cached per step, so at most 21 per pair of images.
ALPHA_STEP = 0.05


def parse_alpha(value, default=None):
    """A request's alpha as a float from 0 to 1, or ``default`` when it is missing or not one."""
    try:
        alpha = float(value)
    except (TypeError, ValueError):
        return default
    return alpha if math.isfinite(alpha) and 0.0 <= alpha <= 1.0 else default


def snap_alpha(alpha):
    return round(round(min(1.0, max(0.0, alpha)) / ALPHA_STEP) * ALPHA_STEP, 2)


def shown_alpha(value, default=PREVIEW_ALPHA):
    """The slider position a page opens the preview at: a request's alpha, else full strength."""
    return snap_alpha(parse_alpha(value, default))


def _enqueue(func, *args):
    async_task(func, *args, cluster=settings.PREVIEW_CLUSTER, group="previews")


def request_preview(project, alpha, colour=""):
    """The project's Preview at ``alpha`` (snapped to the slider's step), queued when new or stuck."""
    alpha = snap_alpha(alpha)
    key = dict(
        project=project, content_name=project.content_image.name, style_name=project.style_image.name,
        alpha=alpha, rows=settings.PREVIEW_ROWS, colour=colour,
    )
    now = timezone.now()
    try:
        with transaction.atomic():
            preview, created = Preview.objects.get_or_create(**key, defaults={"requested": now})
    except IntegrityError:  # two requests at once: the other one created it
        preview, created = Preview.objects.get(**key), False
    stuck = (
        preview.status == Preview.Status.PENDING
        and (now - preview.requested).total_seconds() > settings.PREVIEW_RETRY_SECONDS
    )
    if created or stuck or preview.status == Preview.Status.FAILED:
        busy = _pending_of_owner(project.owner_id, now).exclude(id=preview.id).count()
        if busy >= settings.PREVIEW_MAX_PENDING_PER_USER:
            # The lane is shared first come, first served: one user's requests must not fill it. This
            # one is not queued; asked for again (the slider moved back) it is queued like a failed one.
            error = (f"{busy} of your previews are being computed already; move the slider again "
                     "when they are ready.")
            Preview.objects.filter(id=preview.id).update(status=Preview.Status.FAILED, error=error)
            preview.status, preview.error = Preview.Status.FAILED, error
            return preview
        Preview.objects.filter(id=preview.id).update(status=Preview.Status.PENDING, error="", requested=now)
        preview.status, preview.requested = Preview.Status.PENDING, now
        _enqueue(COMPUTE_PREVIEW, preview.id)
    if created:
        _forget_old_previews(project)
    return preview


def _pending_of_owner(owner_id, now):
    """The user's previews waiting for the lane (those pending longer than a retry are lost, not waiting)."""
    since = now - timedelta(seconds=settings.PREVIEW_RETRY_SECONDS)
    return Preview.objects.filter(project__owner_id=owner_id, status=Preview.Status.PENDING, requested__gte=since)


def current_preview(project, alpha, colour=""):
    """The project's Preview of its current images at ``alpha``, if one was asked for."""
    return project.previews.filter(
        content_name=project.content_image.name, style_name=project.style_image.name, alpha=snap_alpha(alpha),
        rows=settings.PREVIEW_ROWS, colour=colour,
    ).first()


def _forget_old_previews(project):
    """Previews of images the project no longer has, and beyond PREVIEW_MAX_PER_PROJECT the oldest."""
    current = project.previews.filter(
        content_name=project.content_image.name, style_name=project.style_image.name
    ).order_by("-requested", "-id")
    keep = set(current.values_list("id", flat=True)[: settings.PREVIEW_MAX_PER_PROJECT])
    old = project.previews.exclude(id__in=keep)
    names = files.stored_names([preview.image for preview in old])
    old.delete()
    files.delete_names(names)


def wait_for(preview, seconds):
    """The preview re-read until it is no longer pending or ``seconds`` have passed (a short
    long-poll, so the page shows the picture as soon as the lane has it); None if it was deleted
    meanwhile (its project's images were replaced, or the project deleted)."""
    deadline = time.monotonic() + seconds
    while preview.status == Preview.Status.PENDING and time.monotonic() < deadline:
        time.sleep(0.05)
        try:
            preview.refresh_from_db()
        except Preview.DoesNotExist:
            return None
    return preview


def lane_is_warm():
    return Lane.objects.filter(name=LANE, warm_since__isnull=False).exists()


def preview_context(project, preview, alpha):
    """What _preview.html renders: the preview (None: not asked for yet) at ``alpha``."""
    return {"project": project, "preview": preview, "alpha": alpha, "lane_warm": lane_is_warm()}


# -- the preview lane's worker ------------------------------------------------------------------


def lane_starting():
    """Called by ``manage.py worker`` on the preview lane before its cluster starts."""
    Lane.objects.update_or_create(name=LANE, defaults={"warm_since": None, "started": timezone.now()})
    _enqueue(WARM_UP)


def warm_up():
    """Task: load the engine and the AdaIN model in the lane's worker process with one preview."""
    import numpy as np

    from gallery.jobs import get_engine

    engine = get_engine()
    rows = settings.PREVIEW_ROWS  # at the previews' own size, so the first one needs no new kernels
    gray = np.full((rows, rows * 4 // 3, 3), 128, np.uint8)
    engine.preview(gray, gray, rows=rows)
    Lane.objects.filter(name=LANE).update(warm_since=timezone.now())


def compute_preview(preview_id):
    """Task: compute one preview (a preview already done, or deleted with its project, is skipped)."""
    import stylecore

    from gallery.jobs import get_engine, read_file

    preview = Preview.objects.select_related("project").filter(id=preview_id).first()
    if preview is None or preview.status == Preview.Status.DONE:
        return "skipped"
    project = preview.project
    try:
        content, style = read_file(project.content_image), read_file(project.style_image)
        engine = get_engine()
        started = time.perf_counter()
        pixels = engine.preview(content, style, alpha=preview.alpha, rows=preview.rows)
        seconds = time.perf_counter() - started
    except stylecore.StyleCoreError as exc:
        Preview.objects.filter(id=preview.id).update(status=Preview.Status.FAILED, error=str(exc)[:2000])
        return "failed"
    except Exception as exc:
        log.exception("Preview %s failed.", preview.id)
        Preview.objects.filter(id=preview.id).update(
            status=Preview.Status.FAILED, error=f"The preview could not be computed ({type(exc).__name__})."
        )
        return "failed"
    files.save_image(preview.image, Image.fromarray(pixels), fmt="JPEG")
    updated = Preview.objects.filter(id=preview.id, status=Preview.Status.PENDING).update(
        status=Preview.Status.DONE, image=preview.image.name, seconds=seconds, finished=timezone.now()
    )
    if not updated:  # deleted meanwhile (its project went), or computed by a second delivery
        files.delete_names([preview.image.name])
        return "skipped"
    Lane.objects.filter(name=LANE, warm_since__isnull=True).update(warm_since=timezone.now())
    return "done"
