"""`python -m stylecore` end to end on tiny generated images."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stylecore.samples import landscape, swirls

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "stylecore", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def write_images(tmp_path):
    content, style = tmp_path / "content.jpg", tmp_path / "style.png"
    Image.fromarray(landscape(60, 80)).save(content)
    Image.fromarray(swirls(50, 50)).save(style)
    return content, style


@pytest.mark.slow
def test_it_writes_the_images_and_a_log_of_every_iteration(tmp_path):
    content, style = write_images(tmp_path)
    out = tmp_path / "out"
    done = run_cli(content, style, "--out", out, "--rows", 32, "--iterations", 3, "--save-every", 2,
                   "--init", "content")
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(out)) == [
        "base.png", "log.jsonl", "output_at_iteration_0.png", "output_at_iteration_2.png",
        "output_at_iteration_3.png", "style.png"]
    base = np.asarray(Image.open(out / "base.png"))
    assert base.shape == (32, 43, 3)
    assert np.asarray(Image.open(out / "style.png")).shape == (32, 43, 3)
    np.testing.assert_array_equal(np.asarray(Image.open(out / "output_at_iteration_0.png")), base)
    assert np.asarray(Image.open(out / "output_at_iteration_3.png")).shape == (32, 43, 3)
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [line["iteration"] for line in lines] == [0, 1, 2, 3]
    for line in lines:
        assert set(line) == {"iteration", "loss", "content_loss", "style_loss", "tv_loss",
                             "evaluations", "seconds", "rows", "width", "precision", "converged", "backend",
                             "device", "solver"}
        assert line["device"].endswith(f"({line['backend']})")
    assert lines[-1]["loss"] < lines[0]["loss"]
    assert "3/3" in done.stderr and "ETA" in done.stderr


@pytest.mark.slow
def test_ctrl_c_stops_at_the_next_evaluation_and_keeps_the_last_iteration(tmp_path):
    content, style = write_images(tmp_path)
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "stylecore", *map(str, (content, style, "--out", out, "--rows", 48, "--iterations", 500,
                                                      "--save-every", 100, "--init", "content"))],
        cwd=ROOT, stderr=subprocess.PIPE, text=True)
    log = out / "log.jsonl"
    deadline = time.monotonic() + 300
    while not (log.exists() and len(log.read_text().splitlines()) >= 3) and time.monotonic() < deadline:
        time.sleep(0.05)  # iterations 0, 1 and 2 reported
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    last = lines[-1]["iteration"]
    assert 2 <= last < 100  # stopped long before the 500th
    assert f"Stopped (Ctrl-C) at iteration {last} of 500" in stderr and "Traceback" not in stderr
    assert "Painting 64×48 pixels (0.00 megapixels): 500 iterations" in stderr
    assert sorted(os.listdir(out)) == sorted(["base.png", "style.png", "log.jsonl", "output_at_iteration_0.png",
                                              f"output_at_iteration_{last}.png"])
    assert np.asarray(Image.open(out / f"output_at_iteration_{last}.png")).shape == (48, 64, 3)


def test_it_exits_with_2_and_a_message_for_an_unreadable_image(tmp_path):
    content, _ = write_images(tmp_path)
    text = tmp_path / "style.png"
    text.write_text("I am not a picture")
    done = run_cli(content, text, "--out", tmp_path / "out", "--rows", 32, "--iterations", 1)
    assert done.returncode == 2
    assert "Style image" in done.stderr and "not a picture" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_it_exits_with_2_for_bad_arguments(tmp_path):
    content, style = write_images(tmp_path)
    bad_choice = run_cli(content, style, "--out", tmp_path / "out", "--style-fit", "stretch")
    assert bad_choice.returncode == 2 and "stretch" in bad_choice.stderr
    negative = run_cli(content, style, "--out", tmp_path / "out", "--style-weight", "-1")
    assert negative.returncode == 2 and "style_weight" in negative.stderr
    tiny = run_cli(content, style, "--out", tmp_path / "out", "--rows", "4")
    assert tiny.returncode == 2 and "at least 16" in tiny.stderr
    missing_init = run_cli(content, style, "--out", tmp_path / "out", "--init", "nowhere.png")
    assert missing_init.returncode == 2 and "--init" in missing_init.stderr
    # It said "init must be adain, content, noise or iteration": not that the file is missing, and
    # "iteration" is refused on the command line.
    message = missing_init.stderr.splitlines()[-1]
    assert "'nowhere.png' is no image file" in message and "iteration" not in message
    assert "Traceback" not in negative.stderr + tiny.stderr + missing_init.stderr


@pytest.mark.slow
def test_two_styles_blended_with_the_photos_colours_kept(tmp_path):
    content, style = write_images(tmp_path)
    second = tmp_path / "second.png"
    Image.fromarray(landscape(40, 40, seed=3)[:, ::-1]).save(second)
    out = tmp_path / "out"
    done = run_cli(content, style, second, "--out", out, "--rows", 32, "--iterations", 1, "--init", "content",
                   "--style-blend", "0.7,0.3", "--preserve-colors", "luminance", "--style-scale", "0.5",
                   "--content-layer", "block4_conv2", "--style-layers", "block1_conv1:1,block3_conv1:0.5")
    assert done.returncode == 0, done.stderr
    assert {"base.png", "style.png", "style_2.png", "output_at_iteration_1.png"} <= set(os.listdir(out))
    style_seen = np.asarray(Image.open(out / "style.png")).astype(int)
    assert style_seen.shape == (16, 22, 3)  # half the output's size
    assert (style_seen[..., 0] == style_seen[..., 1]).all()  # luminance only: the style is seen grey
    from stylecore.colour import to_ycbcr

    base = np.asarray(Image.open(out / "base.png"))
    result = np.asarray(Image.open(out / "output_at_iteration_1.png"))
    assert np.abs(to_ycbcr(result)[..., 1:] - to_ycbcr(base)[..., 1:]).mean() < 1.5


def test_a_blend_that_does_not_match_the_styles_is_a_usage_error(tmp_path):
    content, style = write_images(tmp_path)
    done = run_cli(content, style, style, "--out", tmp_path / "out", "--style-blend", "1")
    assert done.returncode == 2
    assert "style_blend has 1 weight for 2 style images" in done.stderr
    assert not (tmp_path / "out").exists()
    done = run_cli(content, style, "--out", tmp_path / "out", "--style-layers", "block9_conv1")
    assert done.returncode == 2 and "not a VGG19 layer" in done.stderr
