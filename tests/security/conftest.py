import pytest

from tests.security.matrix import build_world


@pytest.fixture
def world(owner, other):
    """alice's private and public projects with their runs, sweeps and previews; bob is the other user."""
    return build_world(owner, other)
