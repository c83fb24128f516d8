"""Command line: ``python -m stylecore.preview CONTENT STYLE OUT.png [--rows R] [--alpha A]``.

Writes the AdaIN picture (one encoder–AdaIN–decoder pass, Huang & Belongie 2017) and prints one
JSON line: ``seconds`` is a whole pass with the model loaded (both images encoded, then decoded),
``alpha_seconds`` a pass for another alpha on the same images (their encodings are cached, as when
a slider moves), ``load_seconds`` the model build plus the first pass.
"""

import argparse
import json
import sys
import time

from PIL import Image

from . import DEFAULTS, Engine
from .cli import EXIT_FAILURE, EXIT_USAGE, _flag_type
from .errors import ImageError, SettingsError, WeightsError
from .schema import SETTING
from .settings import PREVIEW_ALPHA, PRECISIONS


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m stylecore.preview",
        description="An instant stylised picture: CONTENT in the style of STYLE by one AdaIN pass.")
    parser.add_argument("content", help="content image")
    parser.add_argument("style", help="style image")
    parser.add_argument("out", help="output PNG file")
    parser.add_argument("--rows", type=_flag_type(SETTING["rows"]), default=DEFAULTS.rows,
                        help="output height in pixels (default %(default)s)")
    parser.add_argument("--alpha", type=float, default=PREVIEW_ALPHA,
                        help="style strength from 0 (the content) to 1 (default %(default)g)")
    parser.add_argument("--style-fit", choices=("crop", "resize"), default=DEFAULTS.style_fit)
    parser.add_argument("--precision", choices=PRECISIONS, default=DEFAULTS.precision)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    options = dict(rows=args.rows, alpha=args.alpha, style_fit=args.style_fit, precision=args.precision)
    started = time.perf_counter()
    try:
        engine = Engine()
        engine.preview(args.content, args.style, **options)
        load_seconds = time.perf_counter() - started
        engine.forget_encodings()
        begun = time.perf_counter()
        image = engine.preview(args.content, args.style, **options)
        seconds = time.perf_counter() - begun
        begun = time.perf_counter()
        engine.preview(args.content, args.style, **{**options, "alpha": 1.0 - args.alpha / 2})
        alpha_seconds = time.perf_counter() - begun
        Image.fromarray(image).save(args.out)
    except (ImageError, SettingsError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (WeightsError, OSError, ValueError) as exc:
        print(f"{parser.prog}: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(json.dumps({
        "out": args.out, "rows": image.shape[0], "width": image.shape[1], "alpha": args.alpha,
        # what the pass computed in: float32 under AUTO_MIN_PIXELS, as ``preview`` resolves it
        "precision": engine.resolve_precision(args.precision, image.shape[0] * image.shape[1]),
        "device": engine.device,
        "seconds": round(seconds, 3), "alpha_seconds": round(alpha_seconds, 3),
        "load_seconds": round(load_seconds, 3),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
