"""Command line: ``python -m stylecore CONTENT STYLE [STYLE …] --out DIR``.

Writes DIR/base.png and DIR/style.png (the images as the engine sees them; with several style
images also DIR/style_2.png, …),
DIR/output_at_iteration_N.png for N = 0, every multiple of --save-every and the
last iteration, and DIR/log.jsonl with one JSON object per iteration. All of
stylecore's file writing (the weights cache aside) happens here.
"""

import argparse
import json
import os
import sys
import time

from PIL import Image

from . import DEFAULTS, Engine, engine_inputs
from .errors import DivergedError, ImageError, SettingsError, WeightsError
from .settings import (
    CONTENT_LAYERS, INITS, PRECISIONS, PRESERVE_COLORS, STYLE_LAYER_PRESETS, parse_style_blend, parse_style_layers,
    validate_alpha, validate_style_scale, validate_weights,
)

EXIT_USAGE = 2
EXIT_FAILURE = 1


def _number(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    return value


def _positive_int(minimum):
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value
    return parse


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m stylecore",
        description="Neural style transfer (Gatys et al.) with VGG19: paint CONTENT in the style of STYLE "
                    "(or of several style images, blended).")
    parser.add_argument("content", help="content image (JPEG, PNG, WebP, GIF, BMP, TIFF)")
    parser.add_argument("styles", nargs="+", metavar="STYLE", help="style image(s)")
    parser.add_argument("--out", required=True, help="output folder (created if needed)")
    parser.add_argument("--iterations", type=_positive_int(1), default=DEFAULTS.iterations,
                        help="rounds of up to 20 loss evaluations (default %(default)s)")
    parser.add_argument("--rows", type=_positive_int(16), default=DEFAULTS.rows,
                        help="output height in pixels; width keeps the content's aspect (default %(default)s)")
    parser.add_argument("--save-every", type=_positive_int(1), default=DEFAULTS.save_every,
                        help="save the image every N iterations (default %(default)s)")
    parser.add_argument("--content-weight", type=_number, default=DEFAULTS.content_weight,
                        help="weight of the content loss (default %(default)g)")
    parser.add_argument("--style-weight", type=_number, default=DEFAULTS.style_weight,
                        help="weight of the style loss (default %(default)g)")
    parser.add_argument("--tv-weight", type=_number, default=DEFAULTS.tv_weight,
                        help="weight of the total-variation (smoothness) loss (default %(default)g)")
    parser.add_argument("--style-fit", choices=("crop", "resize"), default=DEFAULTS.style_fit,
                        help="fit the style image by centre-cropping to the content's aspect or by squashing")
    parser.add_argument("--optimizer", choices=("lbfgs", "adam"), default=DEFAULTS.optimizer)
    parser.add_argument("--init", default=DEFAULTS.init,
                        help="start from 'content', 'noise', 'adain' (the instant AdaIN picture) or an "
                             "image file, e.g. an earlier output (default %(default)s)")
    parser.add_argument("--adain-alpha", type=_number, default=DEFAULTS.adain_alpha,
                        help="style strength of --init adain, 0 to 1 (default %(default)g)")
    parser.add_argument("--seed", type=_positive_int(0), default=None,
                        help="random seed for --init noise")
    parser.add_argument("--precision", choices=PRECISIONS, default=DEFAULTS.precision,
                        help="number type of the convolutions; auto picks bfloat16 where the CPU or GPU "
                             "computes it natively (default %(default)s)")
    parser.add_argument("--start-rows", type=_positive_int(16), default=DEFAULTS.start_rows,
                        help="optimise first at this height, then at sizes growing by about 1.4x up to "
                             "--rows; --rows or more: one size (default %(default)s)")
    parser.add_argument("--style-blend", default=None, metavar="W1,W2,…",
                        help="one weight per style image, e.g. 0.7,0.3 (default: equal weights)")
    parser.add_argument("--preserve-colors", choices=PRESERVE_COLORS, default=DEFAULTS.preserve_colors,
                        help="keep the content's colours: luminance (transfer the luminance only) or histogram "
                             "(recolour the style to the content's colours first) (default %(default)s)")
    parser.add_argument("--style-scale", type=_number, default=DEFAULTS.style_scale,
                        help="size the style is seen at, relative to the output, 0.25 to 4: small for fine "
                             "brush strokes, large for big shapes (default %(default)g)")
    parser.add_argument("--content-layer", choices=CONTENT_LAYERS, default=DEFAULTS.content_layer,
                        help="VGG19 layer of the content loss (default %(default)s)")
    parser.add_argument("--style-layers", default=DEFAULTS.style_layers, metavar="PRESET|LAYER:W,…",
                        help=f"style layers: a preset ({', '.join(STYLE_LAYER_PRESETS)}) or a list such as "
                             "block1_conv1:1,block3_conv1:0.5 (default %(default)s)")
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
        elif done % self.save_every == 0 or done == self.total:
            self.stream.write(line + "\n")
            self.stream.flush()


def _duration(seconds):
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def _save_png(image, path):
    Image.fromarray(image).save(path)


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)

    def fail(message, code=EXIT_USAGE):
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        return code

    try:
        validate_weights(args.content_weight, args.style_weight, args.tv_weight)
        validate_alpha(args.adain_alpha)
        validate_style_scale(args.style_scale)
        parse_style_layers(args.style_layers)
        blend = None if args.style_blend is None else parse_style_blend(args.style_blend, len(args.styles))
        colour = dict(style_blend_weights=blend, preserve_colors=args.preserve_colors, style_scale=args.style_scale)
        base, styles = engine_inputs(args.content, args.styles, rows=args.rows, style_fit=args.style_fit, **colour)
    except (ImageError, SettingsError) as exc:
        return fail(str(exc))
    init = args.init
    if init not in INITS and not os.path.isfile(init):
        return fail(f"--init must be {', '.join(INITS)} or an image file; {init!r} is no file.")

    os.makedirs(args.out, exist_ok=True)
    _save_png(base, os.path.join(args.out, "base.png"))
    for number, style in enumerate(styles, start=1):
        _save_png(style, os.path.join(args.out, "style.png" if number == 1 else f"style_{number}.png"))
    progress = Progress(args.iterations, args.save_every)
    last = args.iterations
    started = time.perf_counter()

    with open(os.path.join(args.out, "log.jsonl"), "w", encoding="utf-8") as log:
        def on_iteration(report):
            log.write(json.dumps({
                "iteration": report.iteration, "loss": report.loss,
                "content_loss": report.content_loss, "style_loss": report.style_loss,
                "tv_loss": report.tv_loss, "evaluations": report.evaluations,
                "seconds": round(report.seconds, 3), "rows": report.rows, "width": report.width,
                "precision": report.precision, "converged": report.converged,
                "backend": report.backend, "device": report.device, "solver": report.solver,
            }) + "\n")
            log.flush()
            if report.iteration % args.save_every == 0 or report.iteration == last or report.converged:
                _save_png(report.image(), os.path.join(
                    args.out, f"output_at_iteration_{report.iteration}.png"))
            if report.iteration:
                progress.update(report.iteration, report.loss, time.perf_counter() - started)

        try:
            engine = Engine()
            result = engine.stylize(
                args.content, args.styles, rows=args.rows, iterations=args.iterations,
                content_weight=args.content_weight, style_weight=args.style_weight,
                tv_weight=args.tv_weight, style_fit=args.style_fit, optimizer=args.optimizer,
                init=init, seed=args.seed, precision=args.precision, start_rows=args.start_rows,
                adain_alpha=args.adain_alpha, content_layer=args.content_layer, style_layers=args.style_layers,
                callback=on_iteration, **colour)
        except (ImageError, SettingsError) as exc:
            return fail(str(exc))
        except WeightsError as exc:
            return fail(str(exc), EXIT_FAILURE)
        except DivergedError as exc:
            _save_png(exc.last_image, os.path.join(
                args.out, f"output_at_iteration_{exc.iteration}.png"))
            return fail(f"{exc} The last good image was saved.", EXIT_FAILURE)
    ending = "converged" if result.converged else "done"
    print(f"Done ({ending}): {result.last_iteration} iterations, {result.evaluations} evaluations in "
          f"{_duration(result.seconds)} on {engine.device} in {result.precision} ({result.solver}); final loss "
          f"{result.loss:.4g}. Images in {args.out}", file=sys.stderr)
    return 0
