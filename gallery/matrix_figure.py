"""A sweep's matrix as one PNG with axis labels: the figure a user puts in a report (Pillow only).

Cells are the runs' images at one iteration, or one region of them magnified with
nearest-neighbour scaling (the crop zoom of the sweep page). A crop is given in the pixels of the
reference image (the first cell that has one, at its run's full size, as on the page); images of
another size get the region scaled proportionally, by the page's own arithmetic (gallery.crop).
The labels are also written into the PNG's text chunks.
"""
import io

from PIL import Image, ImageDraw, ImageFont, ImageOps
from PIL.PngImagePlugin import PngInfo

from gallery.crop import clamp_region, scaled_region

CELL = 360  # the long side of a cell's picture, at most (small images grow by whole factors)
MAX_MAGNIFICATION = 32
MARGIN = 16
GAP = 10
FONT_SIZE = 14
LINE = 20
INK = (20, 20, 20)
MUTED = (105, 105, 105)
PAPER = (255, 255, 255)
EMPTY = (228, 228, 228)


def cell_picture(image, region, reference):
    """A cell's picture: the crop (or the whole image) magnified by a whole factor with nearest-neighbour
    scaling up to CELL pixels, or a large whole image reduced to fit CELL. The region is kept within
    ``reference`` and scaled to the image as the page does it (gallery.crop)."""
    if region is not None:
        x, y, w, h = scaled_region(clamp_region(region, reference), reference, image.size)
        image = image.crop((x, y, x + w, y + h))
    longest = max(image.size)
    if longest > CELL:
        return ImageOps.contain(image, (CELL, CELL), Image.Resampling.LANCZOS)
    factor = max(1, min(MAX_MAGNIFICATION, CELL // longest))
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


def _text_width(font, text):
    return int(font.getlength(text)) if text else 0


def _drawable(font, text):
    """Whether the font has a glyph for every character of ``text``: the bundled font draws Latin
    letters, and a Japanese or Arabic title would come out as a row of empty boxes (the glyph a
    font draws for a character it lacks, as for a private-use code point no font has)."""
    missing = font.getmask("\U000F0000")
    missing = (missing.size, bytes(missing))
    for character in set(text):
        if character.isspace():
            continue
        mask = font.getmask(character)
        if (mask.size, bytes(mask)) == missing:
            return False
    return True


def _fitted(font, text, width):
    """``text`` shortened with "..." (the bundled font has no ellipsis) to fit ``width`` pixels."""
    if _text_width(font, text) <= width:
        return text
    while text and _text_width(font, text.rstrip() + "...") > width:
        text = text[:-1]
    return text.rstrip() + "..."


def matrix_png(*, title, axis1, axis2, row_values, column_values, cells, fallback_title=None):
    """PNG bytes of the matrix. ``cells`` is rows of (cell_picture or None, caption), or (None, caption,
    what the empty box says instead of "no image yet", e.g. nothing for a deleted run); ``axis1``/``axis2``
    name the settings down and across (axis2 may be ""), with the values' texts. The figure's heading
    is ``title``, or ``fallback_title`` where the font cannot draw every character of ``title`` (a
    project titled in Japanese), shortened to the figure's width; the PNG's Title text keeps ``title``."""
    font = ImageFont.load_default(size=FONT_SIZE)
    bold = ImageFont.load_default(size=FONT_SIZE + 2)
    pictures = [[cell[0] for cell in row] for row in cells]
    shown = [picture for row in pictures for picture in row if picture is not None]
    cell_w = max([picture.width for picture in shown] + [160])
    cell_h = max([picture.height for picture in shown] + [120])
    # The bundled font has no arrows: the axes say "down" and "across" in words.
    down, across = f"{axis1} (down)", f"{axis2} (across)"
    header_w = max(_text_width(font, text) for text in list(row_values) + [down]) + GAP
    columns = max(len(row) for row in cells)

    width = 2 * MARGIN + header_w + columns * (cell_w + GAP)
    top = MARGIN + LINE + 6 + 2 * LINE  # title, then the axis names and the column values
    height = top + len(cells) * (cell_h + LINE + GAP) + MARGIN
    figure = Image.new("RGB", (width, height), PAPER)
    draw = ImageDraw.Draw(figure)
    heading = title if fallback_title is None or _drawable(bold, title) else fallback_title
    draw.text((MARGIN, MARGIN), _fitted(bold, heading, width - 2 * MARGIN), font=bold, fill=INK)
    header_y = MARGIN + LINE + 6
    draw.text((MARGIN, header_y), down, font=font, fill=MUTED)
    left = MARGIN + header_w
    if axis2:
        draw.text((left, header_y), across, font=font, fill=MUTED)
    for j, text in enumerate(column_values):
        x = left + j * (cell_w + GAP) + (cell_w - _text_width(font, text)) // 2
        draw.text((x, header_y + LINE), text, font=font, fill=INK)
    for i, row in enumerate(cells):
        y = top + i * (cell_h + LINE + GAP)
        draw.text((MARGIN, y + cell_h // 2 - LINE // 2), row_values[i], font=font, fill=INK)
        for j, (_image, caption, *empty) in enumerate(row):
            x = left + j * (cell_w + GAP)
            picture = pictures[i][j]
            if picture is None:
                draw.rectangle((x, y, x + cell_w - 1, y + cell_h - 1), fill=EMPTY)
                draw.text((x + 8, y + 8), empty[0] if empty else "no image yet", font=font, fill=MUTED)
            else:
                figure.paste(picture, (x + (cell_w - picture.width) // 2, y + (cell_h - picture.height) // 2))
            draw.text((x, y + cell_h + 2), caption, font=font, fill=MUTED)

    info = PngInfo()
    info.add_itxt("Title", title)
    info.add_itxt("Rows", f"{axis1}: {', '.join(row_values)}")
    if axis2:
        info.add_itxt("Columns", f"{axis2}: {', '.join(column_values)}")
    buffer = io.BytesIO()
    figure.save(buffer, "PNG", pnginfo=info, compress_level=6)
    return buffer.getvalue()
