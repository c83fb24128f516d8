"""The site's own "Not found" page, with DEBUG on too.

`make run` runs with DEBUG on, and a new user meets a 404 in ordinary use: Back after deleting a run
or a project, an old link, another person's private project. Django's technical 404 (the URL
patterns, "You're seeing this error because you have DEBUG = True") reads as a broken site; a view's
Http404 gets templates/404.html instead, as it does with DEBUG off. An address no URL pattern
matches still gets Django's page with DEBUG on (it is raised before any view).
"""
from django.http import Http404, HttpResponseNotFound
from django.template import loader


class NotFoundPage:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, Http404):
            return HttpResponseNotFound(loader.render_to_string("404.html", request=request))
        return None
