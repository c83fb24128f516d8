"""Real PostgreSQL and Redis servers from Debian's packages, on loopback, for the scale-out tests.

Each server lives in a fresh temporary folder, listens on 127.0.0.1 on a free port, runs in its own
process group and is removed again by ``stop()``. PostgreSQL refuses to run as root, so when the
tests run as root it runs as the ``postgres`` user (created by Debian's package) via ``runuser``.
"""
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path


class ServerError(RuntimeError):
    pass


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bin():
    """The newest installed PostgreSQL's bin folder (``make server-deps`` installs one)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise ServerError("PostgreSQL is not installed: run `make server-deps` (apt-get install postgresql).")
    return Path(found[-1]).parent


def redis_bin():
    path = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(path).exists():
        raise ServerError("redis-server is not installed: run `make server-deps` (apt-get install redis-server).")
    return path


def _wait(ready, process, timeout, what, log_path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerError(f"{what} exited with code {process.returncode}:\n{_tail(log_path)}")
        if ready():
            return
        time.sleep(0.1)
    raise ServerError(f"{what} did not start within {timeout} s:\n{_tail(log_path)}")


def _tail(path, lines=30):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop_group(process, timeout=20):
    if process is None:
        return
    for signum in (signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            break
        try:
            os.killpg(process.pid, signum)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            continue
    # Children that outlived the group leader (e.g. postgres backends) go with the group.
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class PostgresServer:
    """``initdb`` into a temp folder, then ``postgres -D dir -k sockdir -p PORT`` on 127.0.0.1."""

    user = "gallery"

    def __init__(self):
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="stylegallery-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sockets"
        self.log_path = self.root / "postgres.log"
        self.process = None
        self._as_user = []
        if os.geteuid() == 0:
            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                raise ServerError("Running as root needs the 'postgres' user (Debian's postgresql package makes it).")
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self.sockets.mkdir()
        if self._as_user:
            shutil.chown(self.sockets, "postgres", "postgres")

    def start(self):
        binaries = postgres_bin()
        initdb = subprocess.run(
            self._as_user + [str(binaries / "initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust",
                             "-E", "UTF8", "--locale=C", "--no-sync"],
            capture_output=True, text=True, timeout=120,
        )
        if initdb.returncode:
            raise ServerError(f"initdb failed:\n{initdb.stdout}\n{initdb.stderr}")
        with open(self.log_path, "ab") as log:
            if self._as_user:
                shutil.chown(self.log_path, "postgres", "postgres")
            self.process = subprocess.Popen(
                self._as_user + [
                    str(binaries / "postgres"), "-D", str(self.data), "-k", str(self.sockets), "-p", str(self.port),
                    "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off",
                    "-c", "full_page_writes=off", "-c", "max_connections=200",
                ],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        _wait(self._accepts_connections, self.process, 60, "PostgreSQL", self.log_path)
        return self

    def url(self, database="postgres"):
        return f"postgres://{self.user}@127.0.0.1:{self.port}/{database}"

    def connect(self, database="postgres", **kwargs):
        import psycopg

        return psycopg.connect(f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}", connect_timeout=5, **kwargs)

    def _accepts_connections(self):
        try:
            with self.connect():
                return True
        except Exception:
            return False

    def create_database(self, name):
        with self.connect(autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self):
        _stop_group(self.process)
        shutil.rmtree(self.root, ignore_errors=True)


class RedisServer:
    """``redis-server --port PORT --bind 127.0.0.1 --save '' --appendonly no`` in a temp folder."""

    def __init__(self):
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="stylegallery-redis-"))
        self.log_path = self.root / "redis.log"
        self.process = None

    def start(self):
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [redis_bin(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(self.root), "--daemonize", "no"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        _wait(self._pings, self.process, 30, "Redis", self.log_path)
        return self

    def url(self, db=0):
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def _pings(self):
        try:
            return self.client().ping()
        except Exception:
            return False

    def stop(self):
        _stop_group(self.process)
        shutil.rmtree(self.root, ignore_errors=True)
