"""Claiming on real PostgreSQL: many workers claiming at once never take a run twice and never
start more of a user's runs than USER_MAX_RUNNING_RUNS (SELECT … FOR UPDATE SKIP LOCKED on the run,
a per-owner advisory lock for the limit; see gallery.queue)."""
import json

import pytest

pytestmark = [pytest.mark.scale, pytest.mark.timeout(600)]


def test_concurrent_claims_on_postgresql_keep_the_running_limit_and_never_double_claim(deployment):
    spec = {"owners": 3, "runs": 6, "threads": 10, "limit": 2}
    output = deployment.python("-m", "tests.scale.claims", json.dumps(spec))
    result = json.loads(output.strip().splitlines()[-1])

    assert result["errors"] == []
    assert len(result["claimed"]) == len(set(result["claimed"])) == 6, result
    assert result["running"] == {f"claimer-{number}": 2 for number in range(3)}, result
    assert result["attempts"] == [1]
    assert result["last"] is None  # every user is at the limit
