import shutil

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.test import override_settings

from gallery.models import Preview, Project, Run, Sweep
from tests.factories import PASSWORD
from tests.security.matrix import World, build_world


@pytest.fixture(scope="module")
def world_template(django_db_setup, django_db_blocker, tmp_path_factory):
    """The world, built once per test module instead of once per case (it was about half the fast
    suite's CPU time). Its rows are written inside a transaction that stays open for the module:
    each test's own transaction (the db fixture) is a savepoint within it, rolled back after the
    test, so every case starts from exactly these rows. Its files go to a folder each test copies."""
    media = tmp_path_factory.mktemp("world") / "media"
    with django_db_blocker.unblock():
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            # Function-scoped settings fixtures are not active yet: hash as tests/conftest.py does.
            with override_settings(MEDIA_ROOT=media,
                                   PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
                owner = User.objects.create_user("alice", password=PASSWORD)
                other = User.objects.create_user("bob", password=PASSWORD)
                world = build_world(owner, other)
        except BaseException:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)
            raise
    yield world, media
    with django_db_blocker.unblock():
        transaction.set_rollback(True)
        atomic.__exit__(None, None, None)


@pytest.fixture
def world(db, world_template, media_root):
    """alice's private and public projects with their runs, sweeps and previews; bob is the other user.

    Each test gets the module's world afresh: its rows as built (read again from the database, so no
    test sees objects another one changed) and its files copied into the test's own media folder."""
    template, media = world_template
    shutil.copytree(media, media_root, dirs_exist_ok=True)
    users = User.objects.in_bulk([template.owner.id, template.other.id])
    projects = Project.objects.in_bulk([template.private.id, template.public.id])
    fresh = World(owner=users[template.owner.id], other=users[template.other.id],
                  private=projects[template.private.id], public=projects[template.public.id])
    for project_id, runs in template.runs.items():
        by_id = Run.objects.in_bulk([run.id for run in runs])
        fresh.runs[project_id] = [by_id[run.id] for run in runs]
        fresh.sweeps[project_id] = Sweep.objects.get(id=template.sweeps[project_id].id)
        fresh.previews[project_id] = Preview.objects.get(id=template.previews[project_id].id)
    return fresh
