"""Stand-ins for the engine in gallery tests: the real one with a hook, a scripted one without
TensorFlow, and one that fails."""
import numpy as np

from gallery import jobs
from stylecore.engine import IterationReport, TransferResult

real_engine = jobs.get_engine  # the worker's cached engine, built once for the whole session


class StandIn:
    """What every stand-in shares: its machine has the memory for any run (``Engine.check_memory``)."""

    device = "CPU"

    def check_memory(self, content, settings=None):
        return None


class EngineProxy:
    """The real engine, with a hook that runs after each callback (a user acting mid-run)."""

    def __init__(self, after_iteration):
        self.engine = real_engine()
        self.after_iteration = after_iteration
        self.device = self.engine.device
        self.check_memory = self.engine.check_memory

    def stylize(self, content, style, settings, callback, **kwargs):
        def wrapped(report):
            stop = callback(report)
            self.after_iteration(report.iteration)
            return stop

        return self.engine.stylize(content, style, settings, wrapped, **kwargs)


class ScriptedEngine(StandIn):
    """Stands in for the engine without TensorFlow: reports iterations 0 … ``iterations`` of a grey
    48×64 picture to the callback, ``seconds_per_iteration`` apart, calling ``during(report)`` after
    each, then returns or raises ``error``."""

    def __init__(self, iterations, *, seconds_per_iteration=1.0, error=None, during=lambda report: None):
        self.iterations, self.seconds_per_iteration = iterations, seconds_per_iteration
        self.error, self.during = error, during

    def stylize(self, content, style, settings, callback, *, first_iteration=0, **kwargs):
        for number in range(first_iteration, self.iterations + 1):
            report = IterationReport(
                iteration=number, loss=10.0 - number, content_loss=1.0, style_loss=2.0, tv_loss=3.0,
                evaluations=1 + 20 * (number - first_iteration), seconds=1.0 + self.seconds_per_iteration * number,
                rows=48, width=64,
                _pixels=np.zeros((48, 64, 3), np.float32),
            )
            if callback(report):
                break
            self.during(report)
        if self.error is not None:
            raise self.error
        return TransferResult(
            image=report.image(), iterations_done=number - first_iteration, last_iteration=number, stopped=False,
            loss=report.loss, evaluations=report.evaluations, seconds=report.seconds,
        )


class FailingEngine(StandIn):
    """Stands in for the engine: raises ``error`` the way a broken machine or run would."""

    def __init__(self, error):
        self.error = error
        self.calls = 0

    def stylize(self, *args, **kwargs):
        self.calls += 1
        raise self.error
