"""Fixtures shared by every test: users, clients, projects, and django-q2 calls recorded instead of queued."""
import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.factories import PASSWORD, create_project


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix, tmp_path_factory):
    """SQLite tests use a database file (not memory), so worker and server subprocesses can share it."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        database.setdefault("TEST", {})["NAME"] = str(tmp_path_factory.mktemp("db") / "test.sqlite3")


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    """Every test writes its images into its own temporary folder."""
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """PBKDF2's deliberate slowness (~0.25 CPU-seconds a password) is not under test; most tests make
    one or two users, so it was about a third of the fast suite's CPU time. Passwords are still hashed
    and checked (MD5), in this process only: servers the tests start in subprocesses check none."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def login_throttling_off(settings):
    """Most tests log in with client.login(), which gives django-axes no request to track; the
    login-throttling tests turn it back on."""
    settings.AXES_ENABLED = False


@pytest.fixture
def owner(db):
    return User.objects.create_user("alice", password=PASSWORD)


@pytest.fixture
def other(db):
    return User.objects.create_user("bob", password=PASSWORD)


@pytest.fixture
def owner_client(owner):
    client = Client()
    client.force_login(owner)
    return client


@pytest.fixture
def other_client(other):
    client = Client()
    client.force_login(other)
    return client


@pytest.fixture
def anonymous_client(db):
    return Client()


@pytest.fixture
def project(owner):
    return create_project(owner)


@pytest.fixture
def public_project(owner):
    return create_project(owner, "Public bridge", is_public=True)


@pytest.fixture
def queued(monkeypatch):
    """Run ids handed to django-q2, recorded instead of queued."""
    from gallery import queue

    calls = []
    monkeypatch.setattr(queue, "async_task", lambda func, *args, **kwargs: calls.append(args[0]))
    return calls


@pytest.fixture
def let_bfloat16_through(monkeypatch):
    """``let_bfloat16_through(engine)``: the engine's precision probe faked native for bfloat16, for tests of
    bfloat16's arithmetic or bookkeeping, not of whether this CPU computes it natively (on one that only
    emulates it, an explicit bfloat16 is refused)."""
    def let(engine):
        _ = engine.device
        monkeypatch.setattr(engine, "_probes", {"float32": 0.010, "bfloat16": 0.010})
        return engine

    return let
