"""Fixtures for the engine tests: one Engine (VGG19 built once) per test session."""

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
