"""Per-user limits on projects, queued runs and stored bytes, checked before anything is saved.

Each check returns None when the user may go ahead, or the message that tells them why not. The
figures are the settings USER_MAX_* (see README "Configuration"); stored bytes are counted on the
rows (Project.stored_bytes, Run.stored_bytes and RunInput.size: a picture runs compute from counts
once, however many runs use it), kept up to date as files are written.

A view asks a check first, to refuse before it writes any file; the check that counts is asked again
by ``held``, in the transaction that saves the rows, so that a user's requests at once cannot all
pass on counts read before any of them saved.
"""
from contextlib import contextmanager

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Sum

from gallery.models import Project, Run, RunInput, Sweep
from stylecore.images import output_width
from stylecore.schema import saved_iteration_count


class OverLimit(Exception):
    """A limit refused the change when it was checked again under the user's lock; nothing was saved."""


@contextmanager
def held(user_id, refusal=None):
    """The transaction that saves what the user's limits bound, checked once more inside it.

    The user's row is locked first (SELECT … FOR UPDATE), so the user's launches and uploads check and
    save one after another: each counts, under the lock, what the ones before it committed (READ
    COMMITTED). A blocking row lock, unlike gallery.queue's advisory try-lock: a request must wait its
    turn, not skip it, and it works on every database. On SQLite the lock is a no-op, but the settings
    open every transaction with BEGIN IMMEDIATE, so it holds the database's only write lock from its
    first read. ``refusal()`` (a check of this module, its arguments bound) is then asked again; if
    it refuses, OverLimit is raised before the caller saves anything.
    """
    with transaction.atomic():
        get_user_model().objects.select_for_update().filter(id=user_id).values_list("id", flat=True).first()
        message = refusal() if refusal else None
        if message:
            raise OverLimit(message)
        yield


def format_bytes(size):
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024


def stored_bytes(user):
    """Bytes of every image file the user's projects and runs keep."""
    projects = Project.objects.filter(owner=user).aggregate(total=Sum("stored_bytes"))["total"] or 0
    runs = Run.objects.filter(project__owner=user).aggregate(total=Sum("stored_bytes"))["total"] or 0
    inputs = RunInput.objects.filter(project__owner=user).aggregate(total=Sum("size"))["total"] or 0
    return projects + runs + inputs


def storage_summary(user):
    """For the projects page: how much is stored, against the limit."""
    used, limit = stored_bytes(user), settings.USER_MAX_STORED_BYTES
    return {"used": format_bytes(used), "limit": format_bytes(limit), "percent": min(100, round(100 * used / limit))}


def _storage_refusal(user, adding, what):
    used, limit = stored_bytes(user), settings.USER_MAX_STORED_BYTES
    if used + adding <= limit:
        return None
    return (
        f"Your projects and runs store {format_bytes(used)}; {what} would take it past your limit of "
        f"{format_bytes(limit)}. Delete runs or projects you no longer need, then try again."
    )


def project_refusal(user, upload_bytes=0):
    """Why the user may not create a project with uploads of this size, or None."""
    limit = settings.USER_MAX_PROJECTS
    if Project.objects.filter(owner=user).count() >= limit:
        return f"You have {limit} projects, the most one account may keep. Delete one to make room."
    return _storage_refusal(user, upload_bytes, "these images")


def upload_refusal(user, upload_bytes):
    """Why the user may not replace project images with uploads of this size, or None."""
    return _storage_refusal(user, upload_bytes, "these images") if upload_bytes else None


# A float checkpoint is float32 RGB (np.savez_compressed); a run holds at most two at once, the
# latest and, while it is being replaced, the one before.
CHECKPOINT_BYTES_PER_PIXEL = 3 * 4
CHECKPOINTS_HELD = 2


def estimated_run_bytes(run, aspect, inputs=True):
    """An upper bound on what a run stores: each saved iteration as uncompressed 8-bit RGB, its
    float checkpoints, and (``inputs``) the stored copies of the project's images it computes from
    (at most all of them; a launch stores each picture once, however many runs it has)."""
    pixels = run.rows * output_width(run.rows, aspect)
    images = saved_iteration_count(run.iterations, run.save_every) * pixels * 3
    checkpoints = CHECKPOINTS_HELD * pixels * CHECKPOINT_BYTES_PER_PIXEL
    pictures = run.project.stored_bytes if inputs and run.project_id else 0
    return images + checkpoints + pictures


def run_refusal(user, run, aspect):
    """Why the user may not queue this run now, or None. Runs of sweeps are bounded by
    sweep_refusal instead: a waiting sweep does not stop its owner from launching single runs."""
    limit = settings.USER_MAX_QUEUED_RUNS
    queued = Run.objects.filter(project__owner=user, status=Run.Status.QUEUED, sweep__isnull=True).count()
    if queued >= limit:
        return (
            f"You already have {queued} runs waiting in the queue, the most one account may have. "
            "Wait for some to start, or cancel some, then launch again."
        )
    estimate = estimated_run_bytes(run, aspect)
    return _storage_refusal(user, estimate, f"this run's files (up to {format_bytes(estimate)})")


def sweep_refusal(user, runs, aspect):
    """Why the user may not launch a sweep of these runs now, or None.

    A sweep's runs queue beyond USER_MAX_QUEUED_RUNS, but one account may have only
    USER_MAX_ACTIVE_SWEEPS sweeps unfinished (each of at most SWEEP_MAX_RUNS runs)."""
    limit = settings.USER_MAX_ACTIVE_SWEEPS
    active = Sweep.objects.filter(project__owner=user, runs__status__in=Run.ACTIVE).distinct().count()
    if active >= limit:
        return (
            f"You have {active} sweep{'s' if active != 1 else ''} still computing; one account may have "
            f"{limit} at a time. Wait for it to finish, or cancel it on its project page, then launch again."
        )
    estimate = sum(estimated_run_bytes(run, aspect, inputs=False) for run in runs)
    estimate += runs[0].project.stored_bytes if runs else 0  # the inputs, stored once for the whole sweep
    return _storage_refusal(user, estimate, f"this sweep's images (up to {format_bytes(estimate)})")
