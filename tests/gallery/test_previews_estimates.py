"""The instant preview's and the estimate's views, the estimator's arithmetic, scale captions and
the chart's scale marks (no worker here: tests/gallery/test_lanes.py runs the real lanes)."""
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django_q.models import OrmQ

from gallery import estimates, previews
from gallery.display import format_duration, loss_chart, scale_starts
from gallery.models import Iteration, Lane, Preview, Run, SpeedSample
from gallery.views import previews as preview_views
from tests.factories import create_project

pytestmark = pytest.mark.django_db

FORM = {
    "content_weight": "1", "style_weight": "100", "tv_weight": "1", "iterations": "30", "rows": "400",
    "save_every": "10", "style_fit": "crop", "optimizer": "lbfgs", "init": "adain", "adain_alpha": "1",
    "precision": "auto", "start_rows": "200", "seed": "",
}


def preview_tasks(settings):
    """The tasks waiting in the preview lane's queue (django-q2's ORM broker keys them by cluster name)."""
    return [queued.task for queued in OrmQ.objects.filter(key=settings.PREVIEW_CLUSTER)]


def calibrate(device="CPU", per_megapixel=4.0, overhead=0.01, precision="bfloat16", requested="auto"):
    for rows in (128, 224):
        pixels = rows * round(rows * 4 / 3)
        SpeedSample.objects.create(
            device=device, precision=precision, requested=requested, pixels=pixels, evaluations=10,
            seconds=10 * (overhead + per_megapixel * pixels / 1e6), calibration=True,
        )


# -- the preview's endpoints ----------------------------------------------------------------------


def test_asking_for_a_preview_queues_it_on_the_preview_lane_once(owner_client, project, settings, monkeypatch):
    # No lane computes here, so each request's long-poll would sleep its full length (6 s of the fast
    # suite); a short one still re-reads the pending preview.
    monkeypatch.setattr(preview_views, "PREVIEW_POST_WAIT_SECONDS", 0.1)
    monkeypatch.setattr(preview_views, "PREVIEW_WAIT_SECONDS", 0.1)
    url = reverse("preview_request", args=[project.id])
    response = owner_client.post(url, {"alpha": "0.62"}, HTTP_X_FRAGMENT="1")
    assert response.status_code == 200
    preview = Preview.objects.get()
    assert (preview.alpha, preview.rows, preview.status) == (0.6, settings.PREVIEW_ROWS, Preview.Status.PENDING)
    assert preview.content_name == project.content_image.name
    html = response.content.decode()
    assert 'data-state="pending"' in html and "Warming up the preview worker" in html
    queued = preview_tasks(settings)
    assert len(queued) == 1 and tuple(queued[0]["args"]) == (preview.id,)
    assert queued[0]["func"] == previews.COMPUTE_PREVIEW

    owner_client.post(url, {"alpha": "0.6"}, HTTP_X_FRAGMENT="1")  # the same alpha again: cached
    assert Preview.objects.count() == 1 and len(preview_tasks(settings)) == 1
    Lane.objects.create(name=previews.LANE, warm_since=timezone.now())
    html = owner_client.get(reverse("preview_fragment", args=[project.id]), {"alpha": "0.6"}).content.decode()
    assert "Computing the preview at style strength 0.60" in html


def test_a_finished_preview_is_shown_with_a_link_that_starts_a_run_from_it(owner_client, project):
    preview = previews.request_preview(project, 0.35)
    from PIL import Image

    from gallery import files

    files.save_image(preview.image, Image.new("RGB", (32, 24), (200, 40, 40)), fmt="JPEG")
    Preview.objects.filter(id=preview.id).update(status=Preview.Status.DONE, image=preview.image.name, seconds=0.8)
    html = owner_client.get(reverse("project_detail", args=[project.id]), {"alpha": "0.35"}).content.decode()
    assert 'data-role="preview-image"' in html and "computed in 0.8 s" in html
    image_url = reverse("preview_image", args=[project.id, preview.id])
    assert image_url in html
    assert owner_client.get(image_url)["Content-Type"] == "image/jpeg"
    start = reverse("run_create", args=[project.id]) + "?init=adain&amp;adain_alpha=0.35"
    assert start in html
    form = owner_client.get(start.replace("&amp;", "&")).context["form"]
    assert form["init"].value() == "adain" and form["adain_alpha"].value() == 0.35


@pytest.mark.parametrize("status", ["none", Preview.Status.PENDING, Preview.Status.FAILED, Preview.Status.DONE])
def test_every_page_with_the_preview_has_its_figure_whatever_the_state(owner_client, project, status):
    """live.js swaps a part only into the element of its id already on the page: a page first
    rendered while the preview computes must have the figure the finished picture goes into."""
    if status != "none":
        preview = previews.request_preview(project, 1.0)
        Preview.objects.filter(id=preview.id).update(status=status, error="out of memory")
    for url in (reverse("project_detail", args=[project.id]), reverse("run_create", args=[project.id])):
        html = owner_client.get(url).content.decode()
        assert html.count('id="preview-figure"') == 1, url
        assert "{#" not in html and "{%" not in html
        # Pending or failed, the fragment's figure is no live part: a page keeps the picture it shows.
        assert ('id="preview-figure" class="preview-figure" data-live-part>' in html) == (status == "done")
        assert ('class="preview-figure preview-empty" data-live-part>' in html) == (status == "none")


def test_the_preview_is_the_owners_alone(owner_client, other_client, project, public_project):
    preview = previews.request_preview(project, 1.0)
    for target in (project, public_project):
        assert other_client.post(reverse("preview_request", args=[target.id]), {"alpha": "1"}).status_code == 404
        assert other_client.get(reverse("preview_fragment", args=[target.id]), {"alpha": "1"}).status_code == 404
    assert other_client.get(reverse("preview_image", args=[project.id, preview.id])).status_code == 404
    assert "preview-alpha" not in other_client.get(reverse("project_detail", args=[public_project.id])).content.decode()
    assert Preview.objects.count() == 1


@pytest.mark.parametrize("alpha", ["", "x", "-0.1", "1.5", "nan", "inf"])
def test_a_bad_alpha_is_refused_and_nothing_is_queued(owner_client, project, alpha):
    response = owner_client.post(reverse("preview_request", args=[project.id]), {"alpha": alpha})
    assert response.status_code == 400 and b"from 0 to 1" in response.content
    assert not Preview.objects.exists() and not OrmQ.objects.exists()


def test_without_javascript_the_preview_form_returns_to_the_project_page(owner_client, project):
    response = owner_client.post(reverse("preview_request", args=[project.id]), {"alpha": "0.5"})
    assert response.status_code == 302 and response["Location"].endswith("?alpha=0.5#preview")


def test_previews_of_replaced_images_and_of_deleted_projects_go_with_their_files(
    owner_client, project, settings, django_capture_on_commit_callbacks
):
    from django.core.files.storage import default_storage

    old = previews.request_preview(project, 0.5)
    from PIL import Image

    from gallery import files

    files.save_image(old.image, Image.new("RGB", (8, 8)), fmt="JPEG")
    Preview.objects.filter(id=old.id).update(image=old.image.name, status=Preview.Status.DONE)
    project.content_image.name = "projects/replaced.jpg"  # as if the content image was replaced
    project.save()
    previews.request_preview(project, 0.5)
    assert list(Preview.objects.values_list("content_name", flat=True)) == ["projects/replaced.jpg"]
    assert not default_storage.exists(old.image.name)

    settings.PREVIEW_MAX_PER_PROJECT = 3
    for alpha in (0.1, 0.2, 0.3, 0.4):
        previews.request_preview(project, alpha)
    assert Preview.objects.filter(project=project).count() == 3

    kept = Preview.objects.first()
    files.save_image(kept.image, Image.new("RGB", (8, 8)), fmt="JPEG")
    Preview.objects.filter(id=kept.id).update(image=kept.image.name)
    with django_capture_on_commit_callbacks(execute=True):
        owner_client.post(reverse("project_delete", args=[project.id]))
    assert not Preview.objects.exists()
    assert not default_storage.exists(kept.image.name)


def test_a_stuck_preview_is_queued_again(owner_client, project, settings):
    preview = previews.request_preview(project, 1.0)
    Preview.objects.filter(id=preview.id).update(requested=timezone.now() - timedelta(seconds=settings.PREVIEW_RETRY_SECONDS + 1))
    previews.request_preview(project, 1.0)
    assert len(preview_tasks(settings)) == 2


def test_a_preview_deleted_while_its_page_waits_for_it_is_answered_as_none(owner_client, project, monkeypatch):
    """Replacing the project's images (or deleting the project) removes its previews, perhaps while a
    long-poll waits on one: the answer is the empty preview, not a server error."""
    previews.request_preview(project, 0.5)
    monkeypatch.setattr(previews.time, "sleep", lambda _seconds: Preview.objects.all().delete())
    response = owner_client.get(reverse("preview_fragment", args=[project.id]), {"alpha": "0.5"})
    assert response.status_code == 200 and "Move the slider to see the style" in response.content.decode()
    response = owner_client.post(reverse("preview_request", args=[project.id]), {"alpha": "0.7"}, HTTP_X_FRAGMENT="1")
    assert response.status_code == 200


def test_one_user_cannot_fill_the_shared_preview_lane(owner, other, project, settings):
    settings.PREVIEW_MAX_PENDING_PER_USER = 3
    second = create_project(owner, title="Another of mine")
    for alpha in (0.1, 0.2):
        previews.request_preview(project, alpha)
    previews.request_preview(second, 0.3)  # the cap is the user's, across projects
    refused = previews.request_preview(second, 0.4)
    assert refused.status == Preview.Status.FAILED
    assert refused.error == "3 of your previews are being computed already; move the slider again when they are ready."
    assert len(preview_tasks(settings)) == 3
    assert previews.request_preview(create_project(other), 0.5).status == Preview.Status.PENDING  # others are not held
    Preview.objects.filter(alpha=0.1).update(status=Preview.Status.DONE)  # the lane answered one
    assert previews.request_preview(second, 0.4).status == Preview.Status.PENDING  # asked again: queued now
    Preview.objects.filter(alpha__in=(0.2, 0.3)).update(
        requested=timezone.now() - timedelta(seconds=settings.PREVIEW_RETRY_SECONDS + 1))
    assert previews.request_preview(project, 0.6).status == Preview.Status.PENDING  # lost ones do not count
    assert len(preview_tasks(settings)) == 6


# -- the estimate -----------------------------------------------------------------------------------


def test_the_speed_fit_recovers_overhead_and_per_megapixel_cost():
    samples = [(pixels, 20, 20 * (0.05 + 3.0 * pixels / 1e6)) for pixels in (10_000, 50_000, 200_000)]
    speed = estimates.fit_speed(samples)
    assert speed.overhead == pytest.approx(0.05, rel=1e-6) and speed.per_megapixel == pytest.approx(3.0, rel=1e-6)
    one_size = estimates.fit_speed([(100_000, 10, 2.0)])
    assert (one_size.overhead, one_size.per_megapixel) == (0.0, pytest.approx(2.0))
    assert estimates.fit_speed([]) is None


def test_the_estimate_follows_the_scales_precision_and_optimizer(project):
    calibrate(per_megapixel=4.0, overhead=0.01)
    calibrate(per_megapixel=8.0, overhead=0.01, precision="float32", requested="float32")
    run = Run(project=project, rows=400, iterations=30, start_rows=200, optimizer="lbfgs", precision="auto")
    estimate = estimates.estimate_run(run, 4 / 3)
    assert [rows for rows, _, _ in estimate.scales] == [200, 283, 400]
    assert sum(e for _, _, e in estimate.scales) == 30 * 20 + 3 * estimates.EVALUATIONS_PER_SCALE
    assert estimate.precision == "bfloat16" and estimate.measured and estimate.device == "CPU"
    expected = sum(e * (0.01 + 4.0 * rows * cols / 1e6) for rows, cols, e in estimate.scales)
    assert estimate.seconds == pytest.approx(expected)

    single = estimates.estimate_run(Run(project=project, rows=400, iterations=30, start_rows=400), 4 / 3)
    assert single.seconds > estimate.seconds  # coarse to fine is cheaper
    f32 = estimates.estimate_run(Run(project=project, rows=400, iterations=30, start_rows=200, precision="float32"), 4 / 3)
    assert f32.seconds == pytest.approx(2 * estimate.seconds, rel=0.05)
    adam = estimates.estimate_run(Run(project=project, rows=400, iterations=30, start_rows=200, optimizer="adam"), 4 / 3)
    assert adam.evaluations == estimate.evaluations  # an Adam iteration is 20 steps too
    small = estimates.estimate_run(Run(project=project, rows=64, iterations=30, start_rows=64), 4 / 3)
    assert small.precision == "float32"  # auto computes tiny outputs in float32


def test_without_measurements_the_estimate_says_it_uses_the_built_in_figure(owner_client, project):
    html = owner_client.get(reverse("run_create", args=[project.id])).content.decode()
    assert 'data-role="estimate"' in html and "Expected duration: about" in html
    assert "No worker has measured its speed yet" in html
    assert f"on a 2-core {estimates.cpu_kind()}, the kind of CPU this machine has" in html


@pytest.mark.parametrize("cpu_precision", ["bfloat16", "float32"])
def test_without_measurements_auto_is_what_this_machine_would_pick(project, monkeypatch, cpu_precision):
    monkeypatch.setenv("STYLECORE_AUTO_PRECISION", cpu_precision)
    estimate = estimates.estimate_run(Run(project=project, rows=400, iterations=17, start_rows=400), 4 / 3)
    assert estimate.precision == cpu_precision and not estimate.measured
    per_megapixel = estimates.fallback_seconds_per_megapixel(cpu_precision)
    assert estimate.seconds == pytest.approx(estimate.evaluations * per_megapixel * 400 * 533 / 1e6)


@pytest.mark.parametrize("flags, float32, bfloat16", [
    ("avx2 avx512_bf16 amx_tile amx_bf16", 7.8, 3.9),  # an Intel Xeon with AMX
    ("avx2 avx512f avx512_bf16", 11.2, 6.1),  # an AMD Zen 4: bfloat16 without AMX
    ("avx2 fma", 16.0, 210.0),  # AVX2 only: bfloat16 emulated
])
def test_without_measurements_the_figures_are_those_of_this_kind_of_cpu(monkeypatch, tmp_path, flags, float32,
                                                                         bfloat16):
    from stylecore import network

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor : 0\nflags : fpu {flags}\n")
    monkeypatch.setattr(estimates, "cpu_flags", lambda: network.cpu_flags(str(cpuinfo)))
    assert estimates.fallback_seconds_per_megapixel("float32") == float32
    assert estimates.fallback_seconds_per_megapixel("bfloat16") == bfloat16
    # Every kind's native bfloat16 is faster than its float32; an emulated one far slower.
    assert (bfloat16 < float32) == network.cpu_has_bfloat16(str(cpuinfo))


def test_the_estimate_warns_when_the_run_would_enlarge_the_photo_into_a_blur(owner_client, project):
    url = reverse("run_estimate", args=[project.id])  # the project's photo is 48 pixels tall
    soft = owner_client.get(url, FORM | {"rows": "400"}).content.decode()
    assert ("The photo is 48 pixels tall: at 400 rows it is enlarged 8.3 times, so the result will look soft. "
            "Use fewer rows, or a larger photo.") in soft
    assert "look soft" not in owner_client.get(url, FORM | {"rows": "96"}).content.decode()  # twice: still fine


def test_the_estimate_endpoint_answers_for_the_typed_settings(owner_client, other_client, project):
    calibrate()
    url = reverse("run_estimate", args=[project.id])
    short = owner_client.get(url, FORM | {"iterations": "10"})
    long = owner_client.get(url, FORM | {"iterations": "200", "save_every": "50"})
    assert short.status_code == long.status_code == 200
    assert short.context["estimate"].seconds < long.context["estimate"].seconds / 10
    html = short.content.decode()
    assert 'data-role="estimate"' in html and "in bfloat16 on CPU" in html and "200 → 283 → 400 rows" in html
    assert "A worker is free" in html and "No worker has measured" not in html
    bad = owner_client.get(url, FORM | {"rows": "abc"})
    assert bad.context["estimate"] is None and b"Not valid yet: Rows; the estimate shows once it is." in bad.content
    # It names every field in the way, in the form's order.
    worse = owner_client.get(url, FORM | {"rows": "abc", "seed": "-3", "content_weight": "-1"})
    assert b"Not valid yet: Content weight, Rows, Seed; the estimate shows once they are." in worse.content
    assert other_client.get(url, FORM).status_code == 404


def test_the_estimates_clock_time_names_its_zone(owner_client, project):
    """The expected start is the server's clock (TIME_ZONE, UTC by default), which need not be the
    reader's: it says which."""
    calibrate()
    Run.objects.create(project=project, status=Run.Status.RUNNING, iterations=10, iterations_done=5,
                       seconds_per_iteration=60.0, started=timezone.now())
    html = owner_client.get(reverse("run_estimate", args=[project.id]), FORM).content.decode()
    assert re.search(r"It would start when a worker frees up, around \d\d:\d\d UTC\.", html)


def test_the_estimate_says_when_a_run_would_take_turns(owner_client, project, settings):
    calibrate()
    url = reverse("run_estimate", args=[project.id])
    settings.RUN_TURN_SECONDS = round(owner_client.get(url, FORM).context["estimate"].seconds) + 60
    turns = "Runs take turns: after {} of computing, it pauses whenever another person's run is waiting"
    assert "Runs take turns" not in owner_client.get(url, FORM).content.decode()
    longer = owner_client.get(url, FORM | {"iterations": "200", "save_every": "50"}).content.decode()
    assert turns.format(format_duration(settings.RUN_TURN_SECONDS)) in longer


def test_the_queue_forecast_is_fair_and_gives_expected_starts(owner, other, project):
    calibrate()
    theirs = create_project(other)
    now = timezone.now()
    running = Run.objects.create(project=theirs, status=Run.Status.RUNNING, iterations=10, iterations_done=5,
                                 seconds_per_iteration=20.0, started=now)
    mine = [Run.objects.create(project=project, estimated_seconds=100.0) for _ in range(2)]
    their_queued = Run.objects.create(project=theirs, estimated_seconds=50.0)
    forecast = estimates.queue_forecast()
    # One worker (one run running, 100 s left). The fair queue's rule: mine first (I have none
    # running); then we both have one in progress and my second run has waited longer than theirs.
    assert forecast[mine[0].id] == (0, pytest.approx(100.0))
    assert forecast[mine[1].id] == (1, pytest.approx(200.0))
    assert forecast[their_queued.id] == (2, pytest.approx(300.0))
    estimate = estimates.estimate_run(Run(project=project, rows=64, iterations=2, start_rows=64), 4 / 3, owner=owner)
    assert estimate.queue_ahead == 3 and estimate.start_in == pytest.approx(350.0)
    assert running.id not in forecast


def test_the_forecast_keeps_the_per_user_cap_and_the_retry_wait_as_the_workers_do(owner, other, project, settings):
    settings.USER_MAX_RUNNING_RUNS = 1
    theirs = create_project(other)
    for owner_project, seconds_left in ((project, 100.0), (theirs, 50.0)):
        Run.objects.create(project=owner_project, status=Run.Status.RUNNING, iterations=10, iterations_done=5,
                           seconds_per_iteration=seconds_left / 5)
    mine = Run.objects.create(project=project, estimated_seconds=10.0)
    waiting = Run.objects.create(project=theirs, estimated_seconds=10.0,
                                 not_before=timezone.now() + timedelta(seconds=600))

    forecast = estimates.queue_forecast()

    # Their worker frees first (50 s), but I may run one run at a time: mine waits for my own (100 s).
    assert forecast[mine.id] == (0, pytest.approx(100.0, abs=1))
    # Theirs waits out its retry back-off although workers are free from 100 s on.
    assert forecast[waiting.id] == (1, pytest.approx(600.0, abs=1))


def test_the_forecast_lets_a_long_run_take_turns_with_other_users_runs(owner, other, project, settings):
    """One worker computes their run of about 9900 s more, claimed 100 s ago; turns of 600 s."""
    settings.RUN_TURN_SECONDS = 600
    theirs = create_project(other)
    now = timezone.now()
    Run.objects.create(project=theirs, status=Run.Status.RUNNING, rows=64, start_rows=64, iterations=1000,
                       iterations_done=10, seconds_per_iteration=10.0, started=now, claimed=now - timedelta(seconds=100))
    mine = Run.objects.create(project=project, estimated_seconds=100.0, iterations=10)
    their_queued = Run.objects.create(project=theirs, estimated_seconds=50.0)

    forecast = estimates.queue_forecast()

    # Their turn ends in 500 s, and their run pauses for mine; then their own queued run, which has
    # waited longer than their paused one.
    assert forecast[mine.id] == (0, pytest.approx(500.0, abs=1))
    assert forecast[their_queued.id] == (1, pytest.approx(600.0, abs=1))
    # A run of mine launched now goes before their paused run (which queued again after it).
    estimate = estimates.estimate_run(Run(project=project, rows=64, iterations=2, start_rows=64), 4 / 3, owner=owner)
    assert (estimate.queue_ahead, estimate.start_in) == (2, pytest.approx(650.0, abs=1))

    settings.RUN_TURN_SECONDS = 10**9  # no turns: everyone waits for the long run
    assert estimates.queue_forecast()[mine.id][1] > 9000


def test_queued_runs_show_their_expected_start_on_the_project_and_run_pages(owner_client, project):
    Run.objects.create(project=project, status=Run.Status.RUNNING, iterations=10, iterations_done=5,
                       seconds_per_iteration=60.0, started=timezone.now())
    queued = Run.objects.create(project=project, estimated_seconds=100.0)

    def in_five_minutes():
        return timezone.localtime(timezone.now() + timedelta(seconds=300)).strftime("%H:%M")

    before = in_five_minutes()
    html = owner_client.get(reverse("project_detail", args=[project.id])).content.decode()
    run_html = owner_client.get(reverse("run_detail", args=[queued.id])).content.decode()
    expected = {before, in_five_minutes()}  # the clock may pass a minute's turn during the requests
    assert any(f"starts ~{time} UTC" in html for time in expected)  # the server's zone, said
    assert any(f"Expected to start around {time} UTC" in run_html for time in expected)


def test_a_paused_run_says_why_it_waits_and_when_it_goes_on(owner_client, project):
    notice = ("Paused at iteration 5 of 10 after 15 min 02 s of computing, so that another user's waiting run "
              "could start. It goes on from iteration 5 when a worker is free.")
    paused = Run.objects.create(project=project, iterations=10, iterations_done=5, estimated_seconds=100.0,
                                notice=notice)
    html = owner_client.get(reverse("run_detail", args=[paused.id])).content.decode()
    assert escape(notice) in html and "Expected to start around" in html
    assert "and to take about" not in html  # the launch's estimate was for all of it
    project_html = owner_client.get(reverse("project_detail", args=[project.id])).content.decode()
    assert "goes on ~" in project_html and "starts ~" not in project_html
    assert estimates.queue_forecast()[paused.id] == (0, pytest.approx(0.0))


def test_a_running_run_says_when_it_will_pause_for_another_users_run(owner_client, other, project, settings):
    """Their run waits; mine has about 500 s left at 10 s an iteration, 100 s into a turn of 300 s."""
    settings.RUN_TURN_SECONDS = 300
    now = timezone.now()
    mine = Run.objects.create(project=project, status=Run.Status.RUNNING, rows=64, start_rows=64, iterations=60,
                              iterations_done=10, seconds_per_iteration=10.0, started=now,
                              claimed=now - timedelta(seconds=100))
    url = reverse("run_detail", args=[mine.id])
    progress = reverse("run_progress", args=[mine.id])

    def said(html):
        return "Another person's run is waiting, and runs take turns" in html

    # Nobody else waits: no pause to announce; my own queued run does not pause mine either.
    Run.objects.create(project=project, estimated_seconds=50.0)
    assert not said(owner_client.get(url).content.decode())
    assert owner_client.get(progress).json()["turn_ends"] is None

    theirs = Run.objects.create(project=create_project(other), estimated_seconds=50.0)
    html = owner_client.get(url).content.decode()
    pause = timezone.localtime(now + timedelta(seconds=200))
    assert said(html) and "after 5 min 00 s of computing (around" in html
    assert any(f"(around {time:%H:%M} UTC)" in html for time in (pause, pause + timedelta(seconds=60)))
    assert "so it will take longer to finish than it would alone." in html
    assert owner_client.get(progress).json()["turn_ends"] is not None
    # The live update carries it too.
    assert said(owner_client.get(url, {"fragment": "live", "after": -1}).content.decode())

    # Its turn is over: it pauses when the iteration it computes ends.
    Run.objects.filter(id=mine.id).update(claimed=now - timedelta(seconds=400))
    html = owner_client.get(url).content.decode()
    assert said(html) and "this run has had its turn (5 min 00 s of computing), so it pauses when the iteration it is computing ends" in html

    # It finishes within its turn, or has one iteration left (it never pauses after its last): no pause.
    Run.objects.filter(id=mine.id).update(claimed=now - timedelta(seconds=10), iterations=20, iterations_done=18)
    assert not said(owner_client.get(url).content.decode())
    Run.objects.filter(id=mine.id).update(claimed=now - timedelta(seconds=400), iterations=60, iterations_done=59)
    assert not said(owner_client.get(url).content.decode())

    # Their run in its retry back-off is not waiting for a worker.
    Run.objects.filter(id=mine.id).update(iterations_done=10)
    Run.objects.filter(id=theirs.id).update(not_before=now + timedelta(seconds=600))
    assert not said(owner_client.get(url).content.decode())


def test_launching_records_the_estimate_on_the_run(owner_client, project):
    calibrate()
    response = owner_client.post(reverse("run_create", args=[project.id]), FORM)
    assert response.status_code == 302
    run = Run.objects.get()
    aspect = project.content_image.width / project.content_image.height
    assert run.estimated_seconds == pytest.approx(estimates.estimate_run(run, aspect).seconds)


def test_a_speed_meter_stores_one_sample_per_scale():
    class Report:
        def __init__(self, rows, evaluations, seconds):
            self.rows, self.width, self.precision = rows, rows, "float32"
            self.evaluations, self.seconds = evaluations, seconds

    meter = estimates.SpeedMeter("CPU", "auto")
    for report in [Report(10, 1, 5.0), Report(10, 21, 7.0), Report(10, 41, 9.0), Report(20, 61, 13.0),
                   Report(20, 81, 17.0)]:
        meter.report(report)
    meter.flush()
    samples = list(SpeedSample.objects.order_by("id").values_list("pixels", "evaluations", "seconds", "requested"))
    assert samples == [(100, 40, 4.0, "auto"), (400, 40, 8.0, "auto")]  # the first report is the baseline


def test_a_speed_meter_keeps_only_the_samples_the_fit_reads(db):
    class Report:
        def __init__(self, evaluations, seconds):
            self.rows, self.width, self.precision = 10, 10, "float32"
            self.evaluations, self.seconds = evaluations, seconds

    for _ in range(estimates.FIT_SAMPLES + 5):
        calibrate(precision="float32", requested="float32")
    calibrate(device="GPU:0", precision="float32", requested="float32")
    meter = estimates.SpeedMeter("CPU", "float32")
    meter.report(Report(1, 1.0))
    meter.report(Report(21, 3.0))
    meter.flush()

    cpu = SpeedSample.objects.filter(device="CPU")
    assert cpu.count() == estimates.FIT_SAMPLES
    assert cpu.first().pixels == 100  # the newest is kept
    assert SpeedSample.objects.filter(device="GPU:0").count() == 2


# -- scales on the pages ------------------------------------------------------------------------------


def make_iterations(run, sizes):
    for number, rows in sizes:
        Iteration.objects.create(run=run, number=number, image="runs/x.png", thumbnail="runs/x.jpg", loss=10.0 / (number + 1),
                                 content_loss=1, style_loss=1, tv_loss=1, evaluations=number * 20, seconds=number,
                                 rows=rows, width=round(rows * 4 / 3))


def test_coarse_iterations_say_their_size_and_the_chart_marks_each_scale(owner_client, project):
    run = Run.objects.create(project=project, rows=400, start_rows=200, iterations=30, save_every=10,
                             status=Run.Status.DONE)
    make_iterations(run, [(0, 200), (10, 283), (20, 400), (30, 400)])
    assert scale_starts(run, list(run.saved_iterations.all())) == [(200, 0), (283, 9), (400, 18)]
    chart = loss_chart(run, list(run.saved_iterations.all()))
    assert [mark["label"] for mark in chart["scale_marks"]] == ["283 rows", "400 rows"]
    html = owner_client.get(reverse("run_detail", args=[run.id])).content.decode()
    assert "at 267×200 px (coarse scale)" in html and "at 377×283 px (coarse scale)" in html
    assert "at 533×400 px" not in html
    assert html.count('class="chart-scale"') == 2
    other = Run.objects.create(project=project, rows=400, start_rows=400, iterations=30, status=Run.Status.DONE)
    make_iterations(other, [(0, 400), (10, 400)])
    compare = owner_client.get(reverse("compare"), {"runs": f"{run.id},{other.id}", "iteration": "10"}).content.decode()
    assert 'data-rows="283" data-full-rows="400"' in compare and 'data-rows="400" data-full-rows="400"' in compare
    assert "(377×283 px, coarse scale)" in compare


def test_a_one_size_run_has_no_scale_marks(project):
    run = Run.objects.create(project=project, rows=64, start_rows=200, iterations=4, save_every=2)
    make_iterations(run, [(0, 64), (2, 64), (4, 64)])
    assert loss_chart(run, list(run.saved_iterations.all()))["scale_marks"] == []


# -- precisions the workers' device only emulates ---------------------------------------------------


def test_the_launch_form_refuses_a_precision_the_workers_device_only_emulates(owner_client, project):
    from gallery.models import PrecisionCheck

    calibrate(device="CPU (tensorflow)", precision="float32")
    PrecisionCheck.objects.create(device="CPU (tensorflow)", precision="bfloat16",
                                  refusal="bfloat16 is only emulated on CPU (tensorflow): a test convolution with its "
                                          "gradient took 16.0× as long as in float32")
    PrecisionCheck.objects.create(device="CPU (tensorflow)", precision="float16", refusal="")
    url = reverse("run_create", args=[project.id])
    refused = owner_client.post(url, FORM | {"precision": "bfloat16"})
    assert refused.status_code == 200 and not Run.objects.exists()
    assert "bfloat16 is only emulated on CPU (tensorflow): a test convolution with its gradient took 16.0× as long " \
           "as in float32. Choose float32 or auto." in refused.content.decode()
    assert owner_client.post(url, FORM | {"precision": "float16"}).status_code == 302
    assert owner_client.post(url, FORM | {"precision": "auto"}).status_code == 302


def test_before_any_worker_has_checked_the_refusal_follows_this_machines_cpu(monkeypatch):
    monkeypatch.setattr(estimates, "cpu_has_bfloat16", lambda: False)
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    assert "only emulated on this machine's CPU" in estimates.precision_refusal("bfloat16", device="")
    assert estimates.precision_refusal("float32", device="") == ""
    monkeypatch.setattr(estimates, "cpu_has_bfloat16", lambda: True)
    assert estimates.precision_refusal("bfloat16", device="") == ""


def test_the_estimate_and_the_quota_size_the_output_as_the_engine_does(owner):
    from gallery.quotas import CHECKPOINT_BYTES_PER_PIXEL, CHECKPOINTS_HELD, estimated_run_bytes
    from gallery.views.runs import content_aspect
    from stylecore.images import output_size
    from tests.factories import make_image

    # 473 × 800 at 400 rows is 236.5 columns, a tie the engine rounds to even.
    project = create_project(owner, content=make_image(473, 800))
    run = Run(project=project, rows=400, start_rows=400, iterations=1, save_every=1, init="content")
    aspect = content_aspect(project)
    engine_rows, engine_cols = output_size((800, 473), 400)

    assert estimates.estimate_run(run, aspect).scales[-1][:2] == (engine_rows, engine_cols)
    per_pixel = 2 * 3 + CHECKPOINTS_HELD * CHECKPOINT_BYTES_PER_PIXEL  # iterations 0 and 1, and the checkpoints
    assert estimated_run_bytes(run, aspect) - project.stored_bytes == per_pixel * engine_rows * engine_cols


def test_time_left_counts_each_remaining_iteration_at_its_own_size(owner, project):
    """Coarse to fine: 10 iterations at 200, 283 and 400 rows (3, 3 and 4). The run has done its 3 cheap
    coarse ones; the 7 left are larger. Its "Time left" and the queue's forecast give the same time."""
    calibrate(per_megapixel=4.0, overhead=0.01, precision="float32", requested="float32")
    coarse_iteration = 20 * (0.01 + 4.0 * 200 * 267 / 1e6)  # the 4:3 content: 267 columns at 200 rows
    run = Run.objects.create(project=project, status=Run.Status.RUNNING, rows=400, start_rows=200, iterations=10,
                             iterations_done=3, precision="float32", device="CPU", init="content",
                             seconds_per_iteration=2 * coarse_iteration)  # twice as slow as the estimate
    queued = Run.objects.create(project=create_project(owner), estimated_seconds=10.0)

    def seconds(rows, cols, evaluations):
        return evaluations * (0.01 + 4.0 * rows * cols / 1e6)

    left = 2 * (3 * seconds(283, 377, 20) + 4 * seconds(400, 533, 20)
                + seconds(283, 377, estimates.EVALUATIONS_PER_SCALE) + seconds(400, 533, estimates.EVALUATIONS_PER_SCALE))
    assert left > 2.5 * 7 * run.seconds_per_iteration  # not the flat average of the coarse iterations
    assert run.eta_seconds == pytest.approx(left, rel=1e-6)
    assert estimates.queue_forecast()[queued.id] == (0, pytest.approx(left, rel=1e-6))


def test_time_left_counts_down_inside_an_iteration(owner, project):
    """On a CPU an iteration at 400 rows takes half a minute or more: "Time left" goes down with the
    evaluations done of the one being computed, not only when it ends (it stood still, then rose)."""
    calibrate(per_megapixel=4.0, overhead=0.01, precision="float32", requested="float32")
    run = Run.objects.create(project=project, status=Run.Status.RUNNING, rows=400, start_rows=400, iterations=10,
                             iterations_done=5, precision="float32", device="CPU", init="content",
                             seconds_per_iteration=30.0)
    assert run.eta_seconds == pytest.approx(5 * 30.0, rel=1e-6)
    run.next_iteration_evaluations = 10  # half of the sixth iteration done
    assert run.eta_seconds == pytest.approx(4.5 * 30.0, rel=1e-6)
    run.next_iteration_evaluations = 25  # more than 20 (an iteration's line search can take more): at most one
    assert run.eta_seconds == pytest.approx(4 * 30.0, rel=1e-6)
    run.status = Run.Status.QUEUED  # a paused run's partial iteration is not kept
    assert run.eta_seconds is None and estimates.remaining_seconds(run) == pytest.approx(5 * 30.0, rel=1e-6)


def test_the_estimate_raises_the_first_scale_as_the_engine_does(owner):
    from gallery.views.runs import content_aspect
    from stylecore.engine import scale_plan, smallest_rows
    from tests.factories import make_image

    # A 40×50 content: the engine starts at ceil(16 × 50 / 40) = 20 rows; the output's rounded width
    # at 128 rows (102) gave the estimate 21.
    project = create_project(owner, content=make_image(40, 50))
    run = Run(project=project, rows=128, start_rows=16, iterations=10, save_every=1, init="content")
    engine_sizes = [size for size, _last in scale_plan(128, smallest_rows((50, 40), 16), 10)]
    assert [rows for rows, _cols, _evaluations in estimates.run_scales(run, content_aspect(project))] == engine_sizes


# -- runs too large for the workers' memory ----------------------------------------------------------


def test_the_launch_form_refuses_a_run_too_large_for_the_workers_memory_and_says_what_fits(
        owner_client, project, settings):
    from gallery.models import DeviceMemory

    settings.RUN_MAX_ROWS = 2048
    calibrate(device="CPU (tensorflow)", precision="float32")
    DeviceMemory.objects.create(device="CPU (tensorflow)", limit=4 * 2 ** 30)
    url = reverse("run_create", args=[project.id])

    refused = owner_client.post(url, FORM | {"rows": "2048", "start_rows": "2048"})
    assert refused.status_code == 200 and not Run.objects.exists() and not OrmQ.objects.exists()
    page = refused.content.decode()
    assert "the workers&#x27; machine lets a run use 3.9 GB. Use at most" in page
    estimate = owner_client.get(reverse("run_estimate", args=[project.id]), FORM | {"rows": "2048"})
    assert "Too large to compute: A 2048×" in estimate.content.decode()

    fits = owner_client.get(reverse("run_estimate", args=[project.id]), FORM)
    assert "Too large" not in fits.content.decode()
    assert owner_client.post(url, FORM).status_code == 302


def test_a_gpu_worker_or_an_unknown_machine_refuses_nothing_for_memory(owner, monkeypatch):
    from gallery.models import DeviceMemory
    from gallery.views.runs import content_aspect

    project = create_project(owner)
    run = Run(project=project, rows=2048, start_rows=2048, iterations=1, save_every=1, init="content")
    aspect = content_aspect(project)
    DeviceMemory.objects.create(device="GPU:0 NVIDIA H200 (jax)", limit=None)
    assert estimates.memory_refusal(run, aspect, device="GPU:0 NVIDIA H200 (jax)") == ""
    # Before any worker read its memory: this machine's, where TensorFlow computes on its CPU.
    monkeypatch.setenv("STYLECORE_MEMORY_LIMIT", "2G")
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    assert "Use at most" in estimates.memory_refusal(run, aspect, device="")
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert estimates.memory_refusal(run, aspect, device="") == ""


def test_the_workers_backend_decides_the_figures_and_tensorflows_cpu_limit(owner, monkeypatch):
    from gallery.models import DeviceMemory
    from gallery.views.runs import content_aspect
    from stylecore.memory import settings_memory
    from tests.factories import make_image

    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")
    project = create_project(owner, content=make_image(256, 64, seed=3))  # 4:1, the widest allowed
    aspect = content_aspect(project)
    plenty = 2 ** 40
    DeviceMemory.objects.create(device="CPU (tensorflow)", limit=plenty)
    DeviceMemory.objects.create(device="CPU (jax)", limit=plenty)
    widest = Run(project=project, rows=2048, start_rows=2048, iterations=1, save_every=1, init="content")
    # 2048×8192 is 16.8 megapixels: TensorFlow's CPU convolutions crash above about 11, XLA's do not.
    refusal = estimates.memory_refusal(widest, aspect, device="CPU (tensorflow)")
    assert refusal.startswith("A 2048×8192-pixel picture would put 16.8 megapixels through the network")
    assert refusal.endswith("Use at most 1581 rows for this content image, or a less elongated one.")
    assert estimates.memory_refusal(widest, aspect, device="CPU (jax)") == ""
    # With memory for a 1024-row run on TensorFlow's figures, XLA's need more.
    run = Run(project=project, rows=1024, start_rows=1024, iterations=1, save_every=1, init="content")
    need = settings_memory(1024, 4096, run, backend="tensorflow")
    DeviceMemory.objects.filter(device__startswith="CPU").update(limit=int(need / 0.9) + 2 ** 27)
    assert estimates.memory_refusal(run, aspect, device="CPU (tensorflow)") == ""
    assert "Use at most" in estimates.memory_refusal(run, aspect, device="CPU (jax)")
