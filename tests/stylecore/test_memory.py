"""A run too large for the machine's memory is refused before any work, with the size that fits."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import stylecore
from stylecore import memory
from stylecore.images import output_size
from stylecore.schema import RunSettings

ROOT = Path(__file__).resolve().parents[2]
GB = 10 ** 9


@pytest.mark.parametrize("text, expected", [
    ("8G", 8 * 2 ** 30), ("512M", 512 * 2 ** 20), ("1.5GiB", int(1.5 * 2 ** 30)), ("2gb", 2 * 2 ** 30),
    ("123456", 123456), (" 4 G ".replace(" ", ""), 4 * 2 ** 30),
])
def test_amounts_of_memory_are_read_as_people_write_them(text, expected):
    assert memory.parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "lots", "-1G", "0", "nanG", "G"])
def test_a_limit_that_is_no_amount_is_refused_clearly(text):
    with pytest.raises(stylecore.SettingsError, match="amount of memory such as 8G"):
        memory.parse_bytes(text)


def test_the_configured_limit_caps_what_the_machine_has(monkeypatch):
    monkeypatch.delenv(memory.LIMIT_VARIABLE, raising=False)
    physical = memory.machine_memory()
    assert physical > GB
    monkeypatch.setenv(memory.LIMIT_VARIABLE, "1G")
    assert memory.machine_memory() == 2 ** 30
    monkeypatch.setenv(memory.LIMIT_VARIABLE, "100000T")
    assert memory.machine_memory() == physical


def test_the_need_grows_with_the_output_and_the_style_and_lbfgs_steps():
    small, large = memory.run_memory(400, 533, backend="tensorflow"), memory.run_memory(800, 1066, backend="tensorflow")
    base = memory.figures("tensorflow").base
    assert base < small < large
    assert large - base == pytest.approx(4 * (small - base), rel=1e-3)
    assert memory.run_memory(400, 533, style_pixels=10 ** 6) > small
    assert memory.run_memory(400, 533, lbfgs_steps=30) - small == memory.lbfgs_history_bytes(400 * 533, 30)


def test_a_run_that_fits_passes():
    memory.check_run_fits((300, 400, 3), RunSettings(rows=400), available=100 * GB)


def test_adam_keeps_less_than_lbfgs_and_a_larger_style_needs_more():
    lbfgs = memory.settings_memory(400, 533, RunSettings())
    assert memory.settings_memory(400, 533, RunSettings(optimizer="adam")) < lbfgs
    assert memory.settings_memory(400, 533, RunSettings(style_scale=2.0)) > lbfgs
    assert memory.settings_memory(400, 533, RunSettings(), lbfgs_steps=10) < lbfgs


def test_a_run_too_large_is_refused_with_the_largest_rows_that_fit():
    available, shape, wanted = 8 * GB, (300, 400, 3), RunSettings(rows=2048)
    with pytest.raises(stylecore.SettingsError) as refused:
        memory.check_run_fits(shape, wanted, available=available, where="the workers' machine")
    message = str(refused.value)
    assert re.search(r"^A 2048×2731-pixel picture needs about \d+ GB of memory", message)
    assert "the workers' machine lets a run use 7.2 GB" in message
    largest = int(re.search(r"Use at most (\d+) rows", message).group(1))
    usable = available * memory.USABLE_SHARE

    def need(rows):
        return memory.settings_memory(*output_size(shape, rows), wanted)

    assert need(largest) <= usable < need(largest + 1)
    assert message.endswith(f"Use at most {largest} rows for this content image.")  # 4:3 is not elongated
    memory.check_run_fits(shape, RunSettings(rows=largest), available=available)


def test_a_tall_narrow_picture_is_offered_a_size_wide_enough_for_vgg19():
    # 400 times taller than wide: below 6,400 rows the output is too narrow for VGG19.
    with pytest.raises(stylecore.SettingsError) as refused:
        memory.check_run_fits((4000, 10, 3), RunSettings(rows=100000), available=8 * GB)
    largest = int(re.search(r"Use at most (\d+) rows", str(refused.value)).group(1))
    assert largest > 6400
    memory.check_run_fits((4000, 10, 3), RunSettings(rows=largest), available=8 * GB)


def test_a_picture_too_elongated_for_any_size_says_to_crop_it():
    with pytest.raises(stylecore.SettingsError, match="No size of this content image fits: crop it"):
        memory.check_run_fits((2, 200000, 3), RunSettings(rows=400), available=2 * GB)


def test_a_machine_too_small_for_any_run_says_so():
    with pytest.raises(stylecore.SettingsError, match="Even the smallest run needs about 1.0 GB: compute on a machine"):
        memory.check_run_fits((300, 400, 3), RunSettings(rows=400), available=GB // 2)


def test_where_the_machine_memory_is_unknown_only_the_networks_limit_is_checked(monkeypatch):
    monkeypatch.setattr(memory, "machine_memory", lambda: None)
    memory.check_run_fits((300, 400, 3), RunSettings(rows=2048), backend="tensorflow")  # 5.6 megapixels, 28 GB
    with pytest.raises(stylecore.SettingsError, match="megapixels through the network; on a CPU the engine takes"):
        memory.check_run_fits((2, 3000, 3), RunSettings(rows=2048), backend="tensorflow")
    monkeypatch.setattr(memory, "machine_memory", lambda: GB)
    with pytest.raises(stylecore.SettingsError, match="needs about 28 GB of memory"):
        memory.check_run_fits((300, 400, 3), RunSettings(rows=2048), backend="tensorflow")


def test_the_engine_refuses_before_computing(monkeypatch):
    monkeypatch.setenv(memory.LIMIT_VARIABLE, "2G")
    engine = stylecore.Engine()
    content = np.zeros((300, 400, 3), np.uint8)
    with pytest.raises(stylecore.SettingsError, match=r"needs about \d+ GB of memory .* Use at most \d+ rows"):
        engine.stylize(content, content, RunSettings(rows=1600, iterations=1))
    assert not engine._functions  # no network was built


@pytest.mark.slow
def test_the_command_line_says_so_and_exits_with_2(tmp_path):
    content, style = tmp_path / "strip.png", tmp_path / "style.png"
    Image.new("RGB", (3000, 2), "blue").save(content)
    Image.new("RGB", (64, 64), "red").save(style)
    done = subprocess.run([sys.executable, "-m", "stylecore", str(content), str(style), "--out", str(tmp_path / "out")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "A 400×600000-pixel picture would put 240.0 megapixels through the network" in done.stderr
    assert "or a less elongated one" in done.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_preview_needs_less_than_a_run_and_less_again_at_a_smaller_fraction():
    run = memory.settings_memory(400, 533, RunSettings(init="content"))
    whole, smaller = memory.preview_memory(400, 533), memory.preview_memory(400, 533, fraction=0.6)
    assert memory.figures().preview_base < smaller < whole < run
    assert memory.preview_memory(400, 533, style_scale=2.0) > whole
    assert memory.preview_size(400, 533, 0.6) == (240, 320)


def test_a_preview_too_large_is_refused_with_the_rows_that_fit_at_the_engines_fraction():
    shape, available = (2, 3000, 3), 8 * GB
    with pytest.raises(stylecore.SettingsError) as refused:  # XLA: memory alone bounds it
        memory.check_preview_fits(shape, 400, available=available, backend="jax")
    message = str(refused.value)
    assert message.startswith("A 400×600000-pixel preview needs about ")
    assert "this machine lets a preview use 7.2 GB" in message and "or a less elongated one" in message
    largest = int(re.search(r"Use at most (\d+) rows", message).group(1))
    memory.check_preview_fits(shape, largest, available=available, backend="jax")
    # Computed at 0.6 of each side it needs less: more rows fit.
    with pytest.raises(stylecore.SettingsError) as refused:
        memory.check_preview_fits(shape, 400, fraction=lambda rows, cols: 0.6, available=available, backend="jax")
    assert int(re.search(r"Use at most (\d+) rows", str(refused.value)).group(1)) > largest
    with pytest.raises(stylecore.SettingsError, match="Even the smallest preview needs about 1.1 GB"):
        memory.check_preview_fits((300, 400, 3), 400, available=GB // 2, backend="tensorflow")


def test_the_engine_refuses_a_preview_too_large_before_computing(monkeypatch):
    monkeypatch.setenv(memory.LIMIT_VARIABLE, "2G")
    engine = stylecore.Engine()
    strip, style = np.zeros((2, 3000, 3), np.uint8), np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(stylecore.SettingsError, match=r"^A 400×600000-pixel preview would put [\d.]+ megapixels through"):
        engine.preview(strip, style, rows=400)
    assert not engine._adain  # no network was built


def test_xla_on_a_cpu_needs_more_per_pixel_than_tensorflow_and_is_checked_with_its_own_figures():
    tensorflow, jax = memory.figures("tensorflow"), memory.figures("jax")
    assert jax.per_output_pixel > tensorflow.per_output_pixel and jax.per_style_pixel > tensorflow.per_style_pixel
    shape, settings = (300, 400, 3), RunSettings(rows=1024)
    need = memory.settings_memory(*output_size(shape, 1024), settings, backend="tensorflow")
    memory.check_run_fits(shape, settings, available=need / memory.USABLE_SHARE + GB // 10, backend="tensorflow")
    with pytest.raises(stylecore.SettingsError, match="Use at most"):
        memory.check_run_fits(shape, settings, available=need / memory.USABLE_SHARE + GB // 10, backend="jax")


def test_a_picture_too_large_for_tensorflows_cpu_convolutions_is_refused_whatever_the_memory():
    # 4:1 at 2048 rows is 16.8 megapixels: TensorFlow's CPU convolutions crash above about 11.
    shape, settings, plenty = (512, 2048, 3), RunSettings(rows=2048), 10 ** 13
    with pytest.raises(stylecore.SettingsError) as refused:
        memory.check_run_fits(shape, settings, available=plenty, backend="tensorflow")
    message = str(refused.value)
    assert message.startswith("A 2048×8192-pixel picture would put 16.8 megapixels through the network; on a CPU the "
                              "engine takes at most 10 (TensorFlow's convolutions crash above about 11).")
    largest = int(re.search(r"Use at most (\d+) rows for this content image, or a less elongated one\.$", message).group(1))
    rows, cols = output_size(shape, largest)
    assert rows * cols <= stylecore.images.MAX_NETWORK_PIXELS < largest * 4 + (largest + 1) * (largest + 1) * 4
    memory.check_run_fits(shape, RunSettings(rows=largest), available=plenty, backend="tensorflow")
    memory.check_run_fits(shape, settings, available=plenty, backend="jax")  # XLA's have no such limit
    # The same for a preview computed at full size; at 0.6 of each side it fits.
    with pytest.raises(stylecore.SettingsError, match="2048×8192-pixel preview would put 16.8 megapixels"):
        memory.check_preview_fits(shape, 2048, available=plenty, backend="tensorflow")
    memory.check_preview_fits(shape, 2048, fraction=lambda rows, cols: 0.6, available=plenty, backend="tensorflow")


def test_a_style_image_is_never_seen_larger_than_the_network_takes():
    from stylecore.images import MAX_NETWORK_PIXELS, style_size

    rows, cols = style_size(2048, 2731, 4.0)
    assert rows * cols <= MAX_NETWORK_PIXELS
