"""`manage.py check --deploy` is clean with production settings (DEBUG off, a real secret key)."""
import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_check(tmp_path, **env):
    environment = {
        key: value
        for key, value in os.environ.items()
        # A production environment has none of these; the browser tests set the last one for
        # Playwright's event loop, and the check rightly refuses it in deployment.
        if key
        not in ("DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "REDIS_URL", "MEDIA_ROOT", "DJANGO_ALLOW_ASYNC_UNSAFE")
    }
    environment.update(
        DJANGO_SETTINGS_MODULE="gallery.settings",
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="example.com",
        DATA_DIR=str(tmp_path),
    )
    environment.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120,
    )


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = run_check(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_is_clean_behind_an_https_proxy_on_postgres_and_redis(tmp_path):
    """The documented multi-host configuration (docs/DEPLOY.md) passes too; nothing is contacted."""
    result = run_check(
        tmp_path,
        BEHIND_HTTPS_PROXY="1",
        DATABASE_URL="postgres://gallery:secret@db.internal:5432/stylegallery",
        REDIS_URL="redis://redis.internal:6379/0",
        CSRF_TRUSTED_ORIGINS="https://example.com",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_settings_refuse_to_start_without_a_secret_key(tmp_path):
    result = run_check(tmp_path, SECRET_KEY="")
    assert result.returncode != 0
    assert "Set SECRET_KEY" in result.stderr


def test_check_deploy_catches_debug_left_on(tmp_path):
    """The control: the check is really looking (DEBUG on in production is a warning)."""
    result = run_check(tmp_path, DEBUG="1")
    assert result.returncode != 0
    assert "DEBUG" in result.stdout + result.stderr
