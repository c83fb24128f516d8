"""The forms in a real browser: a refused form says so where the user is looking (the error summary,
focused, its links leading to the fields), the sweep's count shows where it is read, and the theme
switch keeps what was typed. Each refused page is checked with axe in both themes, at both sizes."""
import re

import pytest
from playwright.sync_api import expect

from gallery.models import Run
from tests.browser.helpers import log_in
from tests.browser.test_accessibility import SIZES, axe_violations

pytestmark = pytest.mark.browser


def focused_id(page):
    return page.evaluate("() => document.activeElement && document.activeElement.id")


def in_view(page, selector):
    """Whether the whole of the element is inside the window."""
    return page.locator(selector).evaluate(
        "e => { const r = e.getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight; }")


def check_both_themes_and_sizes(page, screenshot, name):
    """axe finds nothing on the page as it is, light and dark, desktop and phone; a screenshot of each."""
    found = {}
    for theme in ("light", "dark"):
        page.emulate_media(color_scheme=theme)
        for size, (width, height) in SIZES.items():
            page.set_viewport_size({"width": width, "height": height})
            found[f"{theme} {size}"] = axe_violations(page)
            screenshot(page, f"{name}-{size}-{theme}", full_page=False)
    page.emulate_media(color_scheme="light")
    page.set_viewport_size({"width": 1280, "height": 860})
    assert not any(found.values()), found


def test_a_refused_launch_form_says_so_at_the_top_and_its_links_lead_to_the_fields(page, live_server, owner,
                                                                                 project, screenshot):
    log_in(page, live_server.url, owner)
    page.goto(f"{live_server.url}/projects/{project.id}/runs/new/")
    page.select_option("#id_style_layers", "custom")
    page.fill("#id_custom_style_layers", "block9_conv1:1, block1_conv1:x")
    page.click("button:has-text('Launch run')")

    summary = page.locator("#error-summary")
    expect(summary).to_contain_text("There is a problem")
    expect(summary.get_by_role("link")).to_have_text([re.compile(r"^Custom style layers: .+")])
    assert focused_id(page) == "error-summary" and in_view(page, "#error-summary")
    expect(page.get_by_role("alert")).to_have_count(1)
    assert not Run.objects.exists()
    check_both_themes_and_sizes(page, screenshot, "launch-refused")

    summary.get_by_role("link").click()
    assert focused_id(page) == "id_custom_style_layers"
    assert in_view(page, "label[for=id_custom_style_layers]") and in_view(page, "#id_custom_style_layers")
    expect(page.locator("#id_custom_style_layers")).to_have_value("block9_conv1:1, block1_conv1:x")
    # The cost box names what is in the way.
    expect(page.locator("[data-role=estimate]")).to_contain_text("Not valid yet: Custom style layers")
    screenshot(page, "launch-refused-field", full_page=False)


def test_the_sweep_forms_count_and_refusals_show_where_they_are_read(page, live_server, owner, project, screenshot):
    log_in(page, live_server.url, owner)
    page.goto(f"{live_server.url}/projects/{project.id}/sweeps/new/")
    page.fill("#id_rows", "64")
    page.click("[data-sweep-preview-button]")
    expect(page.locator("[data-sweep-count]")).to_have_text("9 runs (3 × 3)")
    assert focused_id(page) == "" and page.evaluate("document.activeElement.matches('[data-sweep-preview]')")
    assert in_view(page, "[data-sweep-preview]")
    screenshot(page, "sweep-counted", full_page=False)

    page.fill("#id_axis2-values", "banana, -1")
    page.click("[data-sweep-preview-button]")
    summary = page.locator("#error-summary")
    expect(summary.get_by_role("link")).to_have_text(["Across the matrix: “banana”: Enter a number."])
    assert focused_id(page) == "error-summary" and in_view(page, "#error-summary")
    expect(page.locator("[data-sweep-preview]")).to_have_count(0)
    check_both_themes_and_sizes(page, screenshot, "sweep-refused")
    summary.get_by_role("link").click()
    assert focused_id(page) == "id_axis2-values"


def test_the_theme_switch_keeps_what_was_typed_and_is_remembered(page, live_server, owner, project, screenshot):
    log_in(page, live_server.url, owner)
    page.goto(f"{live_server.url}/projects/{project.id}/runs/new/")
    page.fill("#id_tv_weight", "0.005")
    page.select_option("#id_style_layers", "custom")
    page.fill("#id_custom_style_layers", "block1_conv1:1")
    page.evaluate("window.__notReloaded = true")
    html = page.locator("html")
    background = page.evaluate("() => getComputedStyle(document.body).backgroundColor")

    page.get_by_role("button", name="Dark theme").click()
    expect(html).to_have_attribute("data-theme", "dark")
    expect(page.get_by_role("button", name="Light theme")).to_be_focused()
    expect(page.get_by_role("button", name="Dark theme")).to_be_hidden()
    assert page.evaluate("() => getComputedStyle(document.body).backgroundColor") != background
    assert page.evaluate("window.__notReloaded") is True
    expect(page.locator("#id_tv_weight")).to_have_value("0.005")
    expect(page.locator("#id_custom_style_layers")).to_have_value("block1_conv1:1")
    screenshot(page, "theme-switched-in-place", full_page=False)

    page.reload()  # the cookie was set: the next page is drawn dark from the start
    expect(html).to_have_attribute("data-theme", "dark")
    page.get_by_role("button", name="Light theme").click()
    expect(html).to_have_attribute("data-theme", "light")
    page.goto(f"{live_server.url}/projects/")
    expect(html).to_have_attribute("data-theme", "light")


def test_the_phone_header_takes_two_lines(page, live_server, owner, screenshot):
    log_in(page, live_server.url, owner)
    for width in (640, 320):
        page.set_viewport_size({"width": width, "height": 844})
        screenshot(page, f"header-{width}", full_page=False)
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "header-390", full_page=False)
    middles = {name: page.locator(selector).evaluate("e => { const r = e.getBoundingClientRect(); "
                                                     "return Math.round(r.top + r.height / 2); }")
               for name, selector in (("brand", ".brand"), ("account", ".user-menu"), ("pages", ".site-nav"),
                                      ("theme", ".theme-form button:visible"))}
    # The brand and the account on the first line; the pages and the theme switch on the second.
    assert abs(middles["brand"] - middles["account"]) < 8 and abs(middles["pages"] - middles["theme"]) < 8, middles
    assert middles["pages"] > middles["brand"] + 20, middles


def test_the_launch_form_shows_a_dependent_field_only_with_the_choice_it_belongs_to(page, live_server, owner, project):
    log_in(page, live_server.url, owner)
    page.goto(f"{live_server.url}/projects/{project.id}/runs/new/")
    strength, layers = page.locator("#id_adain_alpha"), page.locator("#id_custom_style_layers")
    expect(strength).to_be_hidden()
    expect(layers).to_be_hidden()
    page.select_option("#id_init", "adain")
    expect(strength).to_be_visible()
    page.select_option("#id_style_layers", "custom")
    expect(layers).to_be_visible()
    page.select_option("#id_init", "content")
    expect(strength).to_be_hidden()
