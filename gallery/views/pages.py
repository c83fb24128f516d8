"""Run grid, compare and crop pages. (Being written: see issue 5.)"""
from django.http import Http404


def run_detail(request, run_id):
    raise Http404("Not built yet.")


def run_download(request, run_id):
    raise Http404("Not built yet.")


def compare(request):
    raise Http404("Not built yet.")
