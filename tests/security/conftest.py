import pytest

from tests.security.matrix import build_world


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The matrix builds users for hundreds of cases; PBKDF2's deliberate slowness is not under test here."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(owner, other):
    """alice's private and public projects with their runs, sweeps and previews; bob is the other user."""
    return build_world(owner, other)
