"""Template filters for numbers, so pages and live fragments format them with gallery.display alone."""
from django import template

from gallery import display

register = template.Library()
register.filter("loss", display.format_loss)
register.filter("duration", display.format_duration)
