"""POST /api/studies/<id>/anonymise/: an anonymised copy of a study (PS3.15 Annex E Basic Profile
and the chosen options) ingested as a new upload of the requesting user. Anyone who may see the
study may do it, as they may download it: the copy is theirs and carries no identifying data."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from dicomviewer.ratelimit import UnsafeMethodRateThrottle
from studies import selectors
from studies.api.serializers import UploadSerializer
from studies.services import deid
from studies.services.archives import members_of
from studies.services.uploads import InvalidUpload


class AnonymiseSerializer(serializers.Serializer):
    options = serializers.ListField(
        child=serializers.ChoiceField(choices=deid.OPTION_NAMES),
        required=False,
        help_text="Profile options: " + ", ".join(deid.OPTION_NAMES) + " (a list, or one comma-separated string).",
    )


class AnonymisedSerializer(serializers.Serializer):
    upload = UploadSerializer()
    files = serializers.IntegerField(help_text="De-identified files handed to the ingest.")
    left_out = serializers.ListField(child=serializers.DictField(), help_text="Files left out, and why.")


def options_from(data) -> deid.Options:
    raw = data.getlist("options") if hasattr(data, "getlist") else data.get("options", [])
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        raise ValidationError({"detail": "options must be a list of option names (or one comma-separated string)."})
    try:
        return deid.Options.parse([name for item in raw for name in item.split(",")])
    except deid.DeidError as exc:
        raise ValidationError({"detail": str(exc)}) from None


class StudyAnonymiseView(APIView):
    parser_classes = [JSONParser, FormParser, MultiPartParser]
    throttle_classes = [UnsafeMethodRateThrottle]
    throttle_scope = "upload"  # a copy is an upload

    @extend_schema(
        request=AnonymiseSerializer,
        responses={
            202: AnonymisedSerializer,
            400: OpenApiResponse(description="An unknown option, every file left out, or a copy too large."),
            404: OpenApiResponse(description="No such study visible to you."),
        },
    )
    def post(self, request, pk: int):
        study = get_object_or_404(selectors.studies_visible_to(request.user), pk=pk)
        if not isinstance(request.data, dict):
            raise ValidationError({"detail": "Send a JSON object (or a form) with 'options'."})
        options = options_from(request.data)
        members = members_of(selectors.instances_visible_to(request.user).filter(series__study=study))
        try:
            upload, summary = deid.deid_copy(
                study=study, members=members, options=options, user=request.user, request=request
            )
        except (deid.DeidError, InvalidUpload) as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_400_BAD_REQUEST)
        body = {
            "upload": UploadSerializer(upload, context={"request": request}).data,
            "files": summary.files,
            "left_out": summary.left_out,
        }
        return Response(body, status=status.HTTP_202_ACCEPTED)
