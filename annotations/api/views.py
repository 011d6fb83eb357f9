"""/api/series/<id>/annotations/: the signed-in user's own measurements on a series they may see,
and their export as a DICOM SR Measurement Report. A series out of sight (never shared, or shared
no longer) is a 404, and so is another user's measurement."""

from __future__ import annotations

from django.http import Http404, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.response import Response
from rest_framework.views import APIView

from annotations import selectors, services
from annotations.api.serializers import AnnotationSerializer, AnnotationUpdateSerializer
from annotations.measure import MeasureError

BAD = OpenApiResponse(description="Invalid measurement: `detail` says why (point count, off the image, no area...).")
GONE = OpenApiResponse(description="No such series visible to you, or no such measurement of yours.")


class AnyAccept(DefaultContentNegotiation):
    """The SR answers application/dicom whatever Accept says; errors are JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class AnnotationsView(APIView):
    @extend_schema(responses={200: AnnotationSerializer(many=True), 404: GONE})
    def get(self, request, pk: int):
        """Your measurements on this series, oldest first (not paged: at most 500 per series)."""
        series = selectors.visible_series_or_404(request.user, pk)
        annotations = selectors.annotations_of(request.user, series)
        return Response(AnnotationSerializer(annotations, many=True).data)

    @extend_schema(request=AnnotationSerializer, responses={201: AnnotationSerializer, 400: BAD, 404: GONE})
    def post(self, request, pk: int):
        """Save a measurement drawn on one image of the series."""
        series = selectors.visible_series_or_404(request.user, pk)
        serializer = AnnotationSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            annotation = services.annotation_create(
                request=request,
                series=series,
                kind=data["kind"],
                plane=data["plane"],
                index=data["index"],
                pixels=data["pixels"],
                label=data.get("label", ""),
                values=data.get("values"),
            )
        except MeasureError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        return Response(AnnotationSerializer(annotation).data, status=status.HTTP_201_CREATED)


class AnnotationView(APIView):
    def annotation(self, request, pk, aid):
        series = selectors.visible_series_or_404(request.user, pk)
        annotation = selectors.annotations_of(request.user, series).filter(pk=aid).first()
        if annotation is None:
            raise Http404
        return annotation

    @extend_schema(responses={200: AnnotationSerializer, 404: GONE})
    def get(self, request, pk: int, aid: int):
        return Response(AnnotationSerializer(self.annotation(request, pk, aid)).data)

    @extend_schema(request=AnnotationUpdateSerializer, responses={200: AnnotationSerializer, 400: BAD, 404: GONE})
    def patch(self, request, pk: int, aid: int):
        """Change the label (the only part that is not a measurement)."""
        annotation = self.annotation(request, pk, aid)
        serializer = AnnotationUpdateSerializer(annotation, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        services.annotation_update(annotation, label=serializer.validated_data.get("label", annotation.label))
        return Response(AnnotationSerializer(annotation).data)

    @extend_schema(responses={204: OpenApiResponse(description="Deleted."), 404: GONE})
    def delete(self, request, pk: int, aid: int):
        services.annotation_delete(request=request, annotation=self.annotation(request, pk, aid))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ReportView(APIView):
    content_negotiation_class = AnyAccept

    @extend_schema(
        operation_id="series_annotations_report",
        responses={
            (200, "application/dicom"): OpenApiResponse(
                OpenApiTypes.BINARY,
                description="A Comprehensive 3D SR with one TID 1500 Measurement Report of your measurements.",
            ),
            400: OpenApiResponse(description="The series has no stored images to refer to."),
            404: GONE,
        },
    )
    def get(self, request, pk: int):
        """Your measurements on this series as a DICOM SR Measurement Report (TID 1500), for OHIF and
        other viewers and archives."""
        series = selectors.visible_series_or_404(request.user, pk)
        annotations = selectors.annotations_of(request.user, series)
        try:
            body = services.report_create(request=request, series=series, annotations=annotations)
        except MeasureError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        response = HttpResponse(body, content_type="application/dicom")
        response["Content-Disposition"] = f'attachment; filename="measurements-series-{series.pk}.dcm"'
        response["Cache-Control"] = "private, no-store"
        return response
