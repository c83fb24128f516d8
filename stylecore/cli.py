"""Command line: ``python -m stylecore CONTENT STYLE [STYLE …] --out DIR``.

Writes DIR/base.png and DIR/style.png (the images as the engine sees them; with several style
images also DIR/style_2.png, …),
DIR/output_at_iteration_N.png for N = 0, every multiple of --save-every and the
last iteration, and DIR/log.jsonl with one JSON object per iteration. All of
stylecore's file writing (the weights cache aside) happens here.

Ctrl-C stops the run after the evaluation it is computing (at a large size on a CPU an iteration
takes minutes), saves the last finished iteration's image and exits with 130; a second Ctrl-C
ends the process at once.
"""

import argparse
import json
import os
import signal
import sys
import time

from PIL import Image

from . import Engine, engine_inputs
from .engine import EVALUATIONS_PER_ITERATION
from .errors import DivergedError, ImageError, SettingsError, WeightsError
from .schema import SETTING, SETTINGS, RunSettings, help_text, saves_iteration
from .settings import parse_style_blend, precisions_text

EXIT_USAGE = 2
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130  # what a shell reports for a process ended by SIGINT


def _flag_type(setting):
    """argparse's type for a setting's flag: the text read as the setting's type, checked by the schema.
    ``--init`` also takes an image file to start from."""
    def parse(text):
        if setting.name == "init" and text == "iteration":
            raise argparse.ArgumentTypeError("to continue, give the image file to start from")
        if setting.name == "init" and os.path.isfile(text):
            return text
        if setting.name == "init" and text not in setting.choice_values:
            starts = ", ".join(value for value in setting.choice_values if value != "iteration")
            raise argparse.ArgumentTypeError(f"{text!r} is no image file; give one to start from, or one of {starts}")
        try:
            value = setting.type(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if setting.type is int else 'a number'}") \
                from None
        try:
            return setting.validate(value)
        except SettingsError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    parse.__name__ = setting.name
    return parse


def _flag_metavar(setting):
    """A choice's values; --init's end with IMAGE (a file to start from) in place of "iteration"."""
    values = [("IMAGE" if value == "iteration" else value) for value in setting.choice_values]
    return "|".join(values) or None


def _flag_help(setting):
    return f"{setting.label}: {help_text(setting)} (default {setting.default})".replace("%", "%%")


def build_parser():
    """The flags are the run settings (stylecore.schema), named --content-weight, --rows, …"""
    parser = argparse.ArgumentParser(
        prog="python -m stylecore",
        description="Neural style transfer (Gatys et al.) with VGG19: paint CONTENT in the style of STYLE "
                    "(or of several style images, blended).")
    parser.add_argument("content", help="content image (JPEG, PNG, WebP, GIF, BMP, TIFF)")
    parser.add_argument("styles", nargs="+", metavar="STYLE", help="style image(s)")
    parser.add_argument("--out", required=True, help="output folder (created if needed)")
    for setting in SETTINGS:
        parser.add_argument(setting.flag, type=_flag_type(setting), default=setting.default,
                            metavar=_flag_metavar(setting), help=_flag_help(setting))
    parser.add_argument("--style-blend", default=None, metavar="W1,W2,…",
                        help="one weight per style image, e.g. 0.7,0.3 (default: equal weights)")
    return parser


class Progress:
    """A plain-text progress bar with ETA on stderr (one line per save when not a terminal)."""

    def __init__(self, total, save_every, stream=sys.stderr):
        self.total = total
        self.save_every = save_every
        self.stream = stream
        self.tty = stream.isatty()

    def update(self, done, loss, seconds):
        rate = seconds / done if done else 0.0
        eta = rate * (self.total - done)
        filled = int(30 * done / self.total)
        line = (f"[{'#' * filled}{'.' * (30 - filled)}] {done}/{self.total} "
                f"loss {loss:.4g}  {rate:.1f} s/it  ETA {_duration(eta)}")
        if self.tty:
            self.stream.write("\r" + line + ("\n" if done == self.total else ""))
            self.stream.flush()
        elif saves_iteration(done, self.total, self.save_every):
            self.stream.write(line + "\n")
            self.stream.flush()


def _duration(seconds):
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


class _Interrupted:
    """Inside ``with``: the first SIGINT only sets ``asked`` (the run stops at its next evaluation);
    the next one raises KeyboardInterrupt as usual."""

    def __init__(self):
        self.asked = False

    def __enter__(self):
        self.previous = signal.signal(signal.SIGINT, self._ask)
        return self

    def _ask(self, signum, frame):
        self.asked = True
        signal.signal(signal.SIGINT, self.previous)
        print("\nStopping after this evaluation (Ctrl-C again to quit at once)…", file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self.previous)
        return False


def _save_png(image, path):
    Image.fromarray(image).save(path)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)

    def fail(message, code=EXIT_USAGE):
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        return code

    start = args.init if args.init not in SETTING["init"].choice_values else None  # an image file
    values = {setting.name: getattr(args, setting.name) for setting in SETTINGS}
    try:
        settings = RunSettings.from_mapping(values | ({"init": "iteration"} if start else {}))
        blend = None if args.style_blend is None else parse_style_blend(args.style_blend, len(args.styles))
        engine = Engine()
        engine.check_memory(args.content, settings)  # before the pictures are made at the run's size
        base, styles = engine_inputs(args.content, args.styles, rows=settings.rows, style_fit=settings.style_fit,
                                     style_blend_weights=blend, preserve_colors=settings.preserve_colors,
                                     style_scale=settings.style_scale)
    except (ImageError, SettingsError) as exc:
        return fail(str(exc))

    os.makedirs(args.out, exist_ok=True)
    _save_png(base, os.path.join(args.out, "base.png"))
    for number, style in enumerate(styles, start=1):
        _save_png(style, os.path.join(args.out, "style.png" if number == 1 else f"style_{number}.png"))
    progress = Progress(args.iterations, args.save_every)
    last = args.iterations
    started = time.perf_counter()
    used = {"precisions": ""}
    rows, cols = base.shape[:2]
    print(f"Painting {cols}×{rows} pixels ({rows * cols / 1e6:.2f} megapixels): {last} iterations of up to "
          f"{EVALUATIONS_PER_ITERATION} evaluations each on {engine.device}. Ctrl-C stops it and keeps the images.", file=sys.stderr)
    interrupted = _Interrupted()

    with open(os.path.join(args.out, "log.jsonl"), "w", encoding="utf-8") as log:
        def on_iteration(report):
            used["precisions"] = precisions_text(used["precisions"], report.precision)
            log.write(json.dumps({
                "iteration": report.iteration, "loss": report.loss,
                "content_loss": report.content_loss, "style_loss": report.style_loss,
                "tv_loss": report.tv_loss, "evaluations": report.evaluations,
                "seconds": round(report.seconds, 3), "rows": report.rows, "width": report.width,
                "precision": report.precision, "converged": report.converged,
                "backend": report.backend, "device": report.device, "solver": report.solver,
            }) + "\n")
            log.flush()
            if saves_iteration(report.iteration, last, args.save_every) or report.converged:
                _save_png(report.image(), os.path.join(
                    args.out, f"output_at_iteration_{report.iteration}.png"))
            if report.iteration:
                progress.update(report.iteration, report.loss, time.perf_counter() - started)
            return interrupted.asked

        try:
            with interrupted:
                result = engine.stylize(args.content, args.styles, settings, on_iteration, style_blend_weights=blend,
                                        start=start, on_evaluation=lambda seconds, evaluations: interrupted.asked)
        except (ImageError, SettingsError) as exc:
            return fail(str(exc))
        except WeightsError as exc:
            return fail(str(exc), EXIT_FAILURE)
        except DivergedError as exc:
            _save_png(exc.last_image, os.path.join(
                args.out, f"output_at_iteration_{exc.iteration}.png"))
            return fail(f"{exc} The last good image was saved.", EXIT_FAILURE)
    if result.stopped:
        path = os.path.join(args.out, f"output_at_iteration_{result.last_iteration}.png")
        if not os.path.exists(path):
            _save_png(result.image, path)
        if progress.tty:
            sys.stderr.write("\n")
        print(f"Stopped (Ctrl-C) at iteration {result.last_iteration} of {last} after {_duration(result.seconds)}; "
              f"loss {result.loss:.4g}. Images in {args.out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    ending = "converged" if result.converged else "done"
    switched = f" from iteration {result.refined_at}" if result.refined_at is not None else ""
    print(f"Done ({ending}): {result.last_iteration} iterations, {result.evaluations} evaluations in "
          f"{_duration(result.seconds)} on {engine.device} in {used['precisions']}{switched} ({result.solver}); final loss "
          f"{result.loss:.4g}. Images in {args.out}", file=sys.stderr)
    return 0
