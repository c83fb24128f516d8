"""Fixtures for the engine tests: one Engine (VGG19 built once) per test session."""

from pathlib import Path

import pytest

import stylecore
from stylecore.samples import landscape, swirls


@pytest.fixture(scope="session")
def engine():
    engine = stylecore.Engine()
    engine._ensure_model()  # built up front, so tests may wrap its compiled functions
    return engine


@pytest.fixture(scope="session")
def content_image():
    return landscape(48, 64)


@pytest.fixture(scope="session")
def style_image():
    return swirls(60, 60)


def pytest_collection_modifyitems(items):
    """A test of the real engine (the ``engine`` fixture builds VGG19) is slow: `make test-fast`
    leaves it out, `make test` runs it."""
    for item in items:
        if "engine" in getattr(item, "fixturenames", ()) and Path(__file__).parent in Path(item.path).parents:
            item.add_marker(pytest.mark.slow)
