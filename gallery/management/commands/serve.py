"""Start the web server, a run worker and the preview lane's worker together (what `make run` does).

The workers are started through ``manage.py worker``, which resumes runs left behind by a stopped
worker before it starts qcluster; the preview lane's (WORKER_LANE=preview) keeps the AdaIN model
loaded so that a preview never waits behind a run.
"""
import os
import signal
import subprocess
import sys
import time

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Run the web server, one run worker and the preview worker until interrupted."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-worker", action="store_true", help="Start only the web server (no workers).")

    def handle(self, *args, host, port, no_worker, **options):
        manage = [sys.executable, "manage.py"]
        processes = {"web": subprocess.Popen(manage + ["runserver", "--noreload", f"{host}:{port}"])}
        if not no_worker:
            processes["worker"] = subprocess.Popen(manage + ["worker"])
            processes["preview worker"] = subprocess.Popen(
                manage + ["worker"], env=dict(os.environ, WORKER_LANE="preview")
            )
        shown_host = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
        self.stdout.write(self.style.SUCCESS(f"Style Gallery is running at http://{shown_host}:{port}/  (Ctrl-C stops it)"))

        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exit_code = 0
        while not stopping:
            for name, process in processes.items():
                if process.poll() is not None:
                    self.stderr.write(f"The {name} process exited with code {process.returncode}; stopping.")
                    exit_code = process.returncode or 1
                    stopping = True
            time.sleep(0.5)
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        sys.exit(exit_code)
