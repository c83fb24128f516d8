"""The benchmark set (tests/bench, ``python -m tests.bench``): its pictures are built offline, and a quick
run reports every field."""

import json
import pathlib
import socket

import numpy as np
import pytest

import stylecore
from tests.bench import benchset, cli


@pytest.fixture
def no_network(monkeypatch):
    """Any connection attempt fails the test: the set must not download anything."""
    def refuse(*args, **kwargs):
        raise AssertionError("the benchmark set tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_the_default_set_mixes_photos_procedural_pictures_and_a_blend():
    pairs = benchset.SETS["default"]
    assert len(pairs) >= 8
    contents = {pair.content.partition(":")[0] for pair in pairs}
    styles = {style for pair in pairs for style in pair.styles}
    assert contents == {"sample", "skimage"}
    assert {"sample:swirls", "sample:mosaic", "skimage:brick.png", "skimage:gravel.png"} <= styles
    assert any(pair.blend and len(pair.styles) == 2 for pair in pairs)
    assert len({pair.name for pair in pairs}) == len(pairs)


def test_every_picture_of_the_set_is_built_offline_at_one_size(no_network):
    for pair in [pair for pairs in benchset.SETS.values() for pair in pairs]:
        content, styles = benchset.pair_images(pair, 30)
        for image in [content] + styles:
            assert image.dtype == np.uint8
            assert image.shape == (30, 40, 3)
            assert image.std() > 5, f"{pair.name}: a flat picture"


def test_it_refuses_an_unknown_pair():
    with pytest.raises(SystemExit):
        cli.main(["--part", "time-to-quality", "--set", "default", "--pairs", "no-such-pair"])
    with pytest.raises(SystemExit):
        cli.main(["--part", "time-to-quality", "--set", "default", "--candidates", "no-such-start"])


def test_the_quick_mode_is_small_and_the_full_mode_keeps_its_meaning(monkeypatch):
    seen = []
    monkeypatch.setattr(cli, "run_set", lambda engine, args, weights: seen.append(args))
    cli.main(["--part", "time-to-quality", "--set", "default", "--quick"])
    cli.main(["--part", "time-to-quality", "--set", "default"])
    quick, full = seen
    assert (quick.rows, quick.reference_iterations) == (benchset.QUICK_ROWS, benchset.QUICK_REFERENCE_ITERATIONS)
    assert quick.candidates == list(benchset.QUICK_CANDIDATES) == ["photo", "adain-0.2", "adain-1"]
    assert (full.rows, full.reference_iterations, full.candidates) == (400, 50, None)
    assert benchset.select_candidates(full.candidates) == tuple(key for key, _ in benchset.CANDIDATES)
    assert quick.precision == full.precision == "auto"


def test_the_candidates_precision_goes_with_the_set_only(monkeypatch):
    seen = []
    monkeypatch.setattr(cli, "run_set", lambda engine, args, weights: seen.append(args))
    cli.main(["--part", "time-to-quality", "--set", "default", "--precision", "float32"])
    assert seen[0].precision == "float32"
    with pytest.raises(SystemExit):
        cli.main(["--part", "time-to-quality", "--precision", "float32"])
    with pytest.raises(SystemExit):
        cli.main(["--part", "time-to-quality", "--set", "default", "--precision", "float16"])


def test_nothing_in_the_engine_package_imports_the_benchmark():
    for path in pathlib.Path(stylecore.__file__).parent.glob("*.py"):
        text = path.read_text()
        assert "tests.bench" not in text.replace("python -m tests.bench", "") and "import bench" not in text, path


def test_medians_rank_a_pair_that_missed_l_star_worst():
    assert benchset._ranked_median([2.0, None, 4.0], higher_is_better=True) == 2.0
    assert benchset._ranked_median([2.0, None], higher_is_better=True) is None
    assert benchset._ranked_median([3, None, 5], higher_is_better=False) == 5


@pytest.mark.slow
def test_a_quick_run_of_one_pair_reports_every_field(tmp_path, capsys, no_network):
    report_path = tmp_path / "report.json"
    cli.main(["--part", "time-to-quality", "--set", "default", "--quick", "--pairs", "astronaut-swirls-brick",
              "--reference-iterations", "2", "--candidates", "photo,coarse-to-fine,per-pair",
              "--json", str(report_path), "--images", str(tmp_path / "images")])
    report = json.loads(report_path.read_text())
    assert (report["set"], report["quick"], report["rows"], report["cols"]) == ("default", True, 48, 64)
    assert report["reference_iterations"] == 2 and report["candidates"] == ["photo", "coarse-to-fine", "per-pair"]
    assert report["machine"]["cpu"]
    (pair,) = report["pairs"]
    assert pair["pair"] == "astronaut-swirls-brick" and pair["blend"] == [0.5, 0.5]
    reference = pair["reference"]
    assert reference["iteration"] == 2 and reference["loss"] > 0 and reference["wall_s"] > 0
    keys = [candidate["key"] for candidate in pair["candidates"]]
    assert keys == ["photo", "coarse-to-fine", "per-pair"]
    for candidate in pair["candidates"]:
        if candidate["reached"]:
            assert candidate["loss"] <= reference["loss"]
            assert 0 <= candidate["iteration"] <= 4
            assert candidate["wall_ratio"] == pytest.approx(reference["wall_s"] / candidate["wall_s"])
            assert candidate["evaluation_ratio"] == pytest.approx(reference["evaluations"] / candidate["evaluations"])
        else:
            assert candidate["iteration"] is None and candidate["wall_ratio"] is None
    per_pair = pair["candidates"][-1]
    assert set(per_pair["probe_losses"]) == {"photo", "adain-0.2", "adain-0.5", "adain-1"}
    assert per_pair["chosen"] == min(per_pair["probe_losses"], key=per_pair["probe_losses"].get)
    for key in keys:
        summary = report["summary"][key]
        assert summary["pairs"] == 1
        assert {"median_wall_ratio", "worst_wall_ratio", "median_iteration", "worst_iteration",
                "median_evaluation_ratio"} <= set(summary)
    out = capsys.readouterr().out
    assert "astronaut-swirls-brick" in out and "median" in out and "L* =" in out
    assert (tmp_path / "images" / "astronaut-swirls-brick-reference.png").is_file()


@pytest.mark.slow
def test_the_starts_part_reports_each_start_and_keeps_its_pictures(tmp_path, capsys):
    from PIL import Image

    from tests.factories import png_bytes

    content, style = tmp_path / "content.png", tmp_path / "style.png"
    content.write_bytes(png_bytes(benchset.picture("sample:landscape", 24)))
    style.write_bytes(png_bytes(benchset.picture("sample:swirls", 24)))
    cli.main([str(content), str(style), "--rows", "24", "--part", "starts", "--alphas", "0.2",
              "--start-iterations", "5", "--images", str(tmp_path / "images")])
    out = capsys.readouterr().out
    assert "the photo" in out and "AdaIN picture, strength 0.2" in out and "it 5" in out
    kept = sorted(path.name for path in (tmp_path / "images").iterdir())
    assert kept == ["starts-adain-0.2-it5.png", "starts-photo-it5.png"]
    assert Image.open(tmp_path / "images" / "starts-photo-it5.png").size == (32, 24)


def test_the_iterations_part_runs_over_a_set_only(monkeypatch):
    seen = []
    monkeypatch.setattr(cli, "run_iterations_set", lambda engine, args, weights: seen.append(args))
    cli.main(["--part", "iterations", "--set", "default", "--pairs", "rocket-gravel,chelsea-swirls"])
    assert (seen[0].rows, seen[0].reference_iterations) == (400, 50)
    assert [pair.name for pair in benchset.select_pairs("default", seen[0].pairs)] == ["rocket-gravel",
                                                                                     "chelsea-swirls"]
    assert seen[0].precision == "auto"  # a user's run's; float32 runs the first engine's reference
    cli.main(["--part", "iterations", "--set", "default", "--precision", "float32", "--lbfgs-memory", "10"])
    assert (seen[1].precision, seen[1].lbfgs_memory) == ("float32", 10)
    for argv in (["--part", "iterations"], ["--part", "iterations", "--set", "default", "--quick"],
                 ["--part", "iterations", "--set", "default", "--candidates", "photo"],
                 ["--part", "iterations", "--set", "default", "--pairs", "nope"],
                 ["--part", "time-to-quality", "--set", "default", "--lbfgs-memory", "10"],
                 ["--part", "iterations", "--set", "default", "--lbfgs-memory", "1"],
                 ["--part", "iterations", "--set", "default", "--precision", "bfloat16"]):
        with pytest.raises(SystemExit):
            cli.main(argv)


def test_the_first_iteration_within_a_fraction_of_the_last_loss():
    losses = {1: 3.0, 2: 1.5, 3: 1.2, 4: 1.04, 5: 1.0}
    assert [benchset._first_within(losses, 1.0, fraction) for fraction in (0.6, 0.25, 0.05, 0.0)] == [2, 3, 4, 5]


def test_the_first_iteration_from_which_more_iterations_gain_little():
    losses = {0: 10.0, 1: 5.0, 2: 4.0, 3: 3.9, 4: 3.85, 5: 3.84}
    assert benchset._first_slow(losses, 0.05, span=1) == 2  # 4.0 -> 3.9 gains 2.5 %
    assert benchset._first_slow(losses, 0.02, span=1) == 3  # 3.9 -> 3.85 gains 1.3 %
    assert benchset._first_slow(losses, 0.001, span=1) is None  # never that slow before the end
    assert benchset._first_slow(losses, 0.03, span=2) == 3  # 3.9 -> 3.84 gains 1.5 % (4.0 -> 3.85: 3.75 %)


def test_summarising_reports_refuses_a_report_of_another_part(tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"set": "default", "pairs": []}))
    with pytest.raises(SystemExit):
        cli.main(["--part", "iterations", "--summarise", str(path)])
    with pytest.raises(SystemExit):
        cli.main(["--part", "iterations", "--summarise", str(tmp_path / "missing.json")])
    with pytest.raises(SystemExit):
        cli.main(["--part", "time-to-quality", "--summarise", str(path)])


@pytest.mark.slow
def test_the_iterations_part_reports_each_pairs_curve_and_keeps_its_pictures(tmp_path, capsys):
    report_path = tmp_path / "report.json"
    cli.main(["--part", "iterations", "--set", "default", "--pairs", "astronaut-swirls-brick", "--rows", "24",
              "--reference-iterations", "6", "--lbfgs-memory", "10", "--precision", "float32",
              "--json", str(report_path), "--images", str(tmp_path / "images")])
    report = json.loads(report_path.read_text())
    assert (report["part"], report["rows"], report["iterations"]) == ("iterations", 24, 6)
    assert report["precision_asked"] == "float32" and report["pairs"][0]["precision"] == "float32"
    assert report["default_iterations"] == stylecore.DEFAULTS.iterations
    (pair,) = report["pairs"]
    assert pair["pair"] == "astronaut-swirls-brick" and pair["iterations"] == 6 and pair["lbfgs_memory"] == 10
    losses = {int(key): value for key, value in pair["losses"].items()}
    assert sorted(losses) == list(range(0, 7)) and losses[6] == pair["last_loss"]
    within = [pair["within"][key] for key in ("0.1", "0.05", "0.02")]
    assert within == sorted(within) and within[-1] <= 6
    for key, iteration in pair["within"].items():
        assert losses[iteration] <= (1 + float(key)) * pair["last_loss"]
        assert all(losses[i] > (1 + float(key)) * pair["last_loss"] for i in losses if i < iteration)
    assert report["summary"]["within_0.05"] == {"median": within[1], "worst": within[1],
                                               "worst_pair": "astronaut-swirls-brick"}
    assert sorted(int(key) for key in pair["change_to_last"]) == [5, 6] and pair["change_to_last"]["6"] == 0
    assert 0 < pair["change_to_last"]["5"] < 255
    assert set(pair["slows"]) == {"0.05", "0.02"}  # None: no iteration with five more before the run's end
    assert "refined_at" in pair  # None unless a low-precision run went on in float32
    out = capsys.readouterr().out
    assert "astronaut-swirls-brick" in out and "within  5 %" in out and "picture change" in out

    # The table again from the report, its picture change from the kept pictures where the report lacks it.
    change = report["pairs"][0].pop("change_to_last")
    report_path.write_text(json.dumps(report))
    merged = benchset.summarise_iteration_reports([str(report_path)], images=str(tmp_path / "images"))
    (again,) = merged["pairs"]
    assert again["within"] == pair["within"] and again["last_loss"] == pair["last_loss"]
    assert again["change_to_last"] == pytest.approx(change, abs=1e-9)
    assert merged["summary"]["change_at_default"]["median"] == 0  # 6 iterations: the default's last is the last
    assert sorted(path.name for path in (tmp_path / "images").iterdir()) == [
        "astronaut-swirls-brick-it5.png", "astronaut-swirls-brick-it6.png"]


def _iteration_report(memory, losses, rows=40, precision="bfloat16"):
    """A part (j) report of one pair with these losses per iteration (0, 1, 2, ...)."""
    return {"set": "default", "part": "iterations", "rows": rows, "cols": rows * 4 // 3, "iterations": len(losses) - 1,
            "lbfgs_memory_asked": memory, "default_iterations": stylecore.DEFAULTS.iterations,
            "pairs": [{"pair": "chelsea-swirls", "precision": precision, "refined_at": None,
                       "lbfgs_memory": memory or 30, "losses": {str(i): loss for i, loss in enumerate(losses)},
                       "evaluations": {str(i): 1 + 20 * i for i in range(len(losses))}}]}


def test_the_time_ratio_counts_bfloat16_evaluations_up_to_the_switch_to_float32(tmp_path, capsys):
    # The reference: float32, 1001 evaluations to its loss at 50 (50). The default: bfloat16 that converged 15
    # evaluations after its 33rd iteration (661 + 15), then float32 from its best image: the next iteration is
    # due 20 evaluations after that image's float32 evaluation, so the step to 34 is 36, not 20.
    reference = _iteration_report(10, [100.0 - i for i in range(51)], precision="float32")
    losses = [100.0 - 1.5 * i for i in range(61)]  # reaches 50 at iteration 33.3
    default = _iteration_report(None, losses)
    counts = {i: 1 + 20 * i + (15 + 1 if i > 33 else 0) for i in range(61)}
    default["pairs"][0]["evaluations"] = {str(i): count for i, count in counts.items()}
    del default["pairs"][0]["refined_at"]  # a report written before the field: inferred from the counts
    first, second = tmp_path / "reference.json", tmp_path / "default.json"
    first.write_text(json.dumps(reference))
    second.write_text(json.dumps(default))
    (pair,) = benchset.compare_iteration_reports([str(first)], [str(second)], at=50, speedup=2.0)["pairs"]
    assert pair["reached_at"] == pytest.approx(100 / 3)
    reached = counts[33] + (counts[34] - counts[33]) / 3  # interpolated evaluations at 33.3: all in bfloat16
    assert pair["evaluations"] == pytest.approx(reached) and reached < 676
    assert pair["time_ratio"] == pytest.approx(1001 / (reached / 2))
    assert "float32 after 33 (from its evaluation counts)" in capsys.readouterr().out

    # Reached after the switch: its 676 bfloat16 evaluations at half the price, the rest in full.
    reference["pairs"][0]["losses"]["50"] = losses[40]
    first.write_text(json.dumps(reference))
    (pair,) = benchset.compare_iteration_reports([str(first)], [str(second)], at=50, speedup=2.0)["pairs"]
    assert pair["reached_at"] == pytest.approx(40) and pair["evaluations"] == counts[40]
    assert pair["time_ratio"] == pytest.approx(1001 / (676 / 2 + counts[40] - 676))
    # A recorded switch is taken as recorded; without --bfloat16-speedup there is no time ratio.
    default["pairs"][0]["refined_at"] = 35
    second.write_text(json.dumps(default))
    capsys.readouterr()
    (pair,) = benchset.compare_iteration_reports([str(first)], [str(second)], at=50)["pairs"]
    assert pair["time_ratio"] is None and "from its evaluation counts" not in capsys.readouterr().out
    assert benchset._low_precision_evaluations(default["pairs"][0]) == counts[36] - 21
    with pytest.raises(SystemExit):
        cli.main(["--part", "iterations", "--summarise", str(first), "--bfloat16-speedup", "1.85"])
    with pytest.raises(SystemExit):
        cli.main(["--part", "iterations", "--summarise", str(first), "--against", str(second),
                  "--bfloat16-speedup", "0"])


def test_a_comparison_can_take_one_pair_of_a_report_that_ran_several(tmp_path, capsys):
    # The reference ran two pairs in one report; a later run of the default covers only one of them.
    reference = _iteration_report(10, [100.0 - i for i in range(51)], precision="float32")
    other = dict(reference["pairs"][0], pair="landscape-gravel")
    reference["pairs"].append(other)
    reference["machine"] = {"cpu": "a CPU", "bfloat16_flags": []}
    default = _iteration_report(None, [99.0 - i for i in range(51)], precision="float32")
    first, second = tmp_path / "reference.json", tmp_path / "default.json"
    first.write_text(json.dumps(reference))
    second.write_text(json.dumps(default))
    with pytest.raises(ValueError, match="no run to compare with for landscape-gravel"):
        benchset.compare_iteration_reports([str(first)], [str(second)], at=50)
    (pair,) = benchset.compare_iteration_reports([str(first)], [str(second)], at=50, only=["chelsea-swirls"])["pairs"]
    assert pair["pair"] == "chelsea-swirls" and pair["reached_at"] == pytest.approx(49)
    with pytest.raises(ValueError, match="no run of rocket-gravel"):
        benchset.compare_iteration_reports([str(first)], [str(second)], at=50, only=["rocket-gravel"])
    capsys.readouterr()
    merged = benchset.summarise_iteration_reports([str(first)], only=["landscape-gravel"])
    assert [pair["pair"] for pair in merged["pairs"]] == ["landscape-gravel"]
    # The command line: --pairs with --summarise.
    assert cli.main(["--part", "iterations", "--summarise", str(first), "--against", str(second),
                     "--pairs", "chelsea-swirls", "--at-iteration", "50"]) == 0
    assert "1 pairs at 40x53" in capsys.readouterr().out


def test_two_sets_of_runs_are_compared_iteration_by_iteration(tmp_path, capsys):
    at = stylecore.DEFAULTS.iterations
    # The engine's memory: the loss falls by 1 a step from 100; memory 10: 2 above it at every iteration.
    engine = [100.0 - i for i in range(at + 11)]
    shorter = [loss + 2.0 for loss in engine[:at + 1]]
    first, second = tmp_path / "memory-10.json", tmp_path / "engine.json"
    first.write_text(json.dumps(_iteration_report(10, shorter)))
    second.write_text(json.dumps(_iteration_report(None, engine)))
    comparison = benchset.compare_iteration_reports([str(first)], [str(second)])
    (pair,) = comparison["pairs"]
    assert comparison["at"] == at
    assert pair["differences"][5] == pytest.approx(97.0 / 95.0 - 1)
    assert pair["reached_at"] == pytest.approx(at - 2)  # the engine's run was there two iterations sooner
    assert max(pair["differences"]) == at  # marks no later than the first runs' last iteration
    out = capsys.readouterr().out
    assert "L-BFGS memory 10" in out and "L-BFGS memory 30 (the engine's)" in out and f"{at - 2:.1f}" in out
    # 20 evaluations an iteration from 1: the first's 401 at its 20th against the second's 361 at its 18th.
    assert pair["evaluations"] == pytest.approx(1 + 20 * (at - 2))
    assert pair["evaluation_ratio"] == pytest.approx((1 + 20 * at) / (1 + 20 * (at - 2)))

    # At another iteration (e.g. the reference's last, its L*): the first's 5th is the second's 3rd.
    comparison = benchset.compare_iteration_reports([str(first)], [str(second)], at=5)
    assert comparison["at"] == 5 and comparison["pairs"][0]["reached_at"] == pytest.approx(3)
    with pytest.raises(ValueError, match="iterations 1 to"):
        benchset.compare_iteration_reports([str(first)], [str(second)], at=at + 1)
    # A loss the second never reaches, e.g. a reference's lower L*: "no", and no ratio.
    second_shorter = tmp_path / "engine-short.json"
    second_shorter.write_text(json.dumps(_iteration_report(None, [loss + 5.0 for loss in engine[:at + 1]])))
    (missed,) = benchset.compare_iteration_reports([str(first)], [str(second_shorter)], at=at)["pairs"]
    assert missed["reached_at"] is None and missed["evaluation_ratio"] is None

    # Between two iterations, the iteration is interpolated; a loss the other never reaches says so.
    assert benchset._iteration_reaching({0: 10.0, 1: 6.0, 2: 4.0}, 5.0) == pytest.approx(1.5)
    assert benchset._iteration_reaching({0: 10.0, 1: 6.0}, 5.0) is None
    # Runs of another size, or a pair the other reports lack, are refused with the reason; so is --against alone.
    other_size = tmp_path / "other-size.json"
    other_size.write_text(json.dumps(_iteration_report(None, engine, rows=80)))
    with pytest.raises(ValueError, match="different sizes"):
        benchset.compare_iteration_reports([str(first)], [str(other_size)])
    other_pair = _iteration_report(None, engine)
    other_pair["pairs"][0]["pair"] = "coffee-brick"
    second.write_text(json.dumps(other_pair))
    with pytest.raises(ValueError, match="no run to compare with for chelsea-swirls"):
        benchset.compare_iteration_reports([str(first)], [str(second)])
    with pytest.raises(SystemExit):
        cli.main(["--part", "iterations", "--summarise", str(first), "--against", str(second)])
    with pytest.raises(SystemExit):
        cli.main(["--part", "iterations", "--set", "default", "--against", str(second)])
    with pytest.raises(SystemExit):
        cli.main(["--part", "iterations", "--summarise", str(first), "--at-iteration", "5"])


def test_the_memory_part_takes_sizes_with_an_optional_style_scale(capsys):
    from tests.bench.memory import parse_sizes

    assert parse_sizes("64x48, 600x800@4, 600x800/0.6") == [(64, 48, 1.0, None), (600, 800, 4.0, None),
                                                            (600, 800, 1.0, 0.6)]
    with pytest.raises(ValueError, match="above 0 and at most 1"):
        parse_sizes("64x48/2")
    with pytest.raises(SystemExit):
        cli.main(["--part", "memory", "--sizes", "64by48"])
    assert "--sizes" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a fraction of each side is a preview's
        cli.main(["--part", "memory", "--sizes", "64x48/0.5"])
    for option in (["--sizes", "64x48"], ["--preview"], ["--convolutions", "64x48"]):
        with pytest.raises(SystemExit):
            cli.main(["--part", "timing", *option])


@pytest.mark.slow
def test_the_memory_part_reports_each_runs_peak_against_the_model_and_fits_them(capsys):
    assert cli.main(["--part", "memory", "--sizes", "32x32,48x64,32x32@2"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(("32x32", "48x64"))]
    assert [row[:2] for row in rows] == [["32x32", "32x32"], ["48x64", "48x64"], ["32x32", "64x64"]]
    for row in rows:
        peak, model, ratio = map(float, row[4:7])
        assert 0.3 < peak < 8 and ratio == pytest.approx(peak / model, abs=0.03)  # each printed to 2 places
    assert "least squares of the peaks less L-BFGS's steps:" in out


@pytest.mark.slow
def test_the_memory_part_measures_previews_at_a_given_fraction_and_tries_convolutions(capsys):
    assert cli.main(["--part", "memory", "--preview", "--sizes", "32x32,96x128/0.5,48x64@2/1,64x64/1"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(("32x32", "96x128", "48x64", "64x64"))]
    assert [row[:3] for row in rows] == [["32x32", "32x32", "32x32"], ["96x128", "48x64", "48x64"],
                                         ["48x64", "48x64", "96x128"], ["64x64", "64x64", "64x64"]]
    for row in rows:
        peak, model, ratio = map(float, row[3:6])
        assert 0.3 < peak < 8 and ratio == pytest.approx(peak / model, abs=0.03)
    assert "least squares of the peaks:" in out
    assert cli.main(["--part", "memory", "--convolutions", "32x48"]) == 0
    assert "32x48     0.00 megapixels: computes (" in capsys.readouterr().out
