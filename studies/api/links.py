"""/api/studies/<id>/links/: the owner makes, lists and revokes share links (studies.services.links).
The link's URL holds its secret and is answered once, by the POST that makes it; lists never
carry it (only a hash of it is stored)."""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from studies import selectors
from studies.api.shares import FORBIDDEN, editable_study
from studies.models import ShareLink
from studies.services import links


class LinkSerializer(serializers.ModelSerializer):
    expires = serializers.DateTimeField(source="expires_at", read_only=True)
    created = serializers.DateTimeField(source="created_at", read_only=True)
    state = serializers.SerializerMethodField(help_text="active, expired or revoked")
    last_used = serializers.DateTimeField(source="last_used_at", read_only=True, allow_null=True)

    class Meta:
        model = ShareLink
        fields = ["id", "label", "deidentified", "created", "expires", "revoked_at", "state", "use_count", "last_used"]

    def get_state(self, link) -> str:
        return link.state_at(timezone.now()).value


class LinkCreatedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.URLField(help_text="The link, with its secret: answered this once, never again.")
    expires = serializers.DateTimeField()
    deidentified = serializers.BooleanField()
    label = serializers.CharField()


class LinkCreateSerializer(serializers.Serializer):
    expires_in_hours = serializers.IntegerField(
        required=False,
        help_text="Hours until the link stops working (SHARE_LINK_DEFAULT_HOURS if not given; "
        "at most SHARE_LINK_MAX_DAYS days).",
    )
    deidentified = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Hide patient name, ID, birth date, accession number, institution and referring "
        "physician on the link's pages, and the tag browser.",
    )
    label = serializers.CharField(
        required=False, allow_blank=True, max_length=links.LABEL_MAX, default="", help_text="Your note."
    )

    def validate_expires_in_hours(self, value):
        if not 1 <= value <= links.max_hours():
            raise ValidationError(f"Between 1 and {links.max_hours()} ({settings.SHARE_LINK_MAX_DAYS} days).")
        return value


class StudyLinksView(APIView):
    @extend_schema(operation_id="study_links_list", responses={200: LinkSerializer(many=True), 403: FORBIDDEN})
    def get(self, request, pk: int):
        study = editable_study(request, pk)
        return Response(LinkSerializer(selectors.links_of_study(request.user, study), many=True).data)

    @extend_schema(
        operation_id="study_links_create",
        request=LinkCreateSerializer,
        responses={201: LinkCreatedSerializer, 400: OpenApiResponse(description="Bad input."), 403: FORBIDDEN},
    )
    def post(self, request, pk: int):
        study = editable_study(request, pk)
        body = LinkCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            link, token = links.link_create(study=study, by=request.user, request=request, **body.validated_data)
        except links.LinkError as exc:
            raise ValidationError({"detail": str(exc)}) from None
        answer = {
            "id": link.pk,
            "url": request.build_absolute_uri(reverse("viewer:link", args=[token])),
            "expires": link.expires_at,
            "deidentified": link.deidentified,
            "label": link.label,
        }
        return Response(LinkCreatedSerializer(answer).data, status=status.HTTP_201_CREATED)


class StudyLinkView(APIView):
    @extend_schema(
        operation_id="study_links_revoke",
        responses={204: OpenApiResponse(description="The link is revoked (or was already)."), 403: FORBIDDEN},
    )
    def delete(self, request, pk: int, link_id: int):
        study = editable_study(request, pk)
        link = get_object_or_404(selectors.links_of_study(request.user, study), pk=link_id)
        links.link_revoke(link=link, by=request.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)
