"""Content-Security-Policy (django-csp): always sent, and the templates keep to it."""
import re
from pathlib import Path

import pytest

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
EXPECTED = [
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "object-src 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
    "form-action 'self'",
]


@pytest.mark.parametrize("url", ["/accounts/login/", "/projects/"])
def test_every_page_carries_the_policy(url, owner_client, settings):
    assert not hasattr(settings, "CSP_DEFAULT_SRC")  # the policy does not depend on DEBUG
    policy = owner_client.get(url)["Content-Security-Policy"]
    for directive in EXPECTED:
        assert directive in policy


def test_no_template_has_an_inline_script_or_style():
    offenders = []
    for template in sorted(TEMPLATES.rglob("*.html")):
        text = template.read_text()
        for match in re.finditer(r"<script\b[^>]*>(.*?)</script>", text, re.S):
            if match.group(1).strip() or "src=" not in match.group(0):
                offenders.append(f"{template.name}: {match.group(0)[:60]}")
        offenders += [f"{template.name}: style= attribute" for _ in re.finditer(r"\sstyle\s*=", text)]
        offenders += [f"{template.name}: <style> element" for _ in re.finditer(r"<style\b", text)]
        offenders += [f"{template.name}: on… handler" for _ in re.finditer(r"\son[a-z]+\s*=", text)]
    assert offenders == []
