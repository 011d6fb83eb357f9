"""Values of plane images: the probe (value under a point) and ROI statistics. Thin views over
``studies.services.values``; a series the user may not see is a 404."""

from __future__ import annotations

import math

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from studies import selectors, storage
from studies.imaging.measure import SHAPES
from studies.services import values

COORDINATE_HELP = "in the plane image's pixels: x along a row (column), y down a column (row), pixel centres at 0, 1..."
UNIT_HELP = "HU for CT; SUVbw for PET when the header allows SUV, else the PET Units (BQML, CNTS...); else ''"
SUV_PROBLEM = serializers.CharField(
    allow_null=True, help_text="PET only: why the values are not SUV (no weight, no dose, Units CNTS...); else null"
)
NOT_READY = OpenApiResponse(description="The series is not decoded yet: retry after Retry-After seconds.")
NO_IMAGE = OpenApiResponse(description="No such series visible to you, no such plane, or no such image in it.")


def _number(params, name: str) -> float:
    text = params.get(name)
    if text is None or text == "":
        raise values.MeasureError(f"Give {name} as a number ({COORDINATE_HELP}).")
    try:
        number = float(text)
    except ValueError:
        raise values.MeasureError(f"{name} must be a number, not {text[:40]!r}.") from None
    if not math.isfinite(number):
        raise values.MeasureError(f"{name} must be a finite number.")
    return number


class ValuesView(APIView):
    def get(self, request, pk: int, plane: str, index: int):
        # the image path's one- or two-query form of series_visible_to (same rules)
        series = selectors.visible_series(request.user, pk)
        if series is None:
            raise Http404
        try:
            return Response(self.answer(request, series, plane, index))
        except values.MeasureError as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        except values.NoSuchImage as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_404_NOT_FOUND)
        except (values.NotReady, storage.StorageUnavailable):
            response = Response(
                {"detail": "The images of this series are still being prepared; try again shortly."},
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
            )
            response["Retry-After"] = "1"
            return response


def _coordinate(name: str, what: str) -> OpenApiParameter:
    return OpenApiParameter(name, float, required=True, description=f"{what}, {COORDINATE_HELP}")


class ProbeView(ValuesView):
    @extend_schema(
        operation_id="series_planes_probe",
        parameters=[_coordinate("x", "Column of the point"), _coordinate("y", "Row of the point")],
        responses={
            200: inline_serializer(
                "Probe",
                {
                    "value": serializers.FloatField(help_text="The stored value at the point, in unit"),
                    "unit": serializers.CharField(help_text=UNIT_HELP),
                    "position_mm": serializers.ListField(
                        child=serializers.FloatField(),
                        allow_null=True,
                        help_text="The point in patient coordinates (LPS, mm); null when the image has no geometry",
                    ),
                    "suv_problem": SUV_PROBLEM,
                },
            ),
            400: OpenApiResponse(description="x or y missing, not a number, or off the image; a colour image."),
            404: NO_IMAGE,
            503: NOT_READY,
        },
    )
    def get(self, request, pk: int, plane: str, index: int):
        """The value under a point of one plane image: HU for CT, SUVbw for PET (when its header allows
        it), the stored value otherwise. A volume plane interpolates the voxels around the point."""
        return super().get(request, pk, plane, index)

    def answer(self, request, series, plane, index):
        x, y = _number(request.query_params, "x"), _number(request.query_params, "y")
        return values.probe(request, series, plane, index, x, y)


class RoiView(ValuesView):
    @extend_schema(
        operation_id="series_planes_roi",
        parameters=[
            OpenApiParameter("shape", str, required=True, enum=list(SHAPES), description="The shape of the region"),
            _coordinate("x0", "Column of one corner of the shape's box"),
            _coordinate("y0", "Row of that corner"),
            _coordinate("x1", "Column of the opposite corner"),
            _coordinate("y1", "Row of the opposite corner"),
        ],
        responses={
            200: inline_serializer(
                "RoiStatistics",
                {
                    "mean": serializers.FloatField(),
                    "sd": serializers.FloatField(help_text="Population standard deviation (over n)"),
                    "min": serializers.FloatField(),
                    "max": serializers.FloatField(),
                    "n": serializers.IntegerField(help_text="Pixels whose centres lie inside the shape"),
                    "area_mm2": serializers.FloatField(
                        allow_null=True, help_text="The shape's area on the image; null without pixel spacing"
                    ),
                    "unit": serializers.CharField(help_text=UNIT_HELP),
                    "clipped": serializers.BooleanField(help_text="The shape reaches off the image: cut to it"),
                    "suv_problem": SUV_PROBLEM,
                },
            ),
            400: OpenApiResponse(
                description="Unknown shape, a corner missing or not a number, a shape without area, off the image or "
                "holding no pixel centre; a colour image."
            ),
            404: NO_IMAGE,
            503: NOT_READY,
        },
    )
    def get(self, request, pk: int, plane: str, index: int):
        """Statistics of the stored values (not the displayed PNG) inside an ellipse or rectangle drawn on
        one plane image, in the series' unit (SUVbw for PET when its header allows it)."""
        return super().get(request, pk, plane, index)

    def answer(self, request, series, plane, index):
        params = request.query_params
        shape = params.get("shape", "")
        if shape not in SHAPES:
            raise values.MeasureError(f"shape must be one of: {', '.join(SHAPES)}.")
        corners = [_number(params, name) for name in ("x0", "y0", "x1", "y1")]
        return values.roi(request, series, plane, index, shape, *corners)
