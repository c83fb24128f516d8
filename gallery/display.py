"""How runs' numbers are shown: losses and durations as text, and the loss curves as SVG data.

The chart is computed here and drawn by templates/gallery/_loss_chart.html, so the pages need no
chart library and work offline.
"""
import math


def format_loss(value):
    """Losses span many decades: three significant digits, 1.23e5 rather than 1.23e+05."""
    if value is None:
        return "–"
    if not math.isfinite(value):
        return "diverged"
    text = f"{value:.3g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text


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
# Loss chart: four series on a log scale, as data for templates/gallery/_loss_chart.html.

CHART_SERIES = (
    ("loss", "Total", "total"),
    ("content_loss", "Content", "content"),
    ("style_loss", "Style", "style"),
    ("tv_loss", "Total variation", "tv"),
)
CHART_WIDTH, CHART_HEIGHT = 640, 250
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


def loss_chart(iterations, last_number):
    """Polylines, dots and axis ticks for the loss curves; None when there is nothing to draw.

    Losses are drawn on a log scale (they fall by orders of magnitude); zero, negative and
    non-finite values cannot be placed on it and are left out.
    """
    points = {}
    for field, _name, _key in CHART_SERIES:
        points[field] = [
            (it.number, getattr(it, field))
            for it in iterations
            if getattr(it, field) is not None and math.isfinite(getattr(it, field)) and getattr(it, field) > 0
        ]
    values = [value for series in points.values() for _number, value in series]
    if not values:
        return None
    low = math.floor(math.log10(min(values)))
    high = math.ceil(math.log10(max(values)))
    if high == low:
        high += 1
    x_max = max([last_number, 1] + [it.number for it in iterations])
    plot_width = CHART_WIDTH - CHART_LEFT - CHART_RIGHT
    plot_height = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM

    def x_of(number):
        return round(CHART_LEFT + plot_width * number / x_max, 1)

    def y_of(value):
        return round(CHART_TOP + plot_height * (high - math.log10(value)) / (high - low), 1)

    decade_step = max(1, math.ceil((high - low) / 6))
    y_ticks = [{"y": y_of(10.0**k), "label": _decade_label(k)} for k in range(low, high + 1, decade_step)]
    x_step = _nice_step(x_max)
    x_ticks = [{"x": x_of(n), "label": n} for n in range(0, x_max + 1, x_step)]
    series = []
    for field, name, key in CHART_SERIES:
        dots = [
            {"x": x_of(number), "y": y_of(value), "title": f"{name} loss at iteration {number}: {format_loss(value)}"}
            for number, value in points[field]
        ]
        series.append(
            {
                "key": key,
                "name": name,
                "polyline": " ".join(f"{dot['x']},{dot['y']}" for dot in dots),
                "dots": dots,
                "last": format_loss(points[field][-1][1]) if points[field] else "–",
            }
        )
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "left": CHART_LEFT,
        "right": CHART_WIDTH - CHART_RIGHT,
        "top": CHART_TOP,
        "bottom": CHART_HEIGHT - CHART_BOTTOM,
        "x_label_y": CHART_HEIGHT - CHART_BOTTOM + 16,
        "axis_title_y": CHART_HEIGHT - 2,
        "y_ticks": y_ticks,
        "x_ticks": x_ticks,
        "series": series,
    }
