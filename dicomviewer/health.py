"""Health check and error handlers that answer JSON on API paths."""

from django.conf import settings
from django.db import connection
from django.http import JsonResponse
from django.views.defaults import page_not_found
from django.views.defaults import server_error as html_server_error

from studies.api.errors import is_api_path, json_error


def health_checks() -> tuple[bool, dict]:
    """Database, broker and storage, each "ok" or "error: <why>" (answered at /healthz by
    dicomviewer.front, whatever the Host)."""
    checks = {"database": _database(), "broker": _broker(), "storage": _storage()}
    healthy = all(value == "ok" for value in checks.values())
    return healthy, {"status": "ok" if healthy else "error", **checks}


def healthz(request):
    healthy, body = health_checks()
    return JsonResponse(body, status=200 if healthy else 503)


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}"


def _storage() -> str:
    from studies import storage

    try:
        storage.check()
        return "ok"
    except storage.StorageUnavailable as exc:
        return f"error: {exc}"
    except Exception as exc:
        return f"error: {type(exc).__name__}"


def _broker() -> str:
    from dicomviewer.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            if settings.CELERY_BROKER_URL.startswith("filesystem://"):
                folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]
                from pathlib import Path

                Path(folder).mkdir(parents=True, exist_ok=True)
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}"


def not_found(request, exception=None):
    if is_api_path(request):
        return json_error(404, "Not found.")
    return page_not_found(request, exception)


def server_error(request):
    if is_api_path(request):
        return json_error(500, "Internal server error.")
    return html_server_error(request)
