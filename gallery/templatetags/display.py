"""Template filters, so pages and live fragments format numbers with gallery.display alone."""
from django import template
from django.utils.html import escape
from django.utils.safestring import mark_safe

from gallery import display
from gallery.quotas import format_bytes

register = template.Library()
register.filter("loss", display.format_loss)
register.filter("duration", display.format_duration)
register.filter("bytes", format_bytes)


@register.filter
def breakable(label):
    """A run label that may wrap after its underscores (0.01_0.3_1_<wbr>…), never inside a number."""
    return mark_safe(escape(label).replace("_", "_<wbr>"))
