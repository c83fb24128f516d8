"""Sign-up throttling: one client address makes at most SIGNUP_LIMIT_PER_HOUR accounts an hour
(every limit is per account, so accounts must not be free to mint)."""
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from gallery.models import Signup
from tests.factories import PASSWORD


@pytest.fixture(autouse=True)
def three_an_hour(settings):
    settings.SIGNUP_LIMIT_PER_HOUR = 3


def sign_up(name, address="203.0.113.7", **headers):
    return Client(REMOTE_ADDR=address, **headers).post(
        "/accounts/signup/", {"username": name, "password1": PASSWORD, "password2": PASSWORD})


def test_past_the_limit_a_sign_up_is_refused_with_a_clear_message_and_makes_nothing(db):
    for name in ("ann", "ben", "cat"):
        assert sign_up(name).status_code == 302
    response = sign_up("dan")
    assert response.status_code == 429
    text = response.content.decode()
    assert "Too many accounts were made from your network in the last hour. Try again in 60 minutes." in text
    assert 'value="dan"' in text  # what was typed stays in the form
    assert not User.objects.filter(username="dan").exists()
    assert sign_up("eve", address="198.51.100.1").status_code == 302  # another address is not held back


def test_the_limit_is_per_hour(db):
    for name in ("ann", "ben", "cat"):
        sign_up(name)
    Signup.objects.update(created=timezone.now() - timedelta(minutes=61))
    assert sign_up("dan").status_code == 302
    assert Signup.objects.count() == 1  # rows older than the hour are gone


def test_failed_sign_ups_do_not_count(db):
    for _ in range(4):
        Client(REMOTE_ADDR="203.0.113.7").post(
            "/accounts/signup/", {"username": "ann", "password1": PASSWORD, "password2": "nope"})
    assert sign_up("ann").status_code == 302


def test_no_address_is_stored(db):
    sign_up("ann")
    assert "203.0.113.7" not in Signup.objects.get().address


def test_zero_means_no_limit(db, settings):
    settings.SIGNUP_LIMIT_PER_HOUR = 0
    for number in range(5):
        assert sign_up(f"user{number}").status_code == 302


def test_behind_the_proxy_the_address_it_appended_counts_not_one_the_client_wrote(db, settings):
    settings.BEHIND_HTTPS_PROXY = True
    proxy = "10.0.0.2"
    for number in range(3):  # one client behind the proxy, lying about its address each time
        forged = f"192.0.2.{number}, 203.0.113.7"
        assert sign_up(f"user{number}", address=proxy, HTTP_X_FORWARDED_FOR=forged).status_code == 302
    assert sign_up("dan", address=proxy, HTTP_X_FORWARDED_FOR="192.0.2.9, 203.0.113.7").status_code == 429
    assert sign_up("eve", address=proxy, HTTP_X_FORWARDED_FOR="203.0.113.8").status_code == 302
