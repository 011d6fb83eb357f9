"""Security headers and the answer to a locked-out login."""

from __future__ import annotations

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render


def image_origins() -> str:
    """Where else than this site browsers fetch images from: with storage in a bucket that is not
    behind this site's own address, its origin (the viewer fetches presigned object URLs)."""
    from urllib.parse import urlsplit

    if not settings.AWS_STORAGE_BUCKET_NAME:
        return ""
    endpoint = settings.IMAGE_URL_S3_ENDPOINT or settings.AWS_S3_ENDPOINT_URL
    if endpoint:
        parts = urlsplit(endpoint)
        return f" {parts.scheme}://{parts.netloc}"
    return " https://*.amazonaws.com"


CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        f"img-src 'self' data: blob:{image_origins()}",
        "font-src 'self' data:",
        f"connect-src 'self'{image_origins()}",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
# The interactive API docs (Swagger UI) start from an inline script.
CSP_API_DOCS = CSP.replace("script-src 'self'", "script-src 'self' 'unsafe-inline'")
# OHIF (/ohif/ only) compiles its image codecs from WebAssembly and runs web workers, some made from
# blob: URLs. It also builds functions from strings: its JPEG 2000 and JPEG-LS decoders (Emscripten's
# embind, in the decoding workers) and the ndarray code that reads a DICOM SEG (in the page), so it
# needs 'unsafe-eval'. It still loads nothing from another origin and runs no inline script.
CSP_OHIF = (
    CSP.replace("script-src 'self'", "script-src 'self' 'unsafe-eval' 'wasm-unsafe-eval'") + "; worker-src 'self' blob:"
)


class ContentSecurityPolicyMiddleware:
    """Our pages load scripts, styles and images from this server only."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = CSP_API_DOCS if request.path.startswith("/api/docs") else CSP
        return response


def lockout_response(request, original_response=None, credentials=None):
    """django-axes: too many failed logins. JSON on API paths, a page elsewhere."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    message = f"Too many failed sign-in attempts. Try again in {minutes} minutes."
    if request.path.startswith(("/api/", "/dicomweb/")):
        return JsonResponse({"detail": message}, status=429)
    return render(request, "registration/lockout.html", {"message": message}, status=429)


class LockoutBackend(AxesStandaloneBackend):
    """django-axes' lockout check, for sign-ins that come with a request (the login page, the API
    token endpoint). Calls without a request (management commands, test logins) have no client
    to lock out and go straight to the password check."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


# django-axes keeps the attempted username in a 255-character column; PostgreSQL refuses longer
# values (SQLite does not check), so a hostile sign-in with a huge name would end in a 500.
AXES_USERNAME_LIMIT = 255


def lockout_username(request, credentials=None):
    """The username django-axes records for a sign-in attempt, cut to what its table holds."""
    source = credentials if credentials else getattr(request, "data", request.POST)
    username = source.get(settings.AXES_USERNAME_FORM_FIELD) if source else None
    if username is None:
        return None
    return str(username)[:AXES_USERNAME_LIMIT]


def client_address(request) -> str | None:
    """django-axes: the client's address as dicomviewer.front set it from trusted proxies (never a
    forwarded header a client wrote itself)."""
    return request.META.get("REMOTE_ADDR") or None
