"""Cleaning up files: run files that no row names, left by a worker killed between writing a
file and its row.

The sweep runs hourly on its own django-q2 schedule and does bounded work per pass: it takes the
next ORPHAN_BATCH names under ``runs/`` in name order after where the previous pass stopped (its
cursor, kept in the schedule's ``kwargs`` so the scheduler hands it to the next pass), asks the
database about those names only (one indexed ``IN`` query per file column, not every stored name)
and reads the modification time of those files only. After the last name it starts again from the
first. Names are random hex (gallery.models.media_name), so every batch is a fair sample of the
folder and every file is looked at once per round.

What stays proportional to the folder: the storage API has no paged or prefix listing, so a pass
still reads the folder's names (one directory read, or the bucket's key listing) to find its
batch; no file is opened or stat-ed outside the batch.
"""
import ast
import logging
from datetime import timedelta

from django.utils import timezone

from gallery import files
from gallery.models import Iteration, Run, RunInput, RunStyle

log = logging.getLogger(__name__)

SWEEP_ORPHANED_FILES = "gallery.tasks.sweep_orphaned_files"
SWEEP_SCHEDULE_NAME = "Sweep orphaned run files"
# Files under runs/ that no row names are removed once they are this old (seconds): a killed
# worker may leave a file written just before its row.
ORPHAN_AGE = 3600
# Names looked at per pass.
ORPHAN_BATCH = 1000
# The columns that name files under runs/.
RUN_FILE_COLUMNS = (
    (Run, ("init_image", "init_checkpoint", "content_source", "style_source", "base_image", "style_image")),
    (Iteration, ("image", "thumbnail", "checkpoint")),
    (RunStyle, ("source",)),
    (RunInput, ("file",)),
)


def referenced_run_files(names):
    """The names among ``names`` that a row names."""
    names = list(names)
    referenced = set()
    for model, columns in RUN_FILE_COLUMNS:
        for column in columns:
            referenced.update(model.objects.filter(**{f"{column}__in": names}).values_list(column, flat=True))
    return referenced


def sweep_orphaned_files(after=None):
    """One bounded pass: remove the orphaned files among the next ORPHAN_BATCH names under runs/
    after ``after`` (default: the cursor saved by the previous pass), then save the cursor for the
    next pass. Returns how many files were removed."""
    from django.core.files.storage import default_storage

    if after is None:
        after = _saved_cursor()
    try:
        _dirs, names = default_storage.listdir("runs")
    except (FileNotFoundError, NotADirectoryError):
        return 0
    following = sorted(name for name in names if name > after)
    batch = following[:ORPHAN_BATCH]
    paths = [f"runs/{name}" for name in batch]
    referenced = referenced_run_files(paths)
    cutoff = timezone.now() - timedelta(seconds=ORPHAN_AGE)
    orphans = []
    for path in paths:
        if path in referenced:
            continue
        try:
            if default_storage.get_modified_time(path) < cutoff:
                orphans.append(path)
        except FileNotFoundError:
            pass  # removed since the listing
    files.delete_names(orphans)
    if orphans:
        log.info("Removed %s orphaned run file(s).", len(orphans))
    _save_cursor(batch[-1] if len(following) > ORPHAN_BATCH else "")
    return len(orphans)


def _saved_cursor():
    from django_q.models import Schedule

    kwargs = Schedule.objects.filter(name=SWEEP_SCHEDULE_NAME).values_list("kwargs", flat=True).first()
    try:
        after = ast.literal_eval(kwargs or "{}").get("after", "")
    except (ValueError, SyntaxError, AttributeError):
        return ""
    return after if isinstance(after, str) else ""


def _save_cursor(after):
    from django_q.models import Schedule

    Schedule.objects.filter(name=SWEEP_SCHEDULE_NAME).update(kwargs=repr({"after": after}))
