"""Sign-up throttling: at most SIGNUP_LIMIT_PER_HOUR accounts from one client address an hour.

Every per-user limit (queued runs, storage, the fair queue's turns) is per account, so making
accounts must cost something. The embedded defaults have no shared cache (django-ratelimit needs
memcached or Redis), so the count lives in the database: one row per account made, holding a keyed
hash of the address (not the address) and kept only as long as the window.
"""
import hashlib
import hmac
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from gallery.models import Signup

WINDOW = timedelta(hours=1)


def client_address(request):
    """The client's address: REMOTE_ADDR, or behind the trusted proxy (BEHIND_HTTPS_PROXY) the
    address it appended to X-Forwarded-For (the last one; those before it came from the client).
    django-axes reads it too (AXES_CLIENT_IP_CALLABLE), so log-in locks are per client there."""
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "") if settings.BEHIND_HTTPS_PROXY else ""
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    return hops[-1] if hops else request.META.get("REMOTE_ADDR", "")


def _address_key(request):
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, client_address(request).encode(), hashlib.sha256).hexdigest()[:32]


def wait_before_signup(request):
    """None while this address may make another account, else how long until it may."""
    limit = settings.SIGNUP_LIMIT_PER_HOUR
    if not limit:
        return None
    now = timezone.now()
    Signup.objects.filter(created__lt=now - WINDOW).delete()
    recent = Signup.objects.filter(address=_address_key(request)).order_by("-created")
    times = list(recent.values_list("created", flat=True)[:limit])
    if len(times) < limit:
        return None
    return times[-1] + WINDOW - now


def record_signup(request):
    Signup.objects.create(address=_address_key(request))


def wait_text(wait):
    minutes = max(1, -(-int(wait.total_seconds()) // 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
