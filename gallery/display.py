"""How runs' numbers are shown: losses and durations as text, and the loss curves as SVG data.

Every page, and every live fragment of a page, formats numbers with these functions: there are
no copies in JavaScript. The chart is computed here and drawn by templates/gallery/_loss_chart.html,
so the pages need no chart library and work offline.
"""
import math
import re
from collections import namedtuple
from operator import attrgetter

from stylecore.engine import scale_plan
from stylecore.schema import SETTING, SETTINGS, format_number


def finite_or_none(value):
    """Floats for JSON and the database: NaN and infinity (a diverged loss) become None."""
    return float(value) if value is not None and math.isfinite(value) else None


def format_loss(value):
    """Losses span many decades: always three significant digits (3.00 beside 2.83, not 3), and
    1.23e5 rather than 1.23e+05."""
    if value is None:
        return "–"
    if not math.isfinite(value):
        return "diverged"
    if value == 0:
        return "0"  # exactly: three significant digits of nothing would read "0.00"
    text = f"{value:#.3g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        return f"{mantissa.rstrip('.')}e{int(exponent)}"
    return text.rstrip(".")


# The losses that a run, a saved iteration, a loss point and an engine report each have, by name.
LOSS_FIELDS = ("loss", "content_loss", "style_loss", "tv_loss")


# A loss point's values, read without building a model instance (a long run has thousands).
LossRow = namedtuple("LossRow", ("number",) + LOSS_FIELDS)


def loss_rows(points):
    """A queryset of one run's ``LossPoint`` rows as LossRow tuples, in order of number."""
    return [LossRow(*values) for values in points.values_list("number", *LOSS_FIELDS)]


def loss_values(row):
    """{name: value} of LOSS_FIELDS of a run, iteration, loss point or engine report; None where not
    finite (a diverged loss), for JSON and the database."""
    return {name: finite_or_none(getattr(row, name)) for name in LOSS_FIELDS}


def iteration_record(iteration):
    """One saved iteration's numbers, as the progress endpoint and run.json give them."""
    return {
        "number": iteration.number,
        **loss_values(iteration),
        "evaluations": iteration.evaluations,
        "seconds": iteration.seconds,
        "rows": iteration.rows,
        "width": iteration.width,
    }


def precision_text(run):
    """What a run computes in: the precision its worker used, else the choice (e.g. "Automatic")."""
    return run.precision_used or run.get_precision_display()


def style_blend_text(run):
    """"1 style image", or the blend: "0.7 × style 1, 0.3 × style 2" (the run's own style images, in order)."""
    weights = run.blend_weights
    if len(weights) == 1:
        return "1 style image"
    return ", ".join(f"{format_number(weight)} × style {number}" for number, weight in enumerate(weights, start=1))


NOT_APPLICABLE = "–"


def _setting_text(setting):
    """A function run → the setting's text on the pages (the precision: what the run computed in)."""
    def text(run):
        if setting.applies and not setting.applies(run):
            return NOT_APPLICABLE
        return precision_text(run) if setting.name == "precision" else setting.text(getattr(run, setting.name), run)
    return text


# A run's settings as (label, text of a run), in the schema's order, then its style images: the run
# page lists those that apply, the compare page marks those that differ.
RUN_SETTINGS_SHOWN = tuple((setting.label, _setting_text(setting)) for setting in SETTINGS) + (
    ("Style images", style_blend_text),
)


def settings_rows(run):
    """(label, text) of each setting that applies to the run."""
    rows = [(name, text_of(run)) for name, text_of in RUN_SETTINGS_SHOWN]
    return [(name, text) for name, text in rows if text != NOT_APPLICABLE]


def format_duration(seconds):
    """12.3 s, 4 min 05 s, 2 h 07 min."""
    if seconds is None:
        return "–"
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


# ---------------------------------------------------------------------------------------------
# Loss chart: the total and the three weighted parts that add up to it, on a log scale, as data
# for templates/gallery/_loss_chart.html. The engine minimises
# content_weight × content + style_weight × style + tv_weight × tv, so the parts are drawn
# multiplied by their weights: what is drawn adds up to the total drawn.

CHART_SERIES = (
    # (key, name, the run's weight field or None, the iteration's loss field)
    ("total", "Total", None, "loss"),
    ("content", "Content × weight", "content_weight", "content_loss"),
    ("style", "Style × weight", "style_weight", "style_loss"),
    ("tv", "Total variation × weight", "tv_weight", "tv_loss"),
)
CHART_WIDTH, CHART_HEIGHT = 640, 250  # the run page's chart, in the SVG's units (CSS pixels at 640 wide)
COMPARE_CHART_SIZE = (380, 240)  # the compare page's, three abreast
CHART_MOST_POINTS = 320  # a curve's points on long runs: about one per two pixels of the plot
CHART_LEFT, CHART_RIGHT, CHART_TOP, CHART_BOTTOM = 62, 14, 12, 32


def _decade_label(exponent):
    return f"{10.0 ** exponent:g}" if -3 <= exponent <= 3 else f"1e{exponent}"


def _nice_step(span, most_ticks=8):
    """The smallest of 1, 2, 5 × 10^k that puts at most most_ticks ticks on the span."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if span / (step * factor) <= most_ticks:
                return step * factor
        step *= 10


def weighted_losses(run, iteration):
    """{series key: the value drawn} for one iteration: the total, and each part times its weight."""
    values = {}
    for key, _name, weight_field, loss_field in CHART_SERIES:
        value = getattr(iteration, loss_field)
        if weight_field is not None and value is not None:
            value = value * getattr(run, weight_field)
        values[key] = value
    return values


def _plottable(value):
    return value is not None and math.isfinite(value) and value > 0


def computed_losses(iterations, points):
    """Every computed iteration's losses in order of number: the run's loss points, and its saved
    iterations where there is no point (runs from before points were kept have only those)."""
    merged = {point.number: point for point in points}
    for iteration in iterations:
        merged.setdefault(iteration.number, iteration)
    return [merged[number] for number in sorted(merged)]


def _drawn(numbers, kept, most):
    """At most about ``most`` of the iteration ``numbers`` (evenly spread), always with ``kept``."""
    if len(numbers) <= most:
        return numbers
    stride = math.ceil(len(numbers) / most)
    return [n for i, n in enumerate(numbers) if i % stride == 0 or n in kept]


def loss_chart(run, iterations, points=()):
    """The run page's chart: polylines, dots, axis ticks and a table of the values; None when there
    is nothing to draw.

    The curves go through every computed iteration (``points``, the run's ``LossPoint`` rows; at most
    about CHART_MOST_POINTS of them, evenly spread, on long runs); the dots and the table are the
    saved ``iterations`` and the latest computed one. Zero, negative and non-finite values cannot be
    placed on a log scale and are left out of the drawing (not the table).
    """
    computed = computed_losses(iterations, points)
    values_at = {row.number: weighted_losses(run, row) for row in computed}
    numbers = list(values_at)
    marked = {it.number for it in iterations} | set(numbers[-1:])
    series = [
        {"key": key, "name": name, "points": [(n, values_at[n][key]) for n in numbers], "marked": marked}
        for key, name, _weight, _field in CHART_SERIES
    ]
    marks = [(start, f"{size} rows") for size, start in scale_starts(run, iterations)[1:]]
    chart = line_chart(series, max([run.iterations, 1] + numbers), marks)
    if chart is not None:
        chart["table"] = [
            {"number": number, "values": [format_loss(values_at[number][key]) for key, *_rest in CHART_SERIES]}
            for number in numbers if number in marked
        ]
    return chart


# The compare page's charts: each loss before its weight, one line per run, so that runs with
# different weights can be set side by side.
COMPARED_LOSSES = (
    # (loss field, name, what a lower value means)
    ("content_loss", "Content loss", "lower: closer to the photo's shapes and edges"),
    ("style_loss", "Style loss", "lower: closer to the painting's textures and colours"),
    ("tv_loss", "Total variation", "lower: smoother, with less pixel noise"),
)


COMPARED_MOST_RUNS = 6  # lines a chart tells apart: one colour and dash each (static/gallery/style.css)


def compared_losses(runs, iterations_by_run):
    """The compare and sweep pages' charts (COMPARED_LOSSES, each over every run's computed
    iterations, read here, one query per run), the runs' labels in order, and a table of each run's
    latest values; charts is empty when nothing can be drawn or there are more than
    COMPARED_MOST_RUNS runs ("too_many", and nothing is read)."""
    labels = [run.label for run in runs]
    if len(runs) > COMPARED_MOST_RUNS:
        return {"charts": [], "labels": labels, "too_many": True, "most": COMPARED_MOST_RUNS}
    computed = {}
    for run in runs:
        rows = computed_losses(iterations_by_run[run.id], loss_rows(run.loss_points))
        drawn = set(_drawn([row.number for row in rows], {row.number for row in rows[-1:]}, CHART_MOST_POINTS))
        computed[run.id] = [row for row in rows if row.number in drawn]  # thinned once, for three charts
    x_max = max([1] + [run.iterations for run in runs] + [rows[-1].number for rows in computed.values() if rows])
    charts = []
    for field, name, meaning in COMPARED_LOSSES:
        series = [
            {"key": f"run-{position}", "name": run.label,
             "points": [(row.number, getattr(row, field)) for row in computed[run.id]],
             "marked": {row.number for row in computed[run.id][-1:]}}
            for position, run in enumerate(runs, 1)
        ]
        chart = line_chart(series, x_max, size=COMPARE_CHART_SIZE)
        if chart is not None:
            charts.append({"key": field, "name": name, "meaning": meaning, "chart": chart})
    table = [
        {"label": run.label, "number": computed[run.id][-1].number,
         "values": [format_loss(getattr(computed[run.id][-1], field)) for field, *_rest in COMPARED_LOSSES]}
        for run in runs if computed[run.id]
    ]
    return {"charts": charts, "labels": labels, "table": table,
            "names": [name for _field, name, _meaning in COMPARED_LOSSES]}


# The sweep page's charts: each run's losses (before their weights) against the values swept.
SWEEP_CHART_PAD = 0.07  # of the plot's width kept free at each end, so the outer values' labels fit
SWEEP_TICK_CHAR_WIDTH = 6.5  # about how wide a character of the axis labels is (11 px text), to cut long values


# Settings that leave what the losses measure as it is: the weights only weigh the losses, and the
# optimiser, the start and the number type only change how the picture gets there. The others change
# the network's inputs or layers (pooling, layers, size, the style's scale, fit or colours), so their
# losses are numbers on different scales.
SAME_MEASURE = ("content_weight", "style_weight", "tv_weight", "optimizer", "init", "precision")


def _axis_places(name, values):
    """Where each of an axis's values lies across a chart (0 to 1), and the scale's words: numbers on
    their own scale (a log scale for the weights, which span decades), and choices, and weights with
    a zero among them, evenly in the sweep's order."""
    setting = SETTING[name]
    if setting.type in (int, float) and len(set(values)) == len(values) > 1:
        logarithmic = setting.sweep == "log"
        if not logarithmic or min(values) > 0:
            keys = [math.log10(value) if logarithmic else value for value in values]
            low, high = min(keys), max(keys)
            return [(key - low) / (high - low) for key in keys], "log scale" if logarithmic else ""
    if len(values) == 1:
        return [0.5], ""
    return [i / (len(values) - 1) for i in range(len(values))], ""


def _tick_text(text, most):
    """A value as an axis label of at most ``most`` characters: a choice's name without its
    explanation ("Resize" of "Resize (squash)"), cut short beyond that; the table has it whole."""
    text = re.split(r" \(|: ", text, maxsplit=1)[0]
    return text if len(text) <= most else text[:most - 1] + "…"


def _swept_row(run, axes, shown):
    """A run's line in losses_against's table: its values of the axes, the iteration shown, its losses."""
    return {"label": run.label,
            "axes": [SETTING[name].text(values[index_of(run)]) for name, values, index_of in axes],
            "number": shown.number if shown else "–",
            "values": [format_loss(getattr(shown, field) if shown else None) for field, *_rest in COMPARED_LOSSES]}


def swept_losses(sweep, runs, shown, size=COMPARE_CHART_SIZE):
    """The sweep page's charts (losses_against): its runs' losses against the values swept."""
    axes = [(sweep.axis1, sweep.axis1_values, attrgetter("sweep_row"))]
    if sweep.axis2:
        axes.append((sweep.axis2, sweep.axis2_values, attrgetter("sweep_column")))
    return losses_against(axes, runs, shown, size)


# Settings that may differ among compared runs and leave their losses comparable against the others:
# which iterations are kept.
AGAINST_IGNORES = ("save_every",)


def _value_index(name, values):
    return lambda run: values.index(getattr(run, name))


def setting_axes(runs):
    """The compare page's axes for losses_against: the one or two settings a sweep could vary in which 3 or
    more runs differ, when nothing else differs (the same pictures and style blend; AGAINST_IGNORES aside),
    each applies to every run and no two runs share their values; else none. An axis's values in the
    setting's order: numbers ascending, choices as offered, others (style layers) as the runs come."""
    if len(runs) < 3:
        return []
    pictures = {(run.content_source.name, run.style_source.name, run.style_blend,
                 tuple(style.source.name for style in run.extra_styles.all())) for run in runs}
    differing = [setting for setting in SETTINGS
                 if setting.name not in AGAINST_IGNORES and len({getattr(run, setting.name) for run in runs}) > 1]
    if len(pictures) > 1 or not 1 <= len(differing) <= 2 or any(
            not setting.sweep or (setting.applies and not all(map(setting.applies, runs))) for setting in differing):
        return []
    axes = []
    for setting in differing:
        values = list(dict.fromkeys(getattr(run, setting.name) for run in runs))
        if setting.choices:
            order = [key for key, _text in setting.choices]
            values.sort(key=order.index)
        elif setting.type in (int, float):
            values.sort()
        axes.append((setting.name, values, _value_index(setting.name, values)))
    places = {tuple(index_of(run) for _name, _values, index_of in axes) for run in runs}
    return axes if len(places) == len(runs) else []


def losses_against(axes, runs, shown, size=COMPARE_CHART_SIZE):
    """Each of COMPARED_LOSSES against one or two settings' values, at the iteration a sweep's matrix or a
    compare page's slider shows (``shown``: {run id: its saved iteration shown, or None}).

    ``axes``: [(setting name, its values, a function run → the index of its value)]. Across: the axis
    with more values (the first on a tie); one line per value of the other axis, at most
    COMPARED_MOST_RUNS of them ("too_many" beyond, and no charts). Also a table of every run's values,
    in the runs' order."""
    (across, across_values, across_index), *by = sorted(axes, key=lambda axis: -len(axis[1]))
    across_label = SETTING[across].label
    result = {"across": across_label, "by": SETTING[by[0][0]].label if by else "",
              "names": [name for _field, name, _meaning in COMPARED_LOSSES],
              "axes": [SETTING[name].label for name, _values, _index in axes], "charts": [], "legend": []}
    result["measured_differently"] = [SETTING[name].label for name, _values, _index in axes
                                      if name not in SAME_MEASURE]
    result["title_end"] = (f" of each run against {across_label}" + (f", one line per {result['by']}" if by else "")
                           + ", log scale; every run's values are in the table below the charts")
    result["table"] = [_swept_row(run, axes, shown.get(run.id)) for run in runs]
    if by and len(by[0][1]) > COMPARED_MOST_RUNS:
        return result | {"too_many": True, "most": COMPARED_MOST_RUNS}
    places, scale = _axis_places(across, across_values)
    texts = [SETTING[across].text(value) for value in across_values]

    def x_of(index):
        return SWEEP_CHART_PAD + (1 - 2 * SWEEP_CHART_PAD) * places[index]

    lines = [(None, "Runs", "")]  # (the other axis's index, the line's name, its dots' titles begin)
    if by:
        name, values, by_index = by[0]
        label = SETTING[name].label
        lines = [(j, f"{label}: {text}", f"{label} {text}, ") for j, text in enumerate(map(SETTING[name].text, values))]
        result["legend"] = [line_name for _j, line_name, _on_line in lines]
    plot_width = size[0] - CHART_LEFT - CHART_RIGHT
    stride = math.ceil(len(texts) / max(2, plot_width // 60))  # every stride-th value labelled
    most = max(5, int(plot_width * stride / len(texts) / SWEEP_TICK_CHAR_WIDTH))
    x_ticks = [(x_of(i), _tick_text(text, most) if i % stride == 0 else "") for i, text in enumerate(texts)]
    # Runs shown before the latest iteration shown that have gone or will go further: behind, not ended.
    numbers = sorted({iteration.number for iteration in shown.values() if iteration is not None})
    behind = any(shown.get(run.id) is not None and shown[run.id].number < numbers[-1]
                 and (run.is_active or shown[run.id].number < run.iterations_done) for run in runs)
    result["iterations_differ"] = (numbers[0], numbers[-1]) if behind else None

    def line_points(j, on_line):
        """Line j's runs that have an iteration to show, left to right: (x, the dot's title, the iteration)."""
        def title(run):
            return (f"{on_line}{across_label} {texts[across_index(run)]}"
                    + (f", iteration {shown[run.id].number}" if result["iterations_differ"] else ""))
        points = [(x_of(across_index(run)), title(run), shown[run.id])
                  for run in runs if (j is None or by_index(run) == j) and shown.get(run.id) is not None]
        return sorted(points, key=lambda point: point[0])

    placed = [line_points(j, on_line) for j, _line_name, on_line in lines]  # once, for the three charts
    for field, name, meaning in COMPARED_LOSSES:
        series = [{"key": f"run-{position}", "name": line_name,
                   "points": [(x, getattr(iteration, field), title) for x, title, iteration in points]}
                  for position, ((_j, line_name, _on_line), points) in enumerate(zip(lines, placed), 1)]
        chart = log_chart(series, size, x_ticks, axis_title=across_label + (f" ({scale})" if scale else ""))
        if chart is not None:
            result["charts"].append({"key": field, "name": name, "meaning": meaning, "chart": chart})
    return result


def line_chart(series, x_max, marks=(), size=(CHART_WIDTH, CHART_HEIGHT)):
    """Lines on a log scale over iterations 0..x_max, as data for templates/gallery/_chart_svg.html;
    None when no value can be drawn.

    ``series``: [{"key", "name", "points": [(iteration, value)] in order, "marked": iterations that get a
    dot}]; each line is thinned to about CHART_MOST_POINTS points, keeping the marked ones. ``marks``:
    [(iteration, label)] drawn as dashed vertical lines (where a larger size begins). ``size``: the
    SVG's width and height, in the units of its text (11 px).
    """
    lines = []
    for line in series:
        kept = dict(line["points"])
        drawn = _drawn(list(kept), line["marked"], CHART_MOST_POINTS)
        lines.append({"key": line["key"], "name": line["name"], "points": [
            (n / x_max, kept[n], f"{line['name']} at iteration {n}" if n in line["marked"] else None) for n in drawn
        ]})
    x_step = _nice_step(x_max, most_ticks=max(3, (size[0] - CHART_LEFT - CHART_RIGHT) // 70))
    return log_chart(lines, size, x_ticks=[(n / x_max, n) for n in range(0, x_max + 1, x_step)],
                     marks=[(number / x_max, label, number) for number, label in marks], axis_title="iteration →")


def log_chart(lines, size, x_ticks, marks=(), axis_title=""):
    """Lines on a log scale, as data for templates/gallery/_chart_svg.html; None when no value can be
    drawn. ``lines``: [{"key", "name", "points": [(x, value, dot title or None)]}], x from 0 (the
    plot's left edge) to 1 (its right edge); a point with a title gets a dot, the title followed by
    its value. ``x_ticks``: [(x, label)]; ``marks``: [(x, label, iteration)], dashed vertical lines.
    Zero, negative and non-finite values cannot be placed and are left out."""
    width, height = size
    plotted = [[point for point in line["points"] if _plottable(point[1])] for line in lines]
    values = [value for points in plotted for _x, value, _title in points]
    if not values:
        return None
    low = math.floor(math.log10(min(values)))
    high = math.ceil(math.log10(max(values)))
    if high == low:
        high += 1
    plot_width = width - CHART_LEFT - CHART_RIGHT
    plot_height = height - CHART_TOP - CHART_BOTTOM

    def x_of(x):
        return round(CHART_LEFT + plot_width * x, 1)

    def y_of(value):
        return round(CHART_TOP + plot_height * (high - math.log10(value)) / (high - low), 1)

    decade_step = max(1, math.ceil((high - low) / 6))
    return {
        "width": width,
        "height": height,
        "left": CHART_LEFT,
        "right": width - CHART_RIGHT,
        "top": CHART_TOP,
        "bottom": height - CHART_BOTTOM,
        "x_label_y": height - CHART_BOTTOM + 16,
        "axis_title_y": height - 4,  # room below for descenders (g, y)
        "axis_title": axis_title,
        "label_y": CHART_TOP + 10,
        "y_ticks": [{"y": y_of(10.0**k), "label": _decade_label(k)} for k in range(low, high + 1, decade_step)],
        "x_ticks": [{"x": x_of(x), "label": label} for x, label in x_ticks],
        "scale_marks": [{"x": x_of(x), "label": label, "number": number} for x, label, number in marks],
        "series": [
            {
                "key": line["key"],
                "name": line["name"],
                "polyline": " ".join(f"{x_of(x)},{y_of(value)}" for x, value, _title in points),
                "dots": [{"x": x_of(x), "y": y_of(value), "title": f"{title}: {format_loss(value)}"}
                         for x, value, title in points if title is not None],
                "last": format_loss(points[-1][1]) if points else "–",
            }
            for line, points in zip(lines, plotted)
        ],
    }


def scale_starts(run, iterations):
    """[(rows, iteration where that size begins)] of a run: its engine's scale plan (coarse to
    fine), checked against the sizes its saved iterations record; one entry for a one-size run."""
    if run.init == run.Init.ITERATION or run.start_rows >= run.rows:
        return [(run.rows, 0)]
    # The engine raises the first size for narrow images; the first saved iteration says by how much.
    first = next((it for it in iterations if it.rows), None)
    start_rows = max(run.start_rows, first.rows) if first is not None and first.number == 0 else run.start_rows
    starts, previous = [], 0
    for size, last in scale_plan(run.rows, start_rows, run.iterations):
        starts.append((size, previous))
        previous = last
    return starts
