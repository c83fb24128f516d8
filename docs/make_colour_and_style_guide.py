"""Make the pictures of the colour and style guide with the product's own engine.

    python docs/make_colour_and_style_guide.py [--rows 64] [--iterations 8]

Writes the sample inputs and one picture per setting under static/gallery/guide/ (served by the
site's guide page and shown in docs/COLOUR_AND_STYLE.md). Each picture is what
``python -m stylecore content.png style.png [style-2.png] --rows R --start-rows R --iterations N``
plus that variant's options writes as its last iteration; one engine makes them all, so VGG19 is
built once.
"""
import argparse
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout
import stylecore  # noqa: E402
from stylecore.samples import landscape, mosaic, swirls  # noqa: E402

FOLDER = ROOT / "static" / "gallery" / "guide"
# (file name, the command line's options as stylize() arguments, blends the second style image)
VARIANTS = (
    ("plain", {}, False),
    ("luminance", {"preserve_colors": "luminance"}, False),
    ("histogram", {"preserve_colors": "histogram"}, False),
    ("blend-70-30", {"style_blend_weights": (0.7, 0.3)}, True),
    ("scale-0.5", {"style_scale": 0.5}, False),
    ("scale-2", {"style_scale": 2.0}, False),
    ("layers-fine", {"style_layers": "fine"}, False),
    ("layers-large", {"style_layers": "large"}, False),
)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=8)
    args = parser.parse_args()
    FOLDER.mkdir(parents=True, exist_ok=True)
    content, style, second = landscape(240, 320), swirls(240, 240), mosaic(240, 240)
    for name, image in (("content", content), ("style", style), ("style-2", second)):
        Image.fromarray(image).save(FOLDER / f"{name}.png")
    engine = stylecore.Engine()
    for name, options, two_styles in VARIANTS:
        options = dict(options)
        blend = options.pop("style_blend_weights", None)
        settings = stylecore.RunSettings(rows=args.rows, start_rows=args.rows, iterations=args.iterations, **options)
        result = engine.stylize(content, [style, second] if two_styles else style, settings,
                                style_blend_weights=blend)
        Image.fromarray(result.image).save(FOLDER / f"{name}.png")
        print(name, f"loss {result.loss:.3g}", flush=True)


if __name__ == "__main__":
    main()
