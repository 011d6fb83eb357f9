"""JSON errors on API paths: DRF's handler for API exceptions, JSON 404/500 for the rest."""

from django.http import JsonResponse
from rest_framework.views import exception_handler as drf_exception_handler


def exception_handler(exc, context):
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, dict) and "detail" in response.data:
        response.data = {"detail": str(response.data["detail"])}
    return response


def is_api_path(request) -> bool:
    return request.path.startswith(("/api/", "/dicomweb/", "/healthz"))


def json_error(status: int, detail: str) -> JsonResponse:
    return JsonResponse({"detail": detail}, status=status)
