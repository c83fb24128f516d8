"""Fixtures shared by every test: users, clients, tiny generated images, projects."""
import io

import numpy as np
import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from PIL import Image

from gallery import files
from gallery.models import Project

PASSWORD = "correct horse battery staple"


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
def login_throttling_off(settings):
    """Most tests log in with client.login(), which gives django-axes no request to track; the
    login-throttling tests turn it back on."""
    settings.AXES_ENABLED = False


def make_image(width=64, height=48, mode="RGB", fmt="PNG", seed=0, **save_options):
    """Bytes of a small picture with structure (gradients and a disc), in any mode and format."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    red = 255 * x / max(width - 1, 1)
    green = 255 * y / max(height - 1, 1)
    blue = np.where((x - width / 2) ** 2 + (y - height / 2) ** 2 < (min(width, height) / 3) ** 2, 220, 40)
    rgb = np.stack([red, green, blue], axis=-1) + rng.normal(0, 8, (height, width, 3))
    image = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
    if mode != "RGB":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save_options)
    return buffer.getvalue()


def upload(name="image.png", data=None, content_type="image/png"):
    return SimpleUploadedFile(name, make_image() if data is None else data, content_type=content_type)


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


def create_project(user, title="Bird and Scream", *, is_public=False, content=None, style=None):
    """A project with real stored images, as the create view would make it."""
    project = Project(owner=user, title=title, is_public=is_public)
    content_image = Image.open(io.BytesIO(content or make_image(64, 48, seed=1))).convert("RGB")
    style_image = Image.open(io.BytesIO(style or make_image(40, 60, seed=2))).convert("RGB")
    project.stored_bytes = files.save_project_image(project, "content", content_image)
    project.stored_bytes += files.save_project_image(project, "style", style_image)
    project.save()
    return project


@pytest.fixture
def project(owner):
    return create_project(owner)


@pytest.fixture
def public_project(owner):
    return create_project(owner, "Public bridge", is_public=True)
