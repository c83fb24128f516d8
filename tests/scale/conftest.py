"""Session fixtures for the scale-out tests: a PostgreSQL and a Redis server, and a migrated
database with a shared media folder that web and worker processes use through the environment."""
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from tests.scale.servers import PostgresServer, RedisServer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def postgres():
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server():
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


class Deployment:
    """What every host of a deployment shares: the database URL, the Redis URL and the media folder."""

    def __init__(self, postgres, redis_server, database, data_dir):
        self.postgres = postgres
        self.redis = redis_server
        self.database = database
        self.data_dir = Path(data_dir)
        self.media_root = self.data_dir / "media"

    def env(self, **extra):
        env = {key: value for key, value in os.environ.items() if not key.startswith(("Q_", "DJANGO_"))}
        env.update(
            DJANGO_SETTINGS_MODULE="gallery.settings",
            DATABASE_URL=self.postgres.url(self.database),
            REDIS_URL=self.redis.url(),
            DATA_DIR=str(self.data_dir),
            MEDIA_ROOT=str(self.media_root),
            Q_CLUSTER_NAME=f"scale-{self.database}",
            Q_POLL="0.2",
            WORKER_CALIBRATE="0",  # the speed calibration is tested in tests/gallery/test_lanes.py
            PYTHONUNBUFFERED="1",
            TF_CPP_MIN_LOG_LEVEL="2",
        )
        env.update({key: str(value) for key, value in extra.items()})
        return env

    def manage(self, *args, timeout=300, **extra):
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env(**extra),
            capture_output=True, text=True, timeout=timeout,
        )
        if result.returncode:
            raise AssertionError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def python(self, *args, timeout=300, **extra):
        result = subprocess.run(
            [sys.executable, *args], cwd=ROOT, env=self.env(**extra), capture_output=True, text=True, timeout=timeout,
        )
        if result.returncode:
            raise AssertionError(f"python {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def query(self, sql, *params):
        with self.postgres.connect(self.database) as connection:
            return connection.execute(sql, params).fetchall()


@pytest.fixture(scope="module")
def deployment(postgres, redis_server):
    """A fresh, migrated database and media folder on the session's servers, for one test module."""
    database = f"gallery_{uuid.uuid4().hex[:8]}"
    postgres.create_database(database)
    data_dir = tempfile.mkdtemp(prefix="stylegallery-data-")
    deployment = Deployment(postgres, redis_server, database, data_dir)
    try:
        deployment.manage("migrate", "--noinput")
        yield deployment
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        try:
            with postgres.connect(autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        except Exception:
            pass
