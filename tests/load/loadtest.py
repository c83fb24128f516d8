"""Bounded web load test on loopback while a real worker computes a run, on SQLite.

    python -m tests.load.loadtest [--clients 20] [--seconds 30] [--threads 4] [--processes 2]

What it does, all in a temporary data folder that it removes at the end:
1. migrates a fresh SQLite database, collects static files, creates a user with a public and a
   private project, a finished run with saved iterations, and a signed-in session cookie;
2. starts gunicorn (production settings: DEBUG off; the flags docs/DEPLOY.md gives) and one
   django-q2 worker (``manage.py worker``), and launches a run; waits until it is computing;
3. runs N client threads for S seconds, each with its own keep-alive ``http.client`` connection
   and the session cookie, cycling through the gallery, project, run and progress pages;
4. reports requests per second, p50/p95/p99 latency per page, and every error (a status other
   than 200, a connection failure, or "database is locked" in any response or server log).

It exits with status 1 if there was any error, or if the run did not advance during the load.
"""
import argparse
import http.client
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment(data_dir):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("Q_", "DATABASE_URL", "REDIS_URL"))}
    env.update(
        DJANGO_SETTINGS_MODULE="gallery.settings",
        DATA_DIR=str(data_dir),
        STATIC_ROOT=str(Path(data_dir) / "static"),
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        # Plain HTTP on loopback: no HTTPS redirect or secure-only cookies for this test.
        SECURE_SSL_REDIRECT="0",
        SESSION_COOKIE_SECURE="0",
        CSRF_COOKIE_SECURE="0",
        SECURE_HSTS_SECONDS="0",
        Q_POLL="0.2",
        # The worker's heartbeat thread then writes every 2 s: more writers for SQLite to juggle.
        RUN_STALE_AFTER_SECONDS="8",
        PYTHONUNBUFFERED="1",
        TF_CPP_MIN_LOG_LEVEL="2",
        LOG_LEVEL="WARNING",
    )
    return env


def manage(env, *args):
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, timeout=600)


def setup_data():
    """In this process, against the temporary database: users, projects, a finished run, a cookie."""
    import django

    django.setup()
    import numpy as np
    from django.contrib.auth.models import User
    from django.db import connections
    from django.test import Client
    from PIL import Image

    from gallery import files
    from gallery.models import Iteration, Project, Run

    def picture(width, height, seed):
        rng = np.random.default_rng(seed)
        y, x = np.mgrid[0:height, 0:width]
        rgb = np.stack([255 * x / width, 255 * y / height, 128 + 0 * x], -1) + rng.normal(0, 12, (height, width, 3))
        return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")

    user = User.objects.create_user("loadtest", password=secrets.token_urlsafe(16))
    projects = []
    for title, public in (("Load: public bridge", True), ("Load: private bird", False)):
        project = Project(owner=user, title=title, is_public=public)
        files.save_project_image(project, "content", picture(128, 96, 1))
        files.save_project_image(project, "style", picture(96, 128, 2))
        project.save()
        projects.append(project)
    finished = Run(project=projects[0], rows=96, iterations=60, save_every=10, status=Run.Status.DONE, iterations_done=60)
    finished.save()
    for number in range(0, 61, 10):
        iteration = Iteration(
            run=finished, number=number, loss=1e6 / (number + 1), content_loss=1e5, style_loss=1e5, tv_loss=1e3,
            evaluations=20 * number, seconds=float(number),
        )
        files.save_image(iteration.image, picture(128, 96, number))
        files.save_thumbnail(iteration.thumbnail, picture(128, 96, number))
        iteration.save()
    client = Client()
    client.force_login(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    connections.close_all()
    return user, projects, finished, cookie


def launch_live_run(project, iterations):
    from django.db import connections

    from gallery import launching
    from gallery.models import Run

    run = launching.launch_run(Run(project=project, rows=64, iterations=iterations, save_every=1, tv_weight=0.01))
    connections.close_all()
    return run


def run_state(run_id):
    from django.db import connections

    from gallery.models import Run

    state = Run.objects.filter(id=run_id).values("status", "iterations_done", "error").get()
    connections.close_all()
    return state


class Results:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies = defaultdict(list)
        self.errors = []

    def record(self, page, seconds, error=None):
        with self.lock:
            if error:
                self.errors.append(f"{page}: {error}")
            else:
                self.latencies[page].append(seconds)


def client_thread(port, cookie, pages, stop_at, results, offset):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    index = offset
    while time.monotonic() < stop_at:
        page, path = pages[index % len(pages)]
        index += 1
        started = time.perf_counter()
        try:
            connection.request("GET", path, headers={"Cookie": cookie, "Host": "127.0.0.1"})
            response = connection.getresponse()
            body = response.read()
            elapsed = time.perf_counter() - started
            if response.status != 200:
                results.record(page, elapsed, f"HTTP {response.status} for {path}")
            elif b"database is locked" in body:
                results.record(page, elapsed, f"'database is locked' in {path}")
            else:
                results.record(page, elapsed)
        except Exception as exc:  # a dropped or refused connection is an error too
            results.record(page, time.perf_counter() - started, f"{type(exc).__name__}: {exc} for {path}")
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.close()


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def wait_for_http(port, process, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("gunicorn exited during start-up")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            connection.request("GET", "/accounts/login/")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("gunicorn did not answer in time")


def stop_group(process):
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    try:
        os.killpg(process.pid, signal.SIGKILL)  # forked workers that outlived their parent
    except ProcessLookupError:
        pass


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--processes", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn process")
    args = parser.parse_args(argv)

    data_dir = Path(tempfile.mkdtemp(prefix="stylegallery-load-"))
    env = environment(data_dir)
    os.environ.update({k: v for k, v in env.items() if k not in ("PYTHONUNBUFFERED",)})
    port = free_port()
    web = worker = None
    try:
        print(f"Data in {data_dir}; migrating and collecting static files…", flush=True)
        manage(env, "migrate", "--noinput", "-v0")
        manage(env, "collectstatic", "--noinput", "-v0")
        user, projects, finished, cookie = setup_data()

        web_log = open(data_dir / "gunicorn.log", "wb")
        web = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "gallery.wsgi:application", "--bind", f"127.0.0.1:{port}",
             "--workers", str(args.processes), "--worker-class", "gthread", "--threads", str(args.threads),
             "--timeout", "60", "--access-logfile", "-", "--access-logformat", '%(s)s %(r)s %(M)sms'],
            cwd=ROOT, env=env, stdout=web_log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        worker_log = open(data_dir / "worker.log", "wb")
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "worker"], cwd=ROOT, env=env, stdout=worker_log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for_http(port, web)
        live = launch_live_run(projects[1], iterations=2000)
        print(f"gunicorn on 127.0.0.1:{port}; waiting for the worker to start run {live.id}…", flush=True)
        deadline = time.monotonic() + 180
        while run_state(live.id)["iterations_done"] < 1:
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError(f"The worker did not start the run: {run_state(live.id)}")
            time.sleep(0.5)
        before = run_state(live.id)

        pages = [
            ("gallery", "/gallery/"),
            ("project list", "/projects/"),
            ("project", f"/projects/{projects[1].id}/"),
            ("run page (live)", f"/runs/{live.id}/"),
            ("progress JSON (live)", f"/runs/{live.id}/progress/"),
            ("run page (finished)", f"/runs/{finished.id}/"),
            ("progress JSON (live)", f"/runs/{live.id}/progress/?after=0"),
            ("thumbnail", f"/runs/{finished.id}/iterations/60/thumb/"),
        ]
        results = Results()
        print(f"{args.clients} clients for {args.seconds:.0f} s while run {live.id} computes…", flush=True)
        stop_at = time.monotonic() + args.seconds
        started = time.monotonic()
        threads = [
            threading.Thread(target=client_thread, args=(port, cookie, pages, stop_at, results, i), daemon=True)
            for i in range(args.clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=args.seconds + 60)
        duration = time.monotonic() - started
        after = run_state(live.id)

        web_text = (data_dir / "gunicorn.log").read_text(errors="replace")
        worker_text = (data_dir / "worker.log").read_text(errors="replace")
        for name, text in (("gunicorn", web_text), ("worker", worker_text)):
            if "database is locked" in text:
                results.errors.append(f"'database is locked' in the {name} log")
            if "Traceback" in text:
                results.errors.append(f"a traceback in the {name} log")

        all_latencies = [value for values in results.latencies.values() for value in values]
        total = len(all_latencies) + len(results.errors)
        print()
        print(f"Load: {args.clients} clients × {args.seconds:.0f} s, gunicorn {args.processes} processes × "
              f"{args.threads} threads, SQLite (WAL), one worker computing run {live.id} at 64 rows, saving every iteration.")
        print(f"Requests: {total} in {duration:.1f} s = {total / duration:.0f} req/s; errors: {len(results.errors)}")
        print(f"Run {live.id} advanced from iteration {before['iterations_done']} to {after['iterations_done']} "
              f"during the load ({after['status']}).")
        print()
        print("| page | requests | p50 ms | p95 ms | p99 ms |")
        print("|---|---:|---:|---:|---:|")
        for page in dict.fromkeys(name for name, _ in pages):
            values = results.latencies[page]
            if values:
                print(f"| {page} | {len(values)} | {1000 * statistics.median(values):.0f} | "
                      f"{1000 * percentile(values, 0.95):.0f} | {1000 * percentile(values, 0.99):.0f} |")
        if all_latencies:
            print(f"| **all** | {len(all_latencies)} | {1000 * statistics.median(all_latencies):.0f} | "
                  f"{1000 * percentile(all_latencies, 0.95):.0f} | {1000 * percentile(all_latencies, 0.99):.0f} |")
        for error in results.errors[:20]:
            print("ERROR", error)
        advanced = after["iterations_done"] > before["iterations_done"]
        if not advanced:
            print("ERROR the run did not advance during the load")
        return 0 if not results.errors and advanced else 1
    finally:
        stop_group(web)
        stop_group(worker)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
