"""/api/series/<id>/segmentations/: the SEG series overlaid on a series, and their overlay images.

    GET /api/series/<id>/segmentations/
        [{"series", "label", "segments": [{"number", "label", "color", "category", "type"}], "overlay"}]
    GET /api/series/<id>/segmentations/<seg>/overlay/v<version>-<seg version>/<plane>/<index>.png[?segments=1,3]
        an RGBA PNG the size of that plane image: each shown segment in its colour

Both answer 404 for a series the user may not see, and are audited as image access. An overlay
URL names the versions of both series, so it never changes content (cached by the browser); a
rebuild of either makes new URLs (the old answer 404).
"""

from __future__ import annotations

from django.http import Http404, HttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.services import record_images_view
from studies import selectors, storage
from studies.api.views import AnyAcceptNegotiation
from studies.imaging.planes import VOLUME_PLANES
from studies.services import segmentations

MAX_SEGMENTS_PARAM = 1000  # characters


class SegmentSerializer(serializers.Serializer):
    number = serializers.IntegerField(help_text="SegmentNumber")
    label = serializers.CharField(help_text="SegmentLabel")
    color = serializers.CharField(help_text="#rrggbb, from RecommendedDisplayCIELabValue, else a default palette")
    category = serializers.CharField(help_text="SegmentedPropertyCategoryCodeSequence code meaning")
    type = serializers.CharField(help_text="SegmentedPropertyTypeCodeSequence code meaning")


class SegmentationSerializer(serializers.Serializer):
    series = serializers.IntegerField(help_text="The SEG series' id")
    label = serializers.CharField(help_text="The SEG's SeriesDescription")
    segments = SegmentSerializer(many=True)
    overlay = serializers.CharField(
        help_text="URL template of the overlay images, with {plane} (axial, coronal or sagittal) and {index}; "
        "add ?segments=1,3 for only those segments"
    )


class SegmentationListView(APIView):
    @extend_schema(responses={200: SegmentationSerializer(many=True)})
    def get(self, request, pk: int):
        """The segmentations (DICOM SEG series of the same study) laid onto this series' volume, with
        their segments and the URL template of their overlay images. Empty when there are none."""
        series = selectors.series_visible_to(request.user).filter(pk=pk).select_related("study").first()
        if series is None:
            raise NotFound("No such series.")
        record_images_view(request, series)
        base = reverse("api:series-segmentations", args=[series.pk])
        return Response(segmentations.listing(series, base))


class SegmentationOverlayView(APIView):
    content_negotiation_class = AnyAcceptNegotiation

    @extend_schema(
        operation_id="series_segmentation_overlay",
        parameters=[
            OpenApiParameter("plane", str, OpenApiParameter.PATH, enum=list(VOLUME_PLANES)),
            OpenApiParameter(
                "segments",
                str,
                description="Comma-separated segment numbers to draw (default: all; empty: none)",
            ),
        ],
        responses={
            (200, "image/png"): OpenApiResponse(
                OpenApiTypes.BINARY,
                description="RGBA PNG, the size of the plane image: each segment's inside in its colour at alpha "
                "115/255, its outline opaque, transparent elsewhere.",
            ),
            400: OpenApiResponse(description="segments names a segment this segmentation does not have."),
            404: OpenApiResponse(description="No such series, segmentation, versions, plane or image."),
        },
    )
    def get(self, request, pk: int, seg: int, version: int, seg_version: int, plane: str, index: int):
        """One overlay image of a segmentation on a plane image of the series it segments."""
        series = selectors.visible_series(request.user, pk)
        if series is None:
            raise Http404
        info = segmentations.overlay_info(series, seg, version, seg_version)
        if info is None:
            raise NotFound("No such segmentation of this series at these versions (reload for new URLs).")
        if plane not in VOLUME_PLANES or plane not in (series.planes or {}):
            raise NotFound(f"Overlays are made for the axial, coronal and sagittal planes, not '{plane}'.")
        count = series.planes[plane]["count"]
        if not 0 <= index < count:
            raise NotFound(f"Image {index} does not exist: the {plane} plane has {count} images.")
        shown = parse_segments(request.query_params.get("segments"), [s["number"] for s in info["segments"]])
        record_images_view(request, series)
        try:
            png = segmentations.overlay_png(series, info, plane, index, shown)
        except (FileNotFoundError, storage.StorageUnavailable):
            raise NotFound("This overlay is not stored (any more); reload the page.") from None
        response = HttpResponse(png, content_type="image/png")
        response["Cache-Control"] = "private, max-age=86400, immutable"
        return response


def parse_segments(value: str | None, numbers: list[int]) -> list[int] | None:
    """``?segments=1,3`` as segment numbers (None when absent: all)."""
    if value is None:
        return None
    if len(value) > MAX_SEGMENTS_PARAM:
        raise ValidationError({"detail": "segments is too long."})
    shown = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        if not (part.isascii() and part.isdigit()) or int(part) not in numbers:
            raise ValidationError(
                {"detail": f"'{part[:20]}' is not a segment of this segmentation ({', '.join(map(str, numbers))})."}
            )
        shown.append(int(part))
    return shown
