"""The run settings' schema (stylecore.schema): defaults, validation, words, labels and CLI flags,
and the pooling setting added through it. Only the last test runs the engine."""
import numpy as np
import pytest

import stylecore
from stylecore.cli import build_parser
from stylecore.schema import DEFAULTS, SETTING, SETTINGS, RunSettings, help_text


def test_the_defaults_are_the_schemas_and_valid():
    assert DEFAULTS == RunSettings() == RunSettings.from_mapping({})
    assert DEFAULTS.as_dict() == {setting.name: setting.default for setting in SETTINGS}
    assert (DEFAULTS.rows, DEFAULTS.adain_alpha, DEFAULTS.pooling) == (400, 0.2, "max")
    assert stylecore.DEFAULTS is DEFAULTS


@pytest.mark.parametrize("values, message", [
    ({"rows": 8}, "rows must be an integer of at least 16, not 8."),
    ({"iterations": 2.5}, "iterations must be an integer of at least 1, not 2.5."),
    ({"style_weight": -1.0}, "style_weight must be a number from 0 to 1e+12, not -1.0."),
    ({"tv_weight": float("nan")}, "tv_weight must be a number from 0 to 1e+12, not nan."),
    ({"adain_alpha": True}, "adain_alpha must be a number from 0 to 1, not True."),
    ({"optimizer": "sgd"}, "optimizer must be lbfgs or adam, not 'sgd'."),
    ({"preserve_colors": "sepia"}, "preserve_colors must be none, luminance or histogram, not 'sepia'."),
    ({"pooling": "avg"}, "pooling must be max or average, not 'avg'."),
    ({"style_layers": "block9_conv1"}, "style_layers: 'block9_conv1' is not a VGG19 layer"),
    ({"colour": "red"}, "Unknown setting: colour."),
    ({"content_weight": 0, "style_weight": 0, "tv_weight": 0}, "At least one of content_weight"),
])
def test_a_bad_value_is_refused_with_a_message_that_names_it(values, message):
    with pytest.raises(stylecore.SettingsError) as caught:
        RunSettings.from_mapping(values)
    assert str(caught.value).startswith(message)


def test_values_are_made_canonical():
    settings = RunSettings(rows=np.int64(64), style_weight=1, style_layers=" block3_conv1:0.5 , block1_conv1")
    assert type(settings.rows) is int and type(settings.style_weight) is float
    assert settings.style_layers == "block1_conv1:1, block3_conv1:0.5"
    assert settings.replace(rows=128).rows == 128
    with pytest.raises(stylecore.SettingsError):
        settings.replace(rows=0)


def test_the_label_is_the_notebooks_folder_name_plus_what_differs():
    assert DEFAULTS.label == "0.0001_0.3_1"
    changed = RunSettings(rows=256, optimizer="adam", init="iteration", style_scale=0.5, pooling="average",
                          precision="float32", adain_alpha=0.5)
    assert changed.label == "0.0001_0.3_1_256px_adam_cont_scale0.5_averagepool"


def test_values_are_shown_in_words_and_units():
    assert SETTING["rows"].text(400) == "400 px"
    assert SETTING["tv_weight"].text(1e-6) == "1e-06"
    assert SETTING["pooling"].text("average") == "Average (Gatys et al.)"
    assert SETTING["save_every"].text(1) == "every iteration"
    # One text for start rows on every page: the size, or "one size" when the run never grows.
    assert SETTING["start_rows"].text(200, RunSettings(rows=400)) == "200 px"
    assert SETTING["start_rows"].text(400, RunSettings(rows=400)) == "one size"
    assert SETTING["seed"].text(None) == "–"


def test_help_texts_say_the_schemas_own_default_and_bounds():
    assert "The default 0.2 " in help_text(SETTING["adain_alpha"])
    assert help_text(SETTING["style_scale"]).startswith("0.25–4:")


def test_the_sweepable_settings_and_their_spacing():
    sweepable = [setting.name for setting in SETTINGS if setting.sweep]
    assert {"content_weight", "rows", "optimizer", "style_layers", "pooling"} <= set(sweepable)
    assert [setting.name for setting in SETTINGS if setting.sweep == "log"] == [
        "content_weight", "style_weight", "tv_weight"]
    assert not {"iterations", "save_every", "seed"} & set(sweepable)


def test_the_cli_has_one_flag_per_setting_and_checks_it_with_the_schema(capsys):
    parser = build_parser()
    flags = {option for action in parser._actions for option in action.option_strings}
    assert {setting.flag for setting in SETTINGS} <= flags
    args = parser.parse_args(["c.png", "s.png", "--out", "o", "--pooling", "average", "--rows", "64"])
    assert (args.pooling, args.rows, args.tv_weight) == ("average", 64, DEFAULTS.tv_weight)
    with pytest.raises(SystemExit):
        parser.parse_args(["c.png", "s.png", "--out", "o", "--pooling", "mean"])
    assert "pooling must be max or average, not 'mean'" in capsys.readouterr().err


def test_average_pooling_gives_another_finite_picture(engine, content_image, style_image):
    pictures = {}
    for pooling in ("max", "average"):
        settings = RunSettings(rows=32, iterations=1, init="content", precision="float32", pooling=pooling)
        result = engine.stylize(content_image, style_image, settings)
        assert np.isfinite(result.loss) and np.isfinite(result.pixels).all()
        pictures[pooling] = result.pixels
    assert np.abs(pictures["max"] - pictures["average"]).mean() > 0.1


def test_the_choices_are_the_engines_own_vocabularies():
    from stylecore.images import STYLE_FITS
    from stylecore.settings import CONTENT_LAYERS, PRECISIONS, PRESERVE_COLORS

    assert SETTING["style_fit"].choice_values == STYLE_FITS
    assert SETTING["precision"].choice_values == PRECISIONS
    assert SETTING["preserve_colors"].choice_values == PRESERVE_COLORS
    assert SETTING["content_layer"].choice_values == CONTENT_LAYERS


def test_which_iterations_are_saved_is_one_rule_and_its_count_agrees():
    from stylecore.schema import saved_iteration_count, saves_iteration

    assert [n for n in range(8) if saves_iteration(n, 7, 3)] == [0, 3, 6, 7]
    assert [n for n in range(3) if saves_iteration(n, 2, 10)] == [0, 2]
    for iterations in range(1, 40):
        for save_every in range(1, 45):
            kept = sum(saves_iteration(n, iterations, save_every) for n in range(iterations + 1))
            assert saved_iteration_count(iterations, save_every) == kept, (iterations, save_every)


def test_what_a_run_computed_in_names_each_precision_once_in_order():
    from stylecore.settings import PRECISIONS_TEXT_LENGTH, precisions_text

    assert precisions_text("", "bfloat16") == "bfloat16"
    assert precisions_text("bfloat16", "bfloat16") == "bfloat16"
    assert precisions_text("bfloat16", "float32") == "bfloat16, then float32"
    # a resumed run starts in bfloat16 again: nothing new to say
    assert precisions_text("bfloat16, then float32", "bfloat16") == "bfloat16, then float32"
    assert len(precisions_text("float16, then float32", "bfloat16")) <= PRECISIONS_TEXT_LENGTH
