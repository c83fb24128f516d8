"""Per-user limits on real PostgreSQL: the gallery's requests-at-once tests (tests/gallery/test_quotas.py)
against this server, where the owner's row lock (SELECT … FOR UPDATE), not SQLite's one writer, is
what makes each user's check and save one step (gallery.quotas.held)."""
import os
import subprocess
import sys

import pytest

from tests.scale.conftest import ROOT

pytestmark = [pytest.mark.scale, pytest.mark.timeout(300)]


def test_requests_at_once_keep_the_limits_on_postgresql(postgres):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "PYTEST_"))}
    env["DATABASE_URL"] = postgres.url("limits")
    # --reuse-db keeps pytest-django's test_limits database, the proof below that the tests ran here.
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--reuse-db", "-k", "at_once",
               "tests/gallery/test_quotas.py"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)

    assert result.returncode == 0 and "4 passed" in result.stdout, result.stdout + result.stderr
    with postgres.connect() as connection:
        assert connection.execute("SELECT 1 FROM pg_database WHERE datname = 'test_limits'").fetchall() == [(1,)]
