"""Start a django-q2 worker cluster: the run lane (default) or, with WORKER_LANE=preview, the
preview lane (see gallery.previews).

In the run lane this command's own process is also where recovery runs (gallery.recovery): once at
start, then every recovery_interval() seconds while the cluster runs. django-q2's Cluster.start()
returns once its sentinel has forked the workers, and this process would otherwise only wait for
the cluster to stop, so recovery never waits for a free worker.
"""
import multiprocessing

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connections
from django_q.cluster import Cluster

from gallery import jobs, previews, recovery


class _Cluster(Cluster):
    """django-q2's cluster, whose SIGTERM/SIGINT also tells the runs in progress to stop.

    django-q2 stops a cluster by letting each worker finish its task, and a task here computes runs
    until the queue is empty. The shared event makes the run in progress stop after its current
    iteration and go back to the queue, so the cluster exits in about one iteration's time.
    """

    def sig_handler(self, signum, frame):
        jobs.shutdown.set()
        super().sig_handler(signum, frame)


class Command(BaseCommand):
    help = (
        "Run lane: resume stale runs, make sure the hourly file sweep is scheduled, queue the speed "
        "calibration, run the cluster, and run recovery every minute while it runs. "
        "WORKER_LANE=preview: the preview lane's cluster."
    )

    def handle(self, *args, **options):
        run_lane = settings.WORKER_LANE != "preview"
        if not run_lane:
            previews.lane_starting()
            self.stdout.write("Preview lane: loading the AdaIN model, then serving previews.")
        else:
            recovery.ensure_schedules()
            resumed = recovery.recover()
            if resumed:
                self.stdout.write(f"Resumed {resumed} run(s) left running by a stopped worker.")
            if settings.WORKER_CALIBRATE:
                jobs.enqueue_calibration()
        # Created before django-q2 forks, so the workers share it (django-q2 forks on Linux).
        jobs.shutdown = multiprocessing.get_context("fork").Event()
        # django-q2 forks its processes next; none of them may inherit this connection.
        connections.close_all()
        cluster = _Cluster()
        cluster.start()
        if run_lane:
            # The sentinel and its workers are forked: from here on this process only supervises.
            recovery.supervise(alive=lambda: cluster.sentinel.is_alive())
