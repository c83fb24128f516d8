"""Every URL refuses a POST without a CSRF token, whoever sends it; with the token, forms work."""
import pytest
from django.test import Client
from django.urls import reverse

from gallery.models import Project, Run
from tests.security.matrix import LEAVES, admin_path, spec_for


def paths_of(leaf, world):
    spec = spec_for(leaf)
    if spec is None:
        pytest.fail(f"{leaf.name} is not in the security matrix (see tests/security/matrix.py)")
    if leaf.route.startswith("admin/"):
        return [admin_path(leaf, world)]
    if spec.urls:
        return spec.urls(world, world.private)
    return [reverse(leaf.name)]


@pytest.mark.parametrize("role", ["anonymous", "owner"])
@pytest.mark.parametrize("leaf", LEAVES, ids=str)
def test_every_post_without_a_csrf_token_is_refused(leaf, role, world):
    client = Client(enforce_csrf_checks=True)
    if role == "owner":
        client.force_login(world.owner)
    for path in paths_of(leaf, world):
        response = client.post(path, {"title": "Changed", "is_public": "on", "username": "x", "password": "y"})
        assert response.status_code == 403, f"POST {path} as {role} without a CSRF token: {response.status_code}"
    assert Project.objects.filter(title="Changed").count() == 0
    assert Project.objects.count() == 2 and Run.objects.count() == 4
    assert not Run.objects.filter(cancel_requested=True).exists()


def test_the_same_post_with_the_token_goes_through(world):
    """The control: the 403s above come from the missing token, not from a broken form."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.owner)
    page = client.get(reverse("project_edit", args=[world.private.id]))
    token = page.cookies["csrftoken"].value
    response = client.post(
        reverse("project_edit", args=[world.private.id]), {"title": "Changed", "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302
    assert Project.objects.get(id=world.private.id).title == "Changed"


def test_logout_without_a_token_keeps_the_user_signed_in(world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.owner)
    assert client.post("/accounts/logout/").status_code == 403
    assert client.get("/projects/").status_code == 200
