"""The REST API. Querysets come from selectors, so a user only ever reaches their own data."""

from __future__ import annotations

import math

from django.http import FileResponse, HttpResponseNotModified
from django.shortcuts import get_object_or_404
from rest_framework import mixins, status, viewsets
from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.models import AuditEvent
from audit.services import record, record_images_view
from studies import selectors, storage
from studies.api import serializers
from studies.imaging.render import Window
from studies.services import rendering
from studies.services.uploads import InvalidUpload, SizeLimitHandler, upload_create


class AnyAcceptNegotiation(DefaultContentNegotiation):
    """Image endpoints answer PNG whatever the Accept header says; errors come back as JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class UploadViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = serializers.UploadSerializer
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self):
        return selectors.uploads_visible_to(self.request.user).prefetch_related("studies")

    def get_serializer_class(self):
        return serializers.UploadCreateSerializer if self.action == "create" else serializers.UploadSerializer

    def initialize_request(self, request, *args, **kwargs):
        if request.method == "POST":
            storage.tmp_dir()
            request.upload_handlers.insert(0, SizeLimitHandler(request))
        return super().initialize_request(request, *args, **kwargs)

    def create(self, request, *args, **kwargs):
        try:
            uploaded = request.data.get("file")
        except ParseError:
            uploaded = None
        if getattr(request._request, "upload_too_large", False):
            from django.conf import settings

            return Response(
                {"detail": f"The upload is larger than the limit of {settings.MAX_UPLOAD_BYTES:,} bytes."},
                status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        if uploaded is None or isinstance(uploaded, str):
            raise ValidationError({"file": ["Send the ZIP archive in the multipart field 'file'."]})
        try:
            upload = upload_create(owner=request.user, uploaded=uploaded)
        except InvalidUpload as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        record(AuditEvent.Action.UPLOAD_RECEIVED, request=request, obj=upload, detail={"size_bytes": upload.size_bytes})
        body = serializers.UploadSerializer(upload, context={"request": request}).data
        return Response({"id": upload.pk, "status": upload.status, "url": body["url"]}, status=status.HTTP_202_ACCEPTED)


class StudyViewSet(viewsets.ReadOnlyModelViewSet):
    def get_queryset(self):
        queryset = selectors.studies_visible_to(self.request.user).select_related("patient")
        if self.action == "retrieve":
            queryset = queryset.prefetch_related("series")
        return queryset.order_by("-study_date", "-id")

    def get_serializer_class(self):
        return serializers.StudyDetailSerializer if self.action == "retrieve" else serializers.StudySerializer

    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        filters = sorted(key for key in request.query_params if key not in ("page", "page_size", "format"))
        action = AuditEvent.Action.STUDY_SEARCH if filters else AuditEvent.Action.STUDY_LIST
        record(action, request=request, detail={"filters": filters, "results": response.data.get("count")})
        return response

    def retrieve(self, request, *args, **kwargs):
        response = super().retrieve(request, *args, **kwargs)
        record(AuditEvent.Action.STUDY_VIEW, request=request, obj=self.get_object())
        return response


class SeriesViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    serializer_class = serializers.SeriesSerializer

    def get_queryset(self):
        return selectors.series_visible_to(self.request.user)

    def retrieve(self, request, *args, **kwargs):
        series = self.get_object()
        record(AuditEvent.Action.SERIES_VIEW, request=request, obj=series, detail={"study_id": series.study_id})
        return Response(self.get_serializer(series).data)


def parse_window(params) -> Window | None:
    wc, ww = params.get("wc"), params.get("ww")
    if wc is None and ww is None:
        return None
    try:
        center, width = float(wc), float(ww)
    except (TypeError, ValueError):
        raise ValidationError({"detail": "wc and ww must both be numbers (window centre and width)."}) from None
    if not (math.isfinite(center) and math.isfinite(width)) or width <= 0:
        raise ValidationError({"detail": "ww must be a positive number and wc a finite one."})
    return Window(round(center, 2), round(width, 2))


def png_response(request, path, etag: str, current: bool) -> FileResponse | HttpResponseNotModified:
    if request.headers.get("If-None-Match") == etag:
        response = HttpResponseNotModified()
    else:
        response = FileResponse(open(path, "rb"), content_type="image/png")
    response["ETag"] = etag
    # Browsers may keep images; shared caches never. Versioned URLs (?v=) may be kept a day.
    response["Cache-Control"] = "private, max-age=86400" if current else "private, no-cache"
    return response


class ImageView(APIView):
    content_negotiation_class = AnyAcceptNegotiation

    def series(self, request, pk):
        series = get_object_or_404(selectors.series_visible_to(request.user), pk=pk)
        record_images_view(request, series)
        return series

    @staticmethod
    def current(request, series) -> bool:
        return request.query_params.get("v") == str(series.render_version)


class PlaneImageView(ImageView):
    def get(self, request, pk: int, plane: str, index: int):
        series = self.series(request, pk)
        window = parse_window(request.query_params)
        key = f"{window.center}/{window.width}" if window else "default"
        etag = f'"{series.pk}-{series.render_version}-{plane}-{index}-{key}"'
        if request.headers.get("If-None-Match") == etag:
            return png_response(request, None, etag, self.current(request, series))
        try:
            path = rendering.image_file(series, plane, index, window)
        except KeyError:
            available = ", ".join(series.planes) or "none yet"
            return Response({"detail": f"This series has no '{plane}' plane (available: {available})."}, status=404)
        except IndexError:
            count = series.planes[plane]["count"]
            return Response(
                {"detail": f"Image {index} does not exist: the {plane} plane has {count} images."}, status=404
            )
        except rendering.NotReady:
            response = Response(
                {"detail": "The images of this series are still being prepared; try again shortly."},
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
            )
            response["Retry-After"] = "1"
            return response
        return png_response(request, path, etag, self.current(request, series))


class ThumbnailView(ImageView):
    def get(self, request, pk: int):
        series = self.series(request, pk)
        path = storage.thumbnail_path(series.pk, series.render_version)
        if not path.exists():
            response = Response(
                {"detail": "The thumbnail of this series is not ready yet."}, status=status.HTTP_503_SERVICE_UNAVAILABLE
            )
            response["Retry-After"] = "1"
            return response
        etag = f'"{series.pk}-{series.render_version}-thumb"'
        return png_response(request, path, etag, self.current(request, series))
