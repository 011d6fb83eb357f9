"""Rate limits on sign-in, password reset, token creation and uploads: a fixed-window counter per
client in the shared cache (so the limit holds across all server processes). Rates are
"N/second|minute|hour|day".
"""

from __future__ import annotations

import hashlib
import time

from django.conf import settings
from django.core.cache import cache
from django.http import JsonResponse
from django.shortcuts import render
from rest_framework.throttling import BaseThrottle

PERIODS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    count, _, period = rate.partition("/")
    return int(count), PERIODS[period.strip().rstrip("s")]


def client_key(request) -> str:
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return f"ip:{request.META.get('REMOTE_ADDR', '')}"


def hit(scope: str, key: str) -> int | None:
    """Count one request; None if allowed, else the seconds until the window ends."""
    rate = settings.RATE_LIMITS.get(scope)
    if not rate:
        return None
    limit, period = parse_rate(rate)
    now = time.time()
    window = f"ratelimit:{scope}:{key}:{int(now // period)}"
    cache.add(window, 0, period + 1)
    try:
        count = cache.incr(window)
    except ValueError:  # expired between add and incr
        cache.set(window, 1, period + 1)
        count = 1
    return None if count <= limit else max(1, int(period - now % period))


class UnsafeMethodRateThrottle(BaseThrottle):
    """DRF throttle for a view's writes (its ``throttle_scope``); reads are never limited."""

    def allow_request(self, request, view):
        self.wait_seconds = None
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return True
        self.wait_seconds = hit(view.throttle_scope, client_key(request))
        return self.wait_seconds is None

    def wait(self):
        return self.wait_seconds


class LoginRateLimitMiddleware:
    """Form posts that try passwords or send mail, per client address: sign-in (the site's and the
    admin's, one budget), sign-up, and password reset, which is also limited per e-mail address
    asked for, however many clients ask (django-axes locks sign-ins per account)."""

    LOGIN_VIEWS = {"login", "signup", "admin:login"}  # by view name: whatever the URL prefix
    RESET_VIEW = "password_reset"

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.method != "POST":
            return None
        refusal = self.refusal(request, request.resolver_match.view_name)
        if refusal is None:
            return None
        wait, message = refusal
        context = {"message": f"{message} Try again in {wait} seconds."}
        if request.resolver_match.view_name == self.RESET_VIEW:
            context["heading"] = "Password reset paused"
        response = render(request, "registration/lockout.html", context, status=429)
        response["Retry-After"] = str(wait)
        return response

    def refusal(self, request, view: str) -> tuple[int, str] | None:
        address = f"ip:{request.META.get('REMOTE_ADDR', '')}"
        if view in self.LOGIN_VIEWS:
            wait = hit("login", address)
            return None if wait is None else (wait, "Too many sign-in attempts from your address.")
        if view != self.RESET_VIEW:
            return None
        wait = hit("password_reset", address)
        if wait is not None:
            return wait, "Too many password reset requests from your address."
        # the form matches e-mail addresses without regard to case or surrounding blanks
        email = str(request.POST.get("email", "")).strip().lower()
        wait = hit("password_reset_account", "email:" + hashlib.sha256(email.encode()).hexdigest())
        return None if wait is None else (wait, "Too many password reset requests for this account.")


def too_many(wait: int) -> JsonResponse:
    response = JsonResponse({"detail": f"Too many requests. Try again in {wait} seconds."}, status=429)
    response["Retry-After"] = str(wait)
    return response
