"""How long a run will take before it starts: a rough figure for the sweep form.

One function, ``estimate_run_seconds``, so that it can be swapped for the shared pre-flight
estimator (gallery/estimates.py, being written separately) without touching its callers.

The work of a run is counted in evaluation-megapixels: each iteration is up to 20 loss
evaluations (stylecore.engine.EVALUATIONS_PER_ITERATION), each at the size of the scale it runs at
(stylecore.engine.scale_plan). The cost of one evaluation-megapixel is measured on this site's
finished runs; with none yet, FALLBACK_SECONDS_PER_EVALUATION_MEGAPIXEL is used.
"""
import statistics

from gallery.models import Iteration, Run
from stylecore.engine import EVALUATIONS_PER_ITERATION, scale_plan

# docs/PERFORMANCE.md and DESIGN.md: 1.34 s per evaluation at 400×533 (0.213 megapixels) on two
# CPU cores in float32, i.e. about 6.3 s per evaluation-megapixel. A rough CPU figure: a GPU is
# tens of times faster, bfloat16 about twice; once runs have finished, their own times are used.
FALLBACK_SECONDS_PER_EVALUATION_MEGAPIXEL = 6.3
# How many recent finished runs the measured rate is the median of.
MEASURED_RUNS = 20


def evaluation_megapixels(rows, start_rows, iterations, aspect, evaluations=None):
    """Evaluations × megapixels of a run: its iterations spread over its scales (coarse to fine).

    ``evaluations`` (a finished run's count) replaces the 20 per iteration of a full run: L-BFGS
    may converge early."""
    done = 0
    work = 0.0
    for scale_rows, last in scale_plan(rows, start_rows, iterations):
        work += (last - done) * scale_rows * max(1, round(scale_rows * aspect)) / 1e6
        done = last
    per_iteration = EVALUATIONS_PER_ITERATION if evaluations is None else evaluations / max(1, iterations)
    return work * per_iteration


def _aspect_of(run):
    latest = Iteration.objects.filter(run=run, rows__gt=0, width__gt=0).order_by("-number").first()
    return latest.width / latest.rows if latest else 4 / 3


def measured_seconds_per_evaluation_megapixel():
    """The median rate of the latest finished runs, or None when there are none to measure."""
    runs = (
        Run.objects.filter(status=Run.Status.DONE, evaluations__gt=0, elapsed_seconds__gt=0)
        .order_by("-finished", "-id")[:MEASURED_RUNS]
    )
    rates = []
    for run in runs:
        work = evaluation_megapixels(run.rows, run.start_rows, run.iterations_done or run.iterations,
                                     _aspect_of(run), evaluations=run.evaluations)
        if work > 0:
            rates.append(run.elapsed_seconds / work)
    return statistics.median(rates) if rates else None


def estimate_run_seconds(settings, aspect, rate=None):
    """Seconds one run with these settings (a dict of Run fields) should take, roughly.

    ``aspect`` is the content image's width over height; ``rate`` the seconds per
    evaluation-megapixel (measured when not given; pass it in to estimate many runs at once)."""
    if rate is None:
        rate = measured_seconds_per_evaluation_megapixel() or FALLBACK_SECONDS_PER_EVALUATION_MEGAPIXEL
    return rate * evaluation_megapixels(settings["rows"], settings["start_rows"], settings["iterations"], aspect)
