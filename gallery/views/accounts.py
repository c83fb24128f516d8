from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.db import transaction
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from gallery import signups
from gallery.forms import SignupForm


@login_not_required
def signup(request):
    if request.user.is_authenticated:
        return redirect("project_list")
    form = SignupForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            wait = signups.wait_before_signup(request)
            if wait is None:
                user = form.save()
                signups.record_signup(request)
        if wait is None:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, f"Welcome, {user.username}. Start by creating a project.")
            return redirect("project_list")
        form.add_error(None, f"Too many accounts were made from your network in the last hour. "
                             f"Try again in {signups.wait_text(wait)}.")
        status = 429
    return render(request, "registration/signup.html", {"form": form}, status=status)


THEMES = ("light", "dark")
THEME_COOKIE_SECONDS = 365 * 24 * 3600


@login_not_required
@require_POST
def set_theme(request):
    """Remember the light or dark theme in a cookie (anything else: follow the system again);
    base.html reads it, so the page is drawn in the chosen theme from the first paint."""
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        target = "/"
    response = redirect(target)
    theme = request.POST.get("theme")
    if theme in THEMES:
        response.set_cookie("theme", theme, max_age=THEME_COOKIE_SECONDS, samesite="Lax", secure=request.is_secure())
    else:
        response.delete_cookie("theme")
    return response


class LogoutView(auth_views.LogoutView):
    """Log out, and say so on the log-in page it leads to (else that page looks as if nothing happened)."""

    def post(self, request, *args, **kwargs):
        was_logged_in = request.user.is_authenticated
        response = super().post(request, *args, **kwargs)
        if was_logged_in:
            messages.info(request, "You have logged out.")
        return response


def csrf_failure(request, reason=""):
    """A form refused for its CSRF token (CSRF_FAILURE_VIEW): most often a page left open in another tab
    while its user logged out and in again, which changes the token. The site's own page, saying what
    to do, instead of Django's (with DEBUG on, its help for developers)."""
    return render(request, "403_csrf.html", status=403)
