"""Query parameters that name an id or a number: the worst values get a clear answer, never a 500."""
import pytest
from django.urls import reverse

from gallery.query import MAX_ID, query_number
from tests.factories import create_run

WORST = ["%C2%B2", "99999999999999999999999", "9" * 5000, str(MAX_ID + 1), "-1", "0x10", "1e3", "%EF%BC%91", ""]


def test_only_ascii_digits_within_a_64_bit_id_are_numbers():
    assert query_number("7") == 7
    assert query_number(str(MAX_ID)) == MAX_ID
    assert query_number(" 12 ") == 12
    assert query_number("0") is None
    assert query_number("0", minimum=0) == 0
    for value in ["²", "１", "99999999999999999999999", "9" * 5000, str(MAX_ID + 1), "-1", "1.0", None, ""]:
        assert query_number(value) is None, value


@pytest.mark.parametrize("value", WORST)
def test_compare_refuses_a_bad_run_id_with_a_message(owner_client, project, value):
    run = create_run(project)
    response = owner_client.get(f"{reverse('compare')}?runs={run.id},{value}")
    assert response.status_code in (400, 404)


@pytest.mark.parametrize("value", WORST)
def test_compare_shows_the_last_iteration_for_a_bad_iteration_number(owner_client, project, value):
    first, second = create_run(project), create_run(project)
    response = owner_client.get(f"{reverse('compare')}?runs={first.id},{second.id}&iteration={value}")
    assert response.status_code == 200
    assert response.context["selected"] is None  # "last"


@pytest.mark.parametrize("value", WORST)
def test_compare_ignores_a_bad_crop(owner_client, project, value):
    first, second = create_run(project), create_run(project)
    response = owner_client.get(f"{reverse('compare')}?runs={first.id},{second.id}&crop=1,2,{value},4")
    assert response.status_code == 200
    assert response.context["crop"] is None


@pytest.mark.parametrize("value", WORST)
@pytest.mark.parametrize("name", ["from_run", "from_iteration"])
def test_continuing_from_a_bad_run_or_iteration_is_not_found(owner_client, project, name, value):
    run = create_run(project)
    query = {"from_run": run.id, "from_iteration": 0, name: value}
    url = reverse("run_create", args=[project.id]) + f"?from_run={query['from_run']}&from_iteration={query['from_iteration']}"
    assert owner_client.get(url).status_code == 404


@pytest.mark.parametrize("value", [v for v in WORST if v not in ("", "-1")])
def test_progress_refuses_a_bad_after_number(owner_client, project, value):
    run = create_run(project)
    response = owner_client.get(reverse("run_progress", args=[run.id]) + f"?after={value}")
    assert response.status_code == 400
    assert response.json() == {"error": "after must be an iteration number."}
