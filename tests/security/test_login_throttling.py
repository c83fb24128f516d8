"""Login throttling (django-axes): repeated wrong passwords lock the username, even for the right one."""
import pytest
from django.test import Client

from tests.factories import PASSWORD


@pytest.fixture(autouse=True)
def login_throttling_on(settings):
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 3


def log_in(client, url, password, username="alice"):
    return client.post(url, {"username": username, "password": password})


@pytest.mark.parametrize("url", ["/accounts/login/", "/admin/login/"])
def test_after_too_many_wrong_passwords_the_right_one_is_refused_with_a_clear_message(owner, url):
    if url.startswith("/admin/"):
        owner.is_staff = True
        owner.save()
    client = Client()
    for _ in range(3):
        log_in(client, url, "wrong")
    response = log_in(client, url, PASSWORD)
    assert response.status_code == 429
    assert b"Too many failed log-in attempts" in response.content
    assert "_auth_user_id" not in client.session
    # A page of the site, not bare text: its language, a title and a main landmark (WCAG 3.1.1, 2.4.2).
    html = response.content.decode()
    assert '<html lang="en"' in html and "<title>Log-in locked · Style Gallery</title>" in html
    assert '<main class="page" id="main">' in html and "<h1>Log-in locked</h1>" in html


def test_a_few_wrong_passwords_then_the_right_one_still_log_in(owner):
    client = Client()
    for _ in range(2):
        assert log_in(client, "/accounts/login/", "wrong").status_code == 200
    assert log_in(client, "/accounts/login/", PASSWORD).status_code == 302


def test_another_users_lockout_does_not_lock_me_out(owner, other):
    client = Client()
    for _ in range(3):
        log_in(client, "/accounts/login/", "wrong", username="bob")
    assert log_in(client, "/accounts/login/", PASSWORD).status_code == 302


def test_behind_the_proxy_a_lock_holds_the_client_that_guessed_not_everyone_behind_it(owner, settings):
    settings.BEHIND_HTTPS_PROXY = True
    guesser = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.7")
    for _ in range(3):
        log_in(guesser, "/accounts/login/", "wrong")
    assert log_in(guesser, "/accounts/login/", PASSWORD).status_code == 429
    owner_elsewhere = Client(REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.1")
    assert log_in(owner_elsewhere, "/accounts/login/", PASSWORD).status_code == 302
