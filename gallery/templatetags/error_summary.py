"""The error summary of a page whose form the server refused: templates/gallery/_error_summary.html."""
from django import template

register = template.Library()


@register.inclusion_tag("gallery/_error_summary.html")
def error_summary(*forms, messages=()):
    """Every error of the page's forms, in the order the page shows them: ``messages`` and the forms'
    form-wide errors as text, each field's errors as links to the field. A form may name ``summary_field``
    (its form-wide errors then link to that field) and ``summary_place`` (words that tell its fields
    apart from another form's of the same label, "across the matrix")."""
    general, links = list(messages), []
    for form in forms:
        place = getattr(form, "summary_place", "")
        anchor = getattr(form, "summary_field", None)
        for message in form.non_field_errors():
            if anchor:
                links.append({"id": form[anchor].id_for_label, "label": place.capitalize(), "message": message})
            else:
                general.append(message)
        for field in form:
            if field.is_hidden:
                general.extend(field.errors)
                continue
            label = f"{field.label} ({place})" if place else field.label
            links.extend({"id": field.id_for_label, "label": label, "message": message} for message in field.errors)
    return {"general": general, "links": links}
