"""Start a django-q2 worker cluster after resuming runs that a stopped worker left behind."""
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connections

from gallery import tasks


class Command(BaseCommand):
    help = "Resume stale runs, make sure the every-minute stale check is scheduled, then run qcluster."

    def handle(self, *args, **options):
        tasks.ensure_resume_schedule()
        resumed = tasks.resume_stale_runs()
        if resumed:
            self.stdout.write(f"Resumed {resumed} run(s) left running by a stopped worker.")
        # django-q2 forks its processes next; none of them may inherit this connection.
        connections.close_all()
        call_command("qcluster")
