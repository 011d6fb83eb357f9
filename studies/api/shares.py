"""/api/studies/<id>/shares/: the owner lists, adds and takes back read-only shares."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from studies import selectors
from studies.models import StudyShare
from studies.services.sharing import ShareConflict, ShareError, ShareTargetMissing, share_add, share_remove


class ShareSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True, allow_null=True, default=None)
    group = serializers.CharField(source="group.name", read_only=True, allow_null=True, default=None)

    class Meta:
        model = StudyShare
        fields = ["id", "username", "group", "created_at"]


class ShareCreateSerializer(serializers.Serializer):
    username = serializers.CharField(
        required=False, allow_blank=True, max_length=150, help_text="Share with this user (or give group)."
    )
    group = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=150,
        help_text="Share with every member of this group (or give username).",
    )


class ShareWithUser(serializers.Serializer):
    username = serializers.CharField(max_length=150, help_text="Share with this user.")


class ShareWithGroup(serializers.Serializer):
    group = serializers.CharField(max_length=150, help_text="Share with every member of this group.")


# what the schema promises: exactly one of the two (ShareCreateSerializer reads either at run time)
SHARE_REQUEST = PolymorphicProxySerializer(
    component_name="ShareCreate", serializers=[ShareWithUser, ShareWithGroup], resource_type_field_name=None
)

FORBIDDEN = OpenApiResponse(description="Visible to you, but only its owner may change who sees it.")


def editable_study(request, pk):
    study = get_object_or_404(selectors.studies_visible_to(request.user), pk=pk)
    if not selectors.can_share_study(request.user, study):
        raise PermissionDenied("Only the study's owner can see and change who it is shared with.")
    return study


class StudySharesView(APIView):
    @extend_schema(responses={200: ShareSerializer(many=True), 403: FORBIDDEN})
    def get(self, request, pk: int):
        study = editable_study(request, pk)
        shares = study.shares.select_related("user", "group").order_by("id")
        return Response(ShareSerializer(shares, many=True).data)

    @extend_schema(
        request=SHARE_REQUEST,
        responses={
            201: ShareSerializer,
            403: FORBIDDEN,
            404: OpenApiResponse(
                description="No such study visible to you, or no active user or group you may share with "
                "(the same answer whether the name exists or not)."
            ),
            409: OpenApiResponse(description="They see the study already: the owner, or shared with them before."),
        },
    )
    def post(self, request, pk: int):
        study = editable_study(request, pk)
        body = ShareCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            share = share_add(
                study=study,
                by=request.user,
                username=body.validated_data.get("username", ""),
                group_name=body.validated_data.get("group", ""),
                request=request,
            )
        except ShareTargetMissing as exc:
            raise NotFound(str(exc)) from None
        except ShareConflict as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        except ShareError as exc:
            raise ValidationError({"detail": str(exc)}) from None
        return Response(ShareSerializer(share).data, status=status.HTTP_201_CREATED)


class StudyShareView(APIView):
    @extend_schema(responses={204: OpenApiResponse(description="The share is taken back."), 403: FORBIDDEN})
    def delete(self, request, pk: int, share_id: int):
        study = editable_study(request, pk)
        share = get_object_or_404(study.shares, pk=share_id)
        share_remove(share=share, by=request.user, request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)
