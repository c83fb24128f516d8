import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.factories import PASSWORD


def test_it_signs_up_and_logs_the_new_user_in(db):
    client = Client()
    response = client.post(
        "/accounts/signup/", {"username": "carol", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 302
    assert response["Location"] == "/projects/"
    assert User.objects.filter(username="carol").exists()
    assert client.get("/projects/").status_code == 200


def test_it_rejects_a_signup_with_mismatched_passwords(db):
    response = Client().post("/accounts/signup/", {"username": "carol", "password1": PASSWORD, "password2": "nope"})
    assert response.status_code == 200
    assert b"didn" in response.content  # "The two password fields didn't match."
    assert not User.objects.filter(username="carol").exists()


def test_it_logs_in_and_out(owner):
    client = Client()
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/projects/").status_code == 200
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/projects/").status_code == 302


def test_logging_out_says_so_on_the_login_page(owner_client):
    response = owner_client.post("/accounts/logout/", follow=True)
    assert response.redirect_chain[-1][0] == "/accounts/login/"
    assert b"You have logged out." in response.content


def test_a_form_from_before_logging_in_again_is_refused_in_the_sites_words(owner, settings):
    """Two tabs: log out and in again in one, then submit a form left open in the other. The token
    changed at log-in: the refusal is a page of the site saying what to do, not Django's CSRF help."""
    for debug in (True, False):
        settings.DEBUG = debug
        client = Client(enforce_csrf_checks=True)
        client.force_login(owner)
        client.get("/projects/")
        response = client.post("/projects/new/", {"title": "x", "csrfmiddlewaretoken": "stale" * 8})
        assert response.status_code == 403
        page = response.content.decode()
        assert "This form is out of date" in page and "reload" in page
        assert "CSRF" not in page and "Help" not in page
        assert 'href="/projects/"' in page  # the site's header, signed in


def test_it_rejects_a_wrong_password(owner):
    response = Client().post("/accounts/login/", {"username": "alice", "password": "wrong"})
    assert response.status_code == 200
    assert b"correct username and password" in response.content


def test_it_changes_the_password(owner, owner_client):
    new = "another long passphrase 42"
    response = owner_client.post(
        "/accounts/password_change/", {"old_password": PASSWORD, "new_password1": new, "new_password2": new}
    )
    assert response.status_code == 302
    owner.refresh_from_db()
    assert owner.check_password(new)


def test_it_redirects_anonymous_visitors_to_login(anonymous_client):
    for url in ["/", "/projects/", "/projects/new/", "/gallery/", "/compare/"]:
        response = anonymous_client.get(url, follow=True)
        assert response.redirect_chain[-1][0].startswith("/accounts/login/"), url


def test_it_shows_the_login_and_signup_pages_to_anonymous_visitors(anonymous_client):
    assert anonymous_client.get("/accounts/login/").status_code == 200
    assert anonymous_client.get("/accounts/signup/").status_code == 200


def test_it_enforces_csrf_on_login(owner):
    client = Client(enforce_csrf_checks=True)
    response = client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 403


def test_it_lets_staff_into_the_admin(db):
    User.objects.create_superuser("root", password=PASSWORD)
    client = Client()
    client.login(username="root", password=PASSWORD)
    assert client.get("/admin/gallery/project/").status_code == 200


@pytest.mark.parametrize(
    "url", ["/accounts/password_reset/", "/accounts/password_reset/done/", "/accounts/reset/MQ/set-password/", "/accounts/reset/done/"]
)
def test_password_reset_pages_are_gone_since_the_site_sends_no_mail(url, anonymous_client, owner_client):
    assert anonymous_client.get(url).status_code == 404
    assert owner_client.get(url).status_code == 404
    assert b"password_reset" not in anonymous_client.get("/accounts/login/").content
