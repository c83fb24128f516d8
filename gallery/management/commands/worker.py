"""Start a django-q2 worker cluster: the run lane (default) or, with WORKER_LANE=preview, the
preview lane (see gallery.previews)."""
import multiprocessing

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connections
from django_q.cluster import Cluster

from gallery import previews, tasks


class _Cluster(Cluster):
    """django-q2's cluster, whose SIGTERM/SIGINT also tells the runs in progress to stop.

    django-q2 stops a cluster by letting each worker finish its task, and a task here computes runs
    until the queue is empty. The shared event makes the run in progress stop after its current
    iteration and go back to the queue, so the cluster exits in about one iteration's time.
    """

    def sig_handler(self, signum, frame):
        tasks.shutdown.set()
        super().sig_handler(signum, frame)


class Command(BaseCommand):
    help = (
        "Run lane: resume stale runs, make sure the every-minute stale check and the hourly file sweep "
        "are scheduled, queue the speed calibration, then run the cluster. "
        "WORKER_LANE=preview: the preview lane's cluster."
    )

    def handle(self, *args, **options):
        if settings.WORKER_LANE == "preview":
            previews.lane_starting()
            self.stdout.write("Preview lane: loading the AdaIN model, then serving previews.")
        else:
            tasks.ensure_schedules()
            resumed = tasks.resume_stale_runs()
            if resumed:
                self.stdout.write(f"Resumed {resumed} run(s) left running by a stopped worker.")
            if settings.WORKER_CALIBRATE:
                tasks.enqueue_calibration()
        # Created before django-q2 forks, so the workers share it (django-q2 forks on Linux).
        tasks.shutdown = multiprocessing.get_context("fork").Event()
        # django-q2 forks its processes next; none of them may inherit this connection.
        connections.close_all()
        _Cluster().start()
