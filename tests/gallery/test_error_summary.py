"""A refused form says so at its top: "There is a problem", the form-wide errors, and each field's
error as a link to the field (templates/gallery/_error_summary.html, one partial for every form)."""
import html
import re

from django.urls import reverse

from tests.factories import VALID, new_run_url
from tests.gallery.test_sweeps import post_sweep


def summary(response):
    """The error summary's items as text (links as "#id text"), or None when the page has none."""
    page = response.content.decode()
    found = re.search(r'<div class="error-summary".*?</ul>', page, re.S)
    if not found:
        return None
    items = re.findall(r"<li>(.*?)</li>", found.group(0), re.S)
    return [html.unescape(re.sub(r'<a href="(#[^"]+)" data-error-link>(.*)</a>', r"\1 \2", item)) for item in items]


def test_the_launch_form_lists_every_error_at_its_top_in_the_pages_order(owner_client, project):
    response = owner_client.post(new_run_url(project), {
        **VALID, "content_weight": "0", "style_weight": "0", "tv_weight": "0", "seed": "-3", "rows": "10",
        "style_layers": "custom", "custom_style_layers": "block9_conv1:1"})
    assert summary(response) == [
        "At least one weight must be above 0.",
        "#id_rows Rows: Use a whole number from 64 to 2048.",
        "#id_seed Seed: Use a whole number of at least 0.",
        "#id_custom_style_layers Custom style layers: 'block9_conv1' is not a VGG19 layer; use block1_conv1 … "
        "block5_conv4 (e.g. block3_conv1) or a preset (balanced, fine, large).",
    ]
    page = response.content.decode()
    # Above the form, focused on load by site.js; each error stays by its field too, tied to its input.
    assert page.index('class="error-summary"') < page.index('id="run-form"')
    assert 'tabindex="-1" data-focus-on-load' in page
    assert 'aria-describedby="id_seed_helptext id_seed_error"' in page and 'id="id_seed_error"' in page
    assert summary(owner_client.get(new_run_url(project))) is None


def test_the_sweep_form_lists_the_grids_and_each_axis_errors(owner_client, project, settings):
    settings.SWEEP_MAX_RUNS = 4
    response = post_sweep(owner_client, project, axis1=("tv_weight", "0.001 0.01 0.1"),
                          axis2=("style_weight", "1, 2"))
    assert summary(response) == [
        "This sweep would launch 6 runs (3 × 2); a sweep may launch at most 4. Use fewer values."]
    response = post_sweep(owner_client, project, axis1=("tv_weight", "0.01"), axis2=("tv_weight", "banana, -1"),
                          iterations="0", **{"axis1-log_from": "1", "axis1-log_to": "2", "axis1-log_steps": "3"})
    assert summary(response) == [
        "#id_axis1-values Down the matrix: Type the values or give a log-spaced range, not both: "
        "empty Values to use the range.",
        "#id_axis2-values Across the matrix: “banana”: Enter a number.",
        "#id_iterations Iterations: Use a whole number from 1 to 5000.",
    ]


def test_the_count_of_a_sweep_is_focused_when_it_is_shown(owner_client, project):
    response = post_sweep(owner_client, project, launch=False, preview="1")
    assert summary(response) is None
    assert re.search(r'class="sweep-preview"[^>]*tabindex="-1"[^>]*data-focus-on-load', response.content.decode())


def test_the_project_and_account_forms_use_the_same_summary(owner_client, anonymous_client):
    response = owner_client.post("/projects/new/", {"title": ""})
    assert summary(response) == [
        "#id_title Title: This field is required.",
        "#id_content_image Content image: This field is required.",
        "#id_style_image Style image: This field is required.",
    ]
    response = anonymous_client.post(reverse("login"), {"username": "nobody", "password": "wrong"})
    assert len(summary(response)) == 1 and "correct username and password" in summary(response)[0]
