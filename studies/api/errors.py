"""JSON errors on API paths: DRF's handler for API exceptions, JSON 404/500 for the rest."""

from django.http import JsonResponse
from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc, context):
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(response.data, dict) and "detail" in response.data:
        response.data = {**response.data, "detail": _text(response.data["detail"])}
    elif isinstance(response.data, dict):  # field errors: keep them, and say it in one line too
        summary = "; ".join(f"{field}: {_text(errors)}" for field, errors in response.data.items())
        response.data = {**response.data, "detail": f"Invalid input. {summary}"}
    elif isinstance(response.data, list):
        response.data = {"detail": _text(response.data)}
    return response


def _text(value) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(_text(item) for item in value)
    if isinstance(value, dict):
        return "; ".join(f"{key}: {_text(item)}" for key, item in value.items())
    return str(value)


def is_api_path(request) -> bool:
    return request.path.startswith(("/api/", "/dicomweb/", "/healthz"))


def json_error(status: int, detail: str) -> JsonResponse:
    return JsonResponse({"detail": detail}, status=status)
