"""Launching, cancelling and watching runs. (Being written: see issue 4.)"""
from django.http import Http404


def run_create(request, project_id):
    raise Http404("Not built yet.")


def run_progress(request, run_id):
    raise Http404("Not built yet.")


def run_cancel(request, run_id):
    raise Http404("Not built yet.")
