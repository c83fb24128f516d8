"""A run with the photo's colours kept and two style images blended, from the browser (issue 13)."""
import pytest
from playwright.sync_api import expect

from gallery import queue, tasks
from gallery.models import Run
from tests.browser.helpers import log_in
from tests.factories import create_project, make_image

pytestmark = pytest.mark.browser


@pytest.fixture
def patient(page):
    """This test also computes the run in the server's process: on a loaded machine pages wait on it."""
    page.set_default_timeout(120_000)
    expect.set_options(timeout=60_000)
    yield page
    expect.set_options(timeout=15_000)


def test_a_run_with_kept_colours_and_two_style_images(patient, live_server, owner, screenshot, tmp_path,
                                                      monkeypatch):
    page = patient
    monkeypatch.setattr(queue, "async_task", lambda *args, **kwargs: None)  # computed below, in this process
    project = create_project(owner)
    second = tmp_path / "second.png"
    second.write_bytes(make_image(60, 45, seed=9))
    log_in(page, live_server.url, owner)

    page.goto(f"{live_server.url}/projects/{project.id}/")
    page.get_by_role("link", name="Style images (1)").click()
    page.set_input_files("#id_image", str(second))
    page.get_by_role("button", name="Add style image").click()
    expect(page.locator(".style-list li")).to_have_count(2)
    screenshot(page, "project-style-images")

    page.goto(f"{live_server.url}/projects/{project.id}/runs/new/")
    expect(page.get_by_role("link", name="the guide shows each in pictures")).to_be_visible()
    page.fill("#id_rows", "64")
    page.fill("#id_iterations", "2")
    page.fill("#id_save_every", "1")
    page.select_option("#id_init", "content")
    page.fill("#id_blend_2", "0.5")
    page.select_option("#id_preserve_colors", "luminance")
    page.select_option("#id_style_layers", "fine")
    screenshot(page, "run-form-colour-and-style")
    page.get_by_role("button", name="Launch run").click()
    expect(page.locator("h1")).to_have_text("output_0.0001_0.3_1_64px_luminance_fine_blend1-0.5")

    run = Run.objects.get()
    assert (run.style_blend, run.preserve_colors, run.style_layers) == ("1,0.5", "luminance", "fine")
    assert tasks.execute_run(run.id) == "done"
    page.reload()
    expect(page.get_by_text("1 × style 1, 0.5 × style 2")).to_be_visible()
    expect(page.get_by_text("Luminance: restyle the brightness only")).to_be_visible()
    expect(page.locator("img[alt*='iteration 2']").first).to_be_visible()
    screenshot(page, "run-page-colour-and-style")

    page.goto(f"{live_server.url}/help/colour-and-style/")
    expect(page.locator("h1")).to_have_text("Colour and style controls, in pictures")
    screenshot(page, "colour-and-style-guide")
