"""Launching runs and sweeps: each run is pointed at the project's stored copies of its inputs (each
picture stored once per project, gallery.run_inputs), the rows are committed, then a token wakes a
worker (gallery.queue).

Nothing is half-saved before the commit: if an input cannot be stored, the user's limits refuse the
launch when checked again with the rows (gallery.quotas.held), or the rows cannot be written, the
files this launch wrote are removed again and LaunchError (or the error) is raised. After the commit the
launch has succeeded: the runs are in the queue, which is the database. If a token cannot be queued
(the broker is down), the failure is logged and the runs stay queued; recovery's wake-up
(gallery.recovery) gives them a token once they have waited RUN_STALE_AFTER_SECONDS.
"""
import io
import logging

from PIL import Image

from gallery import files, quotas
from gallery.models import Run, RunStyle
from gallery.queue import enqueue_run
from gallery.run_inputs import InputStore

log = logging.getLogger(__name__)


class LaunchError(Exception):
    """The run could not be saved (its inputs could not be stored, or a limit refused it); nothing was kept."""


def _own_files(run):
    """The files a launch writes for one run alone (the picture it continues from); its inputs are
    the project's stored pictures (gallery.run_inputs), shared with the project's other runs."""
    return files.stored_names([run.init_image, run.init_checkpoint])


def _store_inputs(run, init_iteration, style_slots, inputs):
    """Point the run at the project's stored copies of the images it computes from (the style
    slots it blends: the first as ``style_source``, the others as RunStyle rows, returned unsaved),
    stored once per picture by ``inputs``, and give it its own copy of the iteration it continues
    from."""
    first_style, *further = style_slots or [run.project]
    extra_styles = [RunStyle(position=number) for number in range(2, len(further) + 2)]
    inputs.store(run.project.content_image, run.content_source)
    inputs.store(first_style.image, run.style_source)
    for style, slot in zip(extra_styles, further):
        inputs.store(slot.image, style.source)
    run.stored_bytes = 0
    if init_iteration is not None:
        run.init = Run.Init.ITERATION
        run.init_iteration = init_iteration
        with init_iteration.image.open("rb") as handle:
            image = Image.open(io.BytesIO(handle.read())).convert("RGB")
        run.stored_bytes += files.save_image(run.init_image, image)
        if init_iteration.checkpoint:
            run.stored_bytes += files.copy_file(init_iteration.checkpoint, run.init_checkpoint)
    return extra_styles


def _launch(runs, *, init_iteration=None, sweep=None, style_slots=None, limits=None):
    """Save the runs (and their sweep) with their inputs stored, then queue a token for each.

    ``style_slots``: the project's style slots the runs blend, in ``run.style_blend``'s order
    (default: the project's first style image). ``limits``: the owner's check (gallery.quotas, its
    arguments bound), asked again in the transaction that writes the rows.

    The files are written before the transaction that writes the rows, so a sweep's launch does not
    hold the database's write lock while it stores pictures (SQLite has one for the whole file); each
    distinct picture is stored once per project, not once per run. A failure up to the commit removes
    what this launch wrote, so nothing is half-saved. Once the rows are committed the runs are
    queued: a token that cannot be queued is logged, and recovery's wake-up gives the runs one later.
    """
    inputs = InputStore(runs[0].project)

    def remove_files():
        for run in runs:
            files.delete_names(_own_files(run))
        inputs.discard()

    try:
        extra_styles = {id(run): _store_inputs(run, init_iteration, style_slots, inputs) for run in runs}
        with quotas.held(runs[0].project.owner_id, limits):
            inputs.save()
            if sweep is not None:
                sweep.save()
            for run in runs:
                run.sweep = sweep
                run.save()
                for style in extra_styles[id(run)]:
                    style.run = run
                    style.save()
    except OSError as exc:
        remove_files()
        log.exception("Could not store the inputs of new runs of project %s.", runs[0].project_id)
        raise LaunchError(f"The run's images could not be stored ({exc}). Nothing was saved; try again.") from exc
    except quotas.OverLimit as exc:
        remove_files()
        raise LaunchError(str(exc)) from exc
    except BaseException:
        remove_files()
        raise
    for run in runs:
        try:
            enqueue_run(run.id)
        except Exception:
            log.exception(
                "Launched runs %s are queued, but their worker tokens could not be; recovery's wake-up "
                "queues them later.", [run.id for run in runs]
            )
            break


def launch_run(run, init_iteration=None, style_slots=None, limits=None):
    """Save a new run (with the project's stored images and its own copy of the iteration it
    continues from) and queue it; nothing is kept if it cannot be saved or ``limits`` refuses it."""
    _launch([run], init_iteration=init_iteration, style_slots=style_slots, limits=limits)
    return run


def launch_sweep(sweep, runs, limits=None):
    """Save a sweep and its runs and queue every run; nothing is kept if they cannot be saved or
    ``limits`` refuses them. The runs go through the same fair queue as single runs (gallery.queue)."""
    _launch(runs, sweep=sweep, limits=limits)
    return sweep
