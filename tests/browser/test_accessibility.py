"""Every page with axe-core (zero violations of any impact), at desktop and phone sizes, in the
light and the dark theme; the layout at 200 % zoom; and the whole product by keyboard alone.

The pages hold runs with real saved images (rows made directly, so no worker is needed); the
worker-driven walk is in test_gallery_flow.py. Screenshots of every page in both sizes and
themes go to test-artifacts/screenshots/ (looked at for the README).
"""
import re

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.test import RequestFactory
from playwright.sync_api import expect

from gallery import signups
from gallery.models import Run, Sweep
from tests.browser.helpers import log_in
from tests.factories import PASSWORD, create_project
from tests.factories import add_iteration, create_run

pytestmark = pytest.mark.browser

SIZES = {"desktop": (1280, 900), "phone": (390, 844)}
# 200 % zoom of a 1280-wide window lays pages out in 640 CSS pixels; 320 is WCAG's reflow width.
ZOOMED_WIDTHS = (640, 320)


@pytest.fixture
def world(owner, other):
    """A public project with two finished runs of real images and one computing (the three a TV
    weight sweep), plus the other user's view of it."""
    project = create_project(owner, "Lake house in swirls", is_public=True)
    smooth = create_run(project, numbers=(0, 1, 2, 3), size=(96, 72), tv_weight=0.01)
    sharp = create_run(project, numbers=(0, 1, 2, 3), size=(96, 72), tv_weight=0.0001)
    running = create_run(project, numbers=(0, 1), status=Run.Status.RUNNING, iterations=3, size=(96, 72),
                         tv_weight=0.001, next_iteration_evaluations=7)  # "computing iteration 2: 7 of 20 …"
    sweep = Sweep.objects.create(project=project, axis1="tv_weight", axis1_values=[0.01, 0.001, 0.0001])
    for row, run in enumerate((smooth, running, sharp)):
        Run.objects.filter(id=run.id).update(sweep=sweep, sweep_row=row, sweep_column=0)
    # Runs in the states a computing run can end in, and a project with none, in projects of their own.
    states = create_project(owner, "Runs in every state")
    failed = create_run(states, numbers=(0, 1), status=Run.Status.FAILED, iterations=5,
                        error="The worker ran out of memory.")
    cancelled = create_run(states, numbers=(0,), status=Run.Status.CANCELLED, iterations=5)
    queued = create_run(states, numbers=(), status=Run.Status.QUEUED, iterations=5)
    empty = create_project(owner, "No runs yet")
    return {"project": project, "smooth": smooth, "sharp": sharp, "running": running, "sweep": sweep,
            "states": states, "failed": failed, "cancelled": cancelled, "queued": queued, "empty": empty}


def pages_of(world):
    project, smooth, sharp, running = world["project"], world["smooth"], world["sharp"], world["running"]
    return {
        "projects": "/projects/",
        "new-project": "/projects/new/",
        "gallery": "/gallery/",
        "project": f"/projects/{project.id}/",
        "launch": f"/projects/{project.id}/runs/new/",
        "continue": f"/projects/{project.id}/runs/new/?from_run={sharp.id}&from_iteration=3",
        "edit": f"/projects/{project.id}/edit/",
        "run": f"/runs/{sharp.id}/",
        "run-computing": f"/runs/{running.id}/",
        "compare": f"/compare/?runs={smooth.id},{sharp.id}&crop=20,16,24,18",
        "compare-three": f"/compare/?runs={smooth.id},{running.id},{sharp.id}",  # charted against the TV weight
        "styles": f"/projects/{project.id}/styles/",
        "new-sweep": f"/projects/{project.id}/sweeps/new/",
        "sweep": f"/sweeps/{world['sweep'].id}/?crop=20,16,24,18",
        "guide": "/help/colour-and-style/",
        "not-found": "/projects/999999/",
        "password-change": "/accounts/password_change/",
        "password-changed": "/accounts/password_change/done/",
        "delete-project": f"/projects/{project.id}/delete/",
        "delete-run": f"/runs/{sharp.id}/delete/",
        "delete-run-refused": f"/runs/{running.id}/delete/",  # still computing: cancel it first
        "project-states": f"/projects/{world['states'].id}/",
        "run-failed": f"/runs/{world['failed'].id}/",
        "run-cancelled": f"/runs/{world['cancelled'].id}/",
        "run-queued": f"/runs/{world['queued'].id}/",
        "project-no-runs": f"/projects/{world['empty'].id}/",
        "compare-refused": f"/compare/?runs={smooth.id}",
    }


def send(page, selector):
    """Send the form of the button at selector past the browser's own checks (required fields), to the server's."""
    page.locator(selector).evaluate("button => { button.form.noValidate = true; }")
    page.locator(selector).click()
    page.wait_for_load_state("networkidle")


def wrong_password(page, username, times=1):
    """Log in with a wrong password, up to `times` times while the log-in form is there."""
    for _ in range(times):
        if not page.locator("#id_username").count():
            break  # locked out already
        page.fill("#id_username", username)
        page.fill("#id_password", "wrong")
        send(page, "main button[type=submit]")


# Pages reached by sending a form: signed in or not, the page it starts from, how it gets there from it, and
# the title of the page it gets to.
REFUSED_FORMS = {
    "log-in-refused": (False, "/accounts/login/", lambda page: wrong_password(page, "alice"), "Log in"),
    # The third wrong password locks (LOGIN_FAILURE_LIMIT 3); alice's two above do not.
    "log-in-locked": (False, "/accounts/login/", lambda page: wrong_password(page, "nobody", 3), "Log-in locked"),
    "sign-up-throttled": (False, "/accounts/signup/", lambda page: (  # this address made its account this hour
        page.fill("#id_username", "carol"), page.fill("#id_password1", "a long passphrase 7"),
        page.fill("#id_password2", "a long passphrase 7"), send(page, "main button[type=submit]")), "Sign up"),
    "form-expired": (False, "/accounts/login/", lambda page: (  # the CSRF cookie is gone: Django refuses it, 403
        page.fill("#id_username", "alice"), page.fill("#id_password", PASSWORD), page.context.clear_cookies(),
        send(page, "main button[type=submit]")), "Form out of date"),
    "password-change-refused": (True, "/accounts/password_change/", lambda page: send(page, "main button[type=submit]"),
                                "Change password"),
    "new-project-refused": (True, "/projects/new/", lambda page: send(page, "main button[type=submit].primary"),
                            "New project"),
    "launch-refused": (True, "/projects/{project}/runs/new/", lambda page: (
        page.fill("#id_rows", "-5"), send(page, "main button[type=submit].primary")), "New run"),
    "new-sweep-refused": (True, "/projects/{project}/sweeps/new/", lambda page: send(page, "[data-sweep-launch]"),
                          "New sweep"),
}


def axe_violations(page):
    results = Axe().run(page)
    return [
        f"{violation['id']} ({violation['impact']}): " + "; ".join(node["target"][0] for node in violation["nodes"][:4])
        for violation in results.response["violations"]
    ]


def chatty_live_regions(page):
    """Live regions holding a part that live.js replaces whole (data-live-part without "text"): every swap would
    have all of that part read out again, the launch form's whole estimate at each keystroke. The words to be
    read out go in a node of their own whose text is swapped (#run-announcer, #estimate-announcer)."""
    return page.evaluate("""() => [...document.querySelectorAll(
        '[aria-live]:not([aria-live=off]), [role=status], [role=alert], [role=log]')]
      .filter(region => region.querySelector('[data-live-part]:not([data-live-part=text])'))
      .map(region => 'live region re-reads a swapped part: ' + (region.id || region.className))""")


def horizontal_overflow(page):
    return page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")


def settle(page):
    page.wait_for_load_state("networkidle")
    # Lazy images below the fold load only when scrolled to; the ones on screen must have loaded.
    page.wait_for_function("() => [...document.images].every(i => i.complete || i.loading === 'lazy')")


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_every_page_has_no_axe_violations_at_both_sizes(browser, live_server, world, owner, other, theme, screenshot,
                                                        settings):
    settings.AXES_ENABLED = True
    settings.AXES_FAILURE_LIMIT = 3
    settings.SIGNUP_LIMIT_PER_HOUR = 1
    signups.record_signup(RequestFactory(REMOTE_ADDR="127.0.0.1").get("/"))
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme=theme, reduced_motion="reduce")
    page = context.new_page()
    found = {}
    try:
        for name, path in [("log-in", "/accounts/login/"), ("sign-up", "/accounts/signup/")]:
            for size, (width, height) in SIZES.items():
                page.set_viewport_size({"width": width, "height": height})
                page.goto(live_server.url + path)
                found[f"{name} {size}"] = axe_violations(page) + chatty_live_regions(page)
                screenshot(page, f"a11y-{name}-{size}-{theme}")
        for signed_in in (False, True):
            if signed_in:
                log_in(page, live_server.url, owner)
            for name, (needs_user, path, get_there, title) in REFUSED_FORMS.items():
                if needs_user != signed_in:
                    continue
                for size, (width, height) in SIZES.items():
                    page.set_viewport_size({"width": width, "height": height})
                    page.goto(live_server.url + path.format(project=world["project"].id))
                    get_there(page)
                    expect(page).to_have_title(re.compile(rf"^{title}"))
                    if name != "form-expired":  # the others are refused with an error summary
                        expect(page.locator("#error-summary, h1:text-is('Log-in locked')")).to_have_count(1)
                    found[f"{name} {size}"] = axe_violations(page) + chatty_live_regions(page)
                    screenshot(page, f"a11y-{name}-{size}-{theme}")
        for name, path in pages_of(world).items():
            for size, (width, height) in SIZES.items():
                page.set_viewport_size({"width": width, "height": height})
                page.goto(live_server.url + path)
                settle(page)
                found[f"{name} {size}"] = axe_violations(page) + chatty_live_regions(page)
                screenshot(page, f"a11y-{name}-{size}-{theme}")
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(live_server.url + pages_of(world)["run"])
        page.locator('.grid-item[data-number="2"] .grid-link').click()
        expect(page.locator("#lightbox")).to_be_visible()
        found["lightbox"] = axe_violations(page)
        screenshot(page, f"a11y-lightbox-{theme}", full_page=False)
        # Another user's read-only views of the public project: no actions, no preview, "by alice".
        context.clear_cookies()
        log_in(page, live_server.url, other)
        for name in ("gallery", "project", "run", "sweep"):
            for size, (width, height) in SIZES.items():
                page.set_viewport_size({"width": width, "height": height})
                page.goto(live_server.url + pages_of(world)[name])
                settle(page)
                found[f"{name} read-only {size}"] = axe_violations(page) + chatty_live_regions(page)
                screenshot(page, f"a11y-{name}-read-only-{size}-{theme}")
    finally:
        context.close()
    failing = {view: violations for view, violations in found.items() if violations}
    print({view: len(violations) for view, violations in found.items()})
    assert not failing, failing


# WCAG 1.4.12's text spacing, as a user's style sheet sets it (a constructed sheet: the CSP lets no <style> in).
TEXT_SPACING = """() => {
  const sheet = new CSSStyleSheet();
  sheet.replaceSync(`* { line-height: 1.5 !important; letter-spacing: .12em !important; }
                     * { word-spacing: .16em !important; } p { margin-bottom: 2em !important; }`);
  document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
}"""


def test_no_page_scrolls_sideways_at_phone_size_or_200_percent_zoom(page, live_server, world, owner):
    """Nor at 320 px with WCAG 1.4.12's wider text spacing (a button's words wrap, a long title breaks)."""
    log_in(page, live_server.url, owner)
    overflowing = {}
    for width, spaced in [(SIZES["phone"][0], False)] + [(width, False) for width in ZOOMED_WIDTHS] + [(320, True)]:
        page.set_viewport_size({"width": width, "height": 800})
        for name, path in pages_of(world).items():
            page.goto(live_server.url + path)
            settle(page)
            if spaced:
                page.evaluate(TEXT_SPACING)
            extra = horizontal_overflow(page)
            if extra > 0:
                overflowing[f"{name} at {width}px{' with text spacing' if spaced else ''}"] = extra
    assert not overflowing, overflowing


def test_the_phone_project_page_shows_thumbnails_and_says_the_table_scrolls(page, live_server, world, owner):
    log_in(page, live_server.url, owner)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/projects/{world['project'].id}/")
    settle(page)
    widths = page.locator("img.run-thumb").evaluate_all("images => images.map(i => i.getBoundingClientRect().width)")
    assert len(widths) == 3 and all(width >= 60 for width in widths)
    expect(page.locator(".scroll-hint")).to_be_visible()
    # The status column comes straight after the label, so it is on screen without scrolling.
    status = page.locator("#runs-table tbody tr .status").first.bounding_box()
    assert status["x"] + status["width"] <= 390
    # The compare page's badges and labels do not break mid-word.
    page.goto(f"{live_server.url}/compare/?runs={world['smooth'].id},{world['sharp'].id}")
    heights = page.locator(".compare-head .status").evaluate_all("bs => bs.map(b => b.getBoundingClientRect().height)")
    assert all(height < 30 for height in heights)


def test_the_sweep_matrix_names_its_axis_without_reading_out_the_drawn_arrow(page, live_server, world, owner):
    log_in(page, live_server.url, owner)
    page.goto(f"{live_server.url}/sweeps/{world['sweep'].id}/")
    expect(page.locator("#sweep-matrix").get_by_role("columnheader", name="TV weight", exact=True)).to_have_count(1)


def test_the_run_page_shows_the_current_state_only_as_it_changes(page, live_server, owner, project, screenshot):
    run = create_run(project, numbers=(0,), status=Run.Status.RUNNING, iterations=4)
    log_in(page, live_server.url, owner)
    page.goto(f"{live_server.url}/runs/{run.id}/")
    page.evaluate("window.__notReloaded = true")
    add_iteration(run, 1)
    Run.objects.filter(id=run.id).update(iterations_done=1)
    expect(page.locator('.grid-item[data-number="1"]')).to_have_count(1)
    expect(page.locator("[data-progress-text]")).to_have_text("Iteration 1 of 4")
    expect(page.locator(".grid-item[data-number]")).to_have_count(2)
    Run.objects.filter(id=run.id).update(cancel_requested=True)
    expect(page.locator("#run-state")).to_contain_text("Cancelling")
    expect(page.locator("#cancel-run")).to_have_count(0)
    Run.objects.filter(id=run.id).update(status=Run.Status.CANCELLED)
    cancelled = "This run was cancelled at iteration 1. Its saved iterations are kept, iteration 1 included."
    expect(page.locator("#run-state")).to_have_text(cancelled)
    expect(page.locator("#run-status")).to_have_text("Cancelled")
    expect(page.locator("#run-announcer")).to_have_text(cancelled)
    screenshot(page, "run-page-cancelled")
    expect(page.locator(".messages")).to_have_count(0)
    assert page.evaluate("window.__notReloaded") is True
    # Polling has stopped: the poller carries no address any more.
    expect(page.locator("#live-poller")).not_to_have_attribute("data-live-url", re.compile("."))


def test_a_live_update_keeps_the_opened_loss_table_open_and_the_focus_in_it(page, live_server, owner, project):
    """The loss chart is swapped whole as a run computes: the values' table a keyboard user opened stays
    open, and the focus stays on its summary instead of falling back to the page (WCAG 2.4.3)."""
    run = create_run(project, numbers=(0, 1), status=Run.Status.RUNNING, iterations=4)
    log_in(page, live_server.url, owner)
    page.goto(f"{live_server.url}/runs/{run.id}/")
    tab_to(page, "#loss-chart summary")
    page.keyboard.press("Enter")
    table = page.locator("#loss-chart details")
    expect(table).to_have_attribute("open", "")
    page.wait_for_timeout(3000)  # a poll or more with nothing new
    add_iteration(run, 2)
    Run.objects.filter(id=run.id).update(iterations_done=2)
    expect(page.locator('#loss-chart tbody th:text-is("2")')).to_have_count(1)
    expect(table).to_have_attribute("open", "")
    assert page.evaluate("() => document.activeElement.matches('#loss-chart summary')")


def test_the_compare_page_follows_a_computing_run_live(page, live_server, owner, project):
    done = create_run(project, numbers=(0, 1, 2), tv_weight=0.1)
    computing = create_run(project, numbers=(0,), status=Run.Status.RUNNING, iterations=2, tv_weight=1)
    log_in(page, live_server.url, owner)
    page.goto(f"{live_server.url}/compare/?runs={done.id},{computing.id}")
    image = page.locator(f"#compare-image-{computing.id} img")
    expect(image).to_have_attribute("src", re.compile(rf"/runs/{computing.id}/iterations/0/image/$"))
    add_iteration(computing, 2)
    Run.objects.filter(id=computing.id).update(status=Run.Status.DONE, iterations_done=2)
    expect(image).to_have_attribute("src", re.compile(rf"/runs/{computing.id}/iterations/2/image/$"))
    expect(page.locator(f"#compare-head-{computing.id} .status")).to_have_text("Done")
    expect(page.locator("#iteration-slider")).to_have_attribute("data-numbers", "0,1,2")
    # The slider re-renders the columns on the server: iteration 1, and the latest before it.
    page.locator("#iteration-slider").fill("1")
    expect(page.locator(f"#compare-caption-{computing.id}")).to_contain_text("Iteration 0 (its latest before 1)")
    expect(page.locator("#iteration-slider")).to_have_attribute("aria-valuetext", "iteration 1 of 2")


def test_the_lightbox_shows_an_image_pixel_for_pixel_or_fitted_and_sharp(page, live_server, owner, project):
    run = create_run(project, numbers=(0, 1), size=(64, 48))
    log_in(page, live_server.url, owner)
    page.goto(f"{live_server.url}/runs/{run.id}/")
    page.locator('.grid-item[data-number="1"] .grid-link').click()
    image = page.locator("[data-lightbox-image]")
    page.wait_for_function("() => document.querySelector('[data-lightbox-image]').naturalWidth > 0")
    # Fitted: a 64 px image fills the window, magnified without smoothing.
    expect(image).to_have_class(re.compile("pixelated"))
    assert image.evaluate("i => getComputedStyle(i).imageRendering") == "pixelated"
    page.keyboard.press("1")
    expect(page.locator("[data-lightbox-scale]")).to_have_attribute("aria-pressed", "true")
    # A toggle button keeps its name; only its state changes (a pressed "Fit" would say the opposite, WCAG 4.1.2).
    expect(page.locator("[data-lightbox-scale]")).to_have_text("1:1")
    assert image.evaluate("i => Math.round(i.getBoundingClientRect().width)") == 64
    page.keyboard.press("f")
    expect(page.locator("[data-lightbox-scale]")).to_have_attribute("aria-pressed", "false")
    assert image.evaluate("i => i.getBoundingClientRect().width") > 64


def tab_to(page, selector, *, shift=False, most=60):
    """Press Tab (or Shift+Tab) until the focus is on selector; the focus ring must show."""
    for _ in range(most):
        page.keyboard.press("Shift+Tab" if shift else "Tab")
        if page.evaluate("s => document.activeElement && document.activeElement.matches(s)", selector):
            outline = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
            assert outline not in ("none", ""), f"no visible focus ring on {selector}"
            return
    raise AssertionError(f"Tab never reached {selector}")


def test_everything_can_be_done_with_the_keyboard_alone(page, live_server, owner, project):
    done = create_run(project, numbers=(0, 1, 2), tv_weight=0.1)
    create_run(project, numbers=(0, 1, 2), tv_weight=1)
    page.goto(f"{live_server.url}/accounts/login/")
    tab_to(page, "#id_username")
    page.keyboard.type(owner.username)
    tab_to(page, "#id_password")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/projects/$"))
    # The account link says where it goes, not only whose it is (WCAG 2.4.4); its visible name comes first.
    tab_to(page, '.user-menu a[href="/accounts/password_change/"]')
    expect(page.get_by_role("link", name=f"{owner.username} (change password)", exact=True)).to_be_focused()

    tab_to(page, f'.project-card h2 a[href="/projects/{project.id}/"]')
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/projects/{project.id}/$"))

    # Sort the runs table, tick two runs, compare.
    tab_to(page, "#runs-table th:nth-child(3) button")
    page.keyboard.press("Enter")
    expect(page.locator("#runs-table th:nth-child(3)")).to_have_attribute("aria-sort", "ascending")
    # The drawn arrow is not part of the button's name ("Label", not "Label up arrow"): aria-sort says it.
    expect(page.get_by_role("button", name="Label", exact=True)).to_be_focused()
    tab_to(page, 'input[name="runs"]')
    page.keyboard.press("Space")
    tab_to(page, 'input[name="runs"]:not(:checked)')
    page.keyboard.press("Space")
    tab_to(page, "[data-compare-button]", shift=True)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/compare/\?runs="))

    # The crop's fields are named x, y, width and height within a form named Crop (WCAG 1.3.1, 2.4.6).
    expect(page.get_by_role("form", name="Crop").get_by_role("spinbutton", name="width")).to_have_count(1)
    # Move the crop box with the arrow keys; Shift+arrows resize it.
    tab_to(page, ".compare-frame")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#crop-panel")).to_be_visible()
    x = int(page.locator('#crop-form input[name="x"]').input_value())
    page.keyboard.press("ArrowRight")
    assert int(page.locator('#crop-form input[name="x"]').input_value()) > x
    w = int(page.locator('#crop-form input[name="w"]').input_value())
    page.keyboard.press("Shift+ArrowRight")
    assert int(page.locator('#crop-form input[name="w"]').input_value()) > w
    expect(page).to_have_url(re.compile(r"crop=\d+,\d+,\d+,\d+"))
    # Each move is read out: the region in words, in a polite live region (WCAG 4.1.3).
    region = [page.locator(f'#crop-form input[name="{key}"]').input_value() for key in "xywh"]
    summary = page.locator("#crop-panel [data-crop-summary]")
    expect(summary).to_have_text("x {}, y {}, {}×{} px".format(*region))
    expect(summary).to_have_attribute("aria-live", "polite")
    tab_to(page, "#iteration-slider", shift=True)
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#iteration-value")).to_have_text("iteration 2 of 2")

    # The run page: the lightbox opens on Enter, steps, keeps the focus inside, Esc returns it.
    page.goto(f"{live_server.url}/runs/{done.id}/")
    tab_to(page, "#grid-columns")
    page.keyboard.press("ArrowRight")
    expect(page.locator("#grid-columns")).to_have_attribute("aria-valuetext", re.compile(r"\d columns"))
    tab_to(page, '.grid-item[data-number="1"] .grid-link')
    page.keyboard.press("Enter")
    expect(page.locator("#lightbox")).to_be_visible()
    caption = page.locator("[data-lightbox-caption]")
    expect(caption).to_contain_text("Iteration 1 ·")
    page.keyboard.press("ArrowRight")
    expect(caption).to_contain_text("Iteration 2 ·")
    for _ in range(8):
        page.keyboard.press("Tab")
        assert page.evaluate("() => document.getElementById('lightbox').contains(document.activeElement)")
    page.keyboard.press("Escape")
    expect(page.locator("#lightbox")).to_be_hidden()
    assert page.evaluate("() => document.activeElement.closest('.grid-item').dataset.number") == "2"

    # Launch a run from the project page, then continue it, by keyboard.
    tab_to(page, f'.breadcrumbs a[href="/projects/{project.id}/"]', shift=True)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(rf"/projects/{project.id}/$"))
    tab_to(page, "a.button.primary")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/runs/new/$"))
    expect(page.locator(".breadcrumbs")).to_contain_text("New run")
    tab_to(page, "#id_rows")
    page.keyboard.press("Control+a")
    page.keyboard.type("64")
    tab_to(page, "button[type=submit].primary")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/runs/\d+/$"))
    expect(page.locator("#run-status")).to_have_text("Queued")
    tab_to(page, "#cancel-run")
    page.keyboard.press("Enter")
    expect(page.locator("#run-status")).to_have_text("Cancelled")
    expect(page.locator("#run-state")).to_contain_text("This run was cancelled before it started")


def test_a_run_too_large_for_the_workers_memory_is_refused_as_it_is_typed_and_at_launch(
        page, live_server, owner, project, settings, screenshot):
    from gallery.models import DeviceMemory

    settings.RUN_MAX_ROWS = 2048
    DeviceMemory.objects.create(device="", limit=4 * 2 ** 30)  # the device before any worker measured
    log_in(page, live_server.url, owner)
    page.goto(f"{live_server.url}/projects/{project.id}/runs/new/")
    estimate = page.locator("[data-role=estimate]")
    expect(estimate).to_contain_text("Expected duration: about")
    expect(estimate).not_to_contain_text("Too large")
    page.fill("#id_rows", "2048")
    expect(estimate).to_contain_text("Too large to compute: A 2048×", timeout=15_000)
    expect(estimate).to_contain_text("Use at most")
    # A screen reader hears the refusal once, not the whole estimate again.
    expect(page.locator("#estimate-announcer")).to_have_text(re.compile(r"^\s*Too large to compute: A 2048×"))
    assert not chatty_live_regions(page)
    for theme in ("light", "dark"):
        page.emulate_media(color_scheme=theme)
        assert not axe_violations(page), theme
        screenshot(page, f"launch-too-large-{theme}")
    page.click("button:has-text('Launch run')")
    expect(page.locator("body")).to_contain_text("the workers' machine lets a run use 3.9 GB. Use at most")
    assert not Run.objects.exists()
    page.fill("#id_rows", "400")
    expect(estimate).not_to_contain_text("Too large", timeout=15_000)
