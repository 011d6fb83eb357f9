"""The REST API. Querysets come from selectors, so a user only ever reaches what they may see;
anything else answers 404. Deleting and re-running ask ``selectors.can_delete_*`` and
``can_rerun_upload`` (403 when visible but not allowed)."""

from __future__ import annotations

import math

import django_filters
from django.conf import settings
from django.db.models import Count, Prefetch, Q
from django.http import Http404, HttpResponseRedirect, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ParseError, PermissionDenied, ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from audit.models import AuditEvent
from audit.services import record
from dicomviewer.ratelimit import UnsafeMethodRateThrottle
from studies import scratch, selectors
from studies.api import filters, serializers
from studies.files import file_response
from studies.imaging.planes import SLAB_MODES
from studies.imaging.render import Window
from studies.imaging.slabs import SlabError, check_slab, parse_slab
from studies.services import deid, image_access
from studies.services.archives import members_of, zip_stream
from studies.services.deletion import series_delete, study_delete
from studies.services.uploads import InvalidUpload, SizeLimitHandler, UploadBusy, upload_create, upload_rerun
from tokens.services import token_create, token_revoke

ID = r"[0-9]{1,18}"  # ids that fit the database's 64-bit keys; anything else is a 404

IMAGE_RESPONSES = {
    302: OpenApiResponse(
        description="Found: Location is the image's signed URL (under /images/, valid IMAGE_URL_TTL seconds), which "
        "answers the PNG (with storage in a bucket, a further redirect to the object), or 503 with Retry-After while "
        "the series is still being prepared."
    ),
    503: OpenApiResponse(description="The series has no images yet; retry after Retry-After seconds."),
}
ZIP_RESPONSE = {(200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY, description="A ZIP of the originals.")}
DELETE_RESPONSES = {
    204: OpenApiResponse(description="Deleted, with all its files."),
    403: OpenApiResponse(description="Visible to you but not yours to delete, and no permission to."),
}


class AnyAcceptNegotiation(DefaultContentNegotiation):
    """Image and file endpoints answer their own type whatever the Accept header says; errors are JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def filter_names(request, view) -> list[str]:
    """The filters a list request used, by name (never values); unknown parameters do nothing and
    are left out (their names are the client's free text)."""
    known = {"search"}
    filterset = getattr(view, "filterset_class", None)
    for name, declared in filterset.base_filters.items() if filterset else ():
        known.add(name)
        if isinstance(declared, django_filters.RangeFilter | django_filters.DateFromToRangeFilter):
            known.update({f"{name}_after", f"{name}_before", f"{name}_min", f"{name}_max"})
    return sorted(key for key in request.query_params if key in known)


def audit_list(request, response, view, resource: str | None = None) -> None:
    names = filter_names(request, view)
    action_ = AuditEvent.Action.STUDY_SEARCH if names else AuditEvent.Action.STUDY_LIST
    detail = {"filters": names, "results": response.data.get("count")}
    if resource:
        detail["resource"] = resource
    record(action_, request=request, detail=detail)


def download_name(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in ".-_" else "_" for ch in text)[:120] or "download"


def zip_response(request, obj, members, filename: str) -> StreamingHttpResponse:
    record(AuditEvent.Action.DOWNLOAD, request=request, obj=obj, detail={"files": len(members), "format": "zip"})
    return zip_stream_response(zip_stream(members), filename)


DEID_PARAMETERS = [
    OpenApiParameter("deidentify", str, enum=["basic"], description="De-identify (PS3.15 Annex E Basic Profile)."),
    OpenApiParameter(
        "options",
        str,
        pattern=f"^(({'|'.join(deid.OPTION_NAMES)})(,({'|'.join(deid.OPTION_NAMES)}))*)?$",
        description="With deidentify=basic only: comma-separated profile options: "
        + ", ".join(deid.OPTION_NAMES)
        + " (without deidentify: 400).",
    ),
]


def deid_options(request) -> deid.Options | None:
    """The ``deidentify``/``options`` query parameters -> Options, None for the originals, or a 400."""
    profile = request.query_params.get("deidentify")
    options = ",".join(request.query_params.getlist("options")) if "options" in request.query_params else None
    if profile is None:
        if options is not None:
            raise ValidationError({"detail": "options needs deidentify=basic."})
        return None
    if profile != "basic":
        raise ValidationError({"detail": "deidentify must be 'basic' (PS3.15 Annex E Basic Profile)."})
    try:
        return deid.Options.parse(options)
    except deid.DeidError as exc:
        raise ValidationError({"detail": str(exc)}) from None


def zip_stream_response(stream, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(stream, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{download_name(filename)}.zip"'
    response["Cache-Control"] = "private, no-store"
    return response


# --- auth and tokens ------------------------------------------------------------------------


TOO_MANY = OpenApiResponse(description="Too many requests from this client: retry after Retry-After seconds.")


class LoginTokenView(APIView):
    """Exchange a username and password for a new API token (revocable at /api/tokens/)."""

    throttle_classes = [UnsafeMethodRateThrottle]
    throttle_scope = "token"
    permission_classes = [AllowAny]
    authentication_classes = []
    parser_classes = [FormParser, MultiPartParser, JSONParser]

    @extend_schema(
        request=serializers.LoginSerializer,
        responses={
            200: serializers.TokenKeySerializer,
            429: OpenApiResponse(
                description="Too many failed sign-ins (locked out for a while), or too many requests."
            ),
        },
        auth=[],
    )
    def post(self, request):
        # the Django request itself: the brute-force lockout (django-axes) marks it for its middleware
        serializer = serializers.LoginSerializer(data=request.data, context={"request": request._request})
        serializer.is_valid(raise_exception=True)
        user = serializer.validated_data["user"]
        token, key = token_create(user=user, name="login")
        record(AuditEvent.Action.TOKEN_CREATE, request=request, user=user, obj=token, detail={"name": token.name})
        return Response({"token": key})


class TokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """The signed-in user's API tokens: create (the key is shown once), list, revoke."""

    serializer_class = serializers.TokenSerializer
    lookup_value_regex = ID
    filter_backends = []
    throttle_classes = [UnsafeMethodRateThrottle]
    throttle_scope = "token"

    def get_queryset(self):
        return self.request.user.api_tokens.filter(revoked_at__isnull=True)

    @extend_schema(
        request=serializers.TokenSerializer, responses={201: serializers.TokenCreatedSerializer, 429: TOO_MANY}
    )
    def create(self, request):
        serializer = serializers.TokenSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token, key = token_create(user=request.user, name=serializer.validated_data["name"])
        record(AuditEvent.Action.TOKEN_CREATE, request=request, obj=token, detail={"name": token.name})
        body = serializers.TokenSerializer(token).data | {"key": key}
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: OpenApiResponse(description="Revoked: the key no longer authenticates.")})
    def destroy(self, request, *args, **kwargs):
        token = self.get_object()
        token_revoke(token)
        record(AuditEvent.Action.TOKEN_REVOKE, request=request, obj=token, detail={"name": token.name})
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- uploads -----------------------------------------------------------------------------------


class UploadViewSet(mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    throttle_classes = [UnsafeMethodRateThrottle]
    throttle_scope = "upload"
    serializer_class = serializers.UploadSerializer
    parser_classes = [MultiPartParser, FormParser]
    lookup_value_regex = ID
    filterset_class = filters.UploadFilter
    ordering_fields = ["created_at", "id", "status"]
    ordering = ["-created_at", "-id"]
    search_fields = ["original_name"]

    def get_queryset(self):
        return selectors.uploads_visible_to(self.request.user).prefetch_related("studies")

    def get_serializer_class(self):
        return serializers.UploadCreateSerializer if self.action == "create" else serializers.UploadSerializer

    def initialize_request(self, request, *args, **kwargs):
        if request.method == "POST":
            scratch.tmp_dir()
            request.upload_handlers.insert(0, SizeLimitHandler(request))
        return super().initialize_request(request, *args, **kwargs)

    @extend_schema(
        request={"multipart/form-data": serializers.UploadCreateSerializer},
        responses={
            202: serializers.UploadCreatedSerializer,
            413: OpenApiResponse(description="Larger than MAX_UPLOAD_BYTES."),
            415: OpenApiResponse(description="Not a multipart/form-data request."),
            429: TOO_MANY,
        },
    )
    def create(self, request, *args, **kwargs):
        try:
            uploaded = request.data.get("file")
        except ParseError:
            uploaded = None
        if getattr(request._request, "upload_too_large", False):
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

    @extend_schema(
        request=None,
        responses={
            202: serializers.UploadSerializer,
            403: OpenApiResponse(description="Visible to you (staff) but not yours, and no permission to re-run it."),
            409: OpenApiResponse(description="Still being processed, or nothing left to re-run."),
        },
    )
    @action(detail=True, methods=["post"])
    def rerun(self, request, pk=None):
        """Run the ingest again (a failed upload whose ZIP is kept), or rebuild the series it stored."""
        upload = self.get_object()
        if not selectors.can_rerun_upload(request.user, upload):
            raise PermissionDenied(
                "You can view this upload but not re-run it: its owner, or someone with the permission, may."
            )
        try:
            upload_rerun(upload)
        except UploadBusy as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        upload.refresh_from_db()
        return Response(self.get_serializer(upload).data, status=status.HTTP_202_ACCEPTED)


# --- patients, studies, series, instances ------------------------------------------------------


class PatientViewSet(viewsets.ReadOnlyModelViewSet):
    lookup_value_regex = ID
    filterset_class = filters.PatientFilter
    search_fields = ["patient_id", "name"]
    ordering_fields = ["name", "patient_id", "birth_date", "id"]
    ordering = ["name", "id"]

    def get_queryset(self):
        user = self.request.user
        queryset = selectors.patients_visible_to(user)
        visible = selectors.studies_visible_to(user)
        if self.action == "retrieve":
            studies = visible.order_by("-study_date", "-id")
            return queryset.prefetch_related(Prefetch("studies", queryset=studies, to_attr="visible_studies"))
        return queryset.annotate(num_studies=Count("studies", filter=Q(studies__in=visible.values("pk"))))

    def get_serializer_class(self):
        if self.action == "retrieve":
            return serializers.PatientDetailSerializer
        return serializers.PatientListSerializer

    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        audit_list(request, response, self, "patients")
        return response


@extend_schema_view(destroy=extend_schema(responses=DELETE_RESPONSES))
class StudyViewSet(mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet):
    lookup_value_regex = ID
    filterset_class = filters.StudyFilter
    search_fields = ["description", "accession_number", "study_instance_uid", "patient__patient_id", "patient__name"]
    ordering_fields = ["study_date", "created_at", "accession_number", "num_instances", "id"]
    ordering = ["-study_date", "-id"]

    def get_queryset(self):
        queryset = selectors.studies_visible_to(self.request.user).select_related("patient")
        if self.action == "retrieve":
            queryset = queryset.prefetch_related("series")
        return queryset.order_by("-study_date", "-id")

    def get_serializer_class(self):
        return serializers.StudyDetailSerializer if self.action == "retrieve" else serializers.StudySerializer

    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        audit_list(request, response, self)
        return response

    def retrieve(self, request, *args, **kwargs):
        study = self.get_object()
        record(AuditEvent.Action.STUDY_VIEW, request=request, obj=study)
        return Response(self.get_serializer(study).data)

    def destroy(self, request, *args, **kwargs):
        study = self.get_object()
        if not selectors.can_delete_study(request.user, study):
            raise PermissionDenied(
                "You can view this study but not delete it: its owner, or someone with the permission, may."
            )
        study_delete(study=study, request=request)  # audited by the service
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        parameters=DEID_PARAMETERS,
        responses={**ZIP_RESPONSE, 400: OpenApiResponse(description="An unknown deidentify profile or option.")},
    )
    def archive(self, request, pk=None):
        """Every original file of the study, as a ZIP streamed while it is written; with
        ``deidentify=basic``, de-identified (PS3.15 Annex E) with a manifest of what was left out."""
        study = self.get_object()
        options = deid_options(request)
        members = members_of(selectors.instances_visible_to(request.user).filter(series__study=study))
        if options is None:
            return zip_response(request, study, members, f"study-{study.pk}")
        stream = deid.deid_archive(obj=study, members=members, options=options, request=request)
        return zip_stream_response(stream, f"study-{study.pk}-anonymised")


@extend_schema_view(destroy=extend_schema(responses=DELETE_RESPONSES))
class SeriesViewSet(mixins.DestroyModelMixin, viewsets.ReadOnlyModelViewSet):
    lookup_value_regex = ID
    filterset_class = filters.SeriesFilter
    search_fields = ["description", "series_instance_uid", "body_part_examined"]
    ordering_fields = ["series_number", "created_at", "num_instances", "id"]
    ordering = ["study_id", "series_number", "id"]

    def get_queryset(self):
        queryset = selectors.series_visible_to(self.request.user)
        if self.action == "retrieve":
            queryset = queryset.prefetch_related("instances")
        return queryset

    def get_serializer_class(self):
        if self.action == "retrieve":
            return serializers.SeriesDetailSerializer
        return serializers.SeriesListSerializer

    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        audit_list(request, response, self, "series")
        return response

    def retrieve(self, request, *args, **kwargs):
        series = self.get_object()
        record(AuditEvent.Action.SERIES_VIEW, request=request, obj=series, detail={"study_id": series.study_id})
        urls = image_access.plane_urls(request, series)  # audited there, as image access
        return Response(self.get_serializer(series, context={**self.get_serializer_context(), "image_urls": urls}).data)

    def destroy(self, request, *args, **kwargs):
        series = self.get_object()
        if not selectors.can_delete_series(request.user, series):
            raise PermissionDenied(
                "You can view this series but not delete it: its owner, or someone with the permission, may."
            )
        series_delete(series=series, request=request)  # audited by the service
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        parameters=DEID_PARAMETERS,
        responses={**ZIP_RESPONSE, 400: OpenApiResponse(description="An unknown deidentify profile or option.")},
    )
    def archive(self, request, pk=None):
        """Every original file of the series, as a ZIP streamed while it is written; with
        ``deidentify=basic``, de-identified (PS3.15 Annex E) with a manifest of what was left out."""
        series = self.get_object()
        options = deid_options(request)
        members = members_of(selectors.instances_visible_to(request.user).filter(series=series))
        if options is None:
            return zip_response(request, series, members, f"series-{series.pk}")
        stream = deid.deid_archive(obj=series, members=members, options=options, request=request)
        return zip_stream_response(stream, f"series-{series.pk}-anonymised")


class InstanceViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = serializers.InstanceSerializer
    lookup_value_regex = ID
    filterset_class = filters.InstanceFilter
    search_fields = ["sop_instance_uid"]
    ordering_fields = ["instance_number", "created_at", "id"]
    ordering = ["series_id", "instance_number", "id"]

    def get_queryset(self):
        return selectors.instances_visible_to(self.request.user).select_related("series")

    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        audit_list(request, response, self, "instances")
        return response

    @extend_schema(
        responses={(200, "application/dicom"): OpenApiResponse(OpenApiTypes.BINARY, description="The original file.")}
    )
    def file(self, request, pk=None):
        """The original DICOM file, byte for byte as it was uploaded."""
        instance = self.get_object()
        record(AuditEvent.Action.DOWNLOAD, request=request, obj=instance, detail={"format": "dicom"})
        name = f"{download_name(instance.sop_instance_uid)}.dcm"
        response = file_response(instance.file, "application/dicom", name)
        response["Cache-Control"] = "private, no-store"
        return response


# --- images --------------------------------------------------------------------------------------


IDENTITY_WINDOW = (127.5, 256.0)  # 8-bit values unchanged: for series without a window of their own


def parse_window(params, series=None) -> Window | None:
    """``?wc=&ww=``; one alone takes the other from the series' window."""
    wc, ww = params.get("wc"), params.get("ww")
    if wc is None and ww is None:
        return None
    default = (series.window_center, series.window_width) if series is not None and series.window else IDENTITY_WINDOW
    try:
        center = float(wc) if wc is not None else default[0]
        width = float(ww) if ww is not None else default[1]
    except (TypeError, ValueError):
        raise ValidationError({"detail": "wc and ww must be numbers (window centre and width)."}) from None
    if not (math.isfinite(center) and math.isfinite(width)) or width <= 0:
        raise ValidationError({"detail": "ww must be a positive number and wc a finite one."})
    return Window(round(center, 2), round(width, 2))


def not_ready(detail: str) -> Response:
    response = Response({"detail": detail}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
    response["Retry-After"] = "1"
    return response


def redirect_to(location: str) -> HttpResponseRedirect:
    """302 to a signed image URL; the redirect itself is not kept (the next one differs)."""
    response = HttpResponseRedirect(location)
    response["Cache-Control"] = "private, no-store"
    return response


class ImageView(APIView):
    content_negotiation_class = AnyAcceptNegotiation

    def series(self, request, pk):
        series = selectors.visible_series(request.user, pk)  # the one- or two-query check
        if series is None:
            raise Http404
        return series


class PlaneImageView(ImageView):
    @extend_schema(
        parameters=[
            OpenApiParameter("wc", float, description="Window centre; default: the series' window centre"),
            OpenApiParameter(
                "ww",
                {"type": "number", "minimum": 0, "exclusiveMinimum": True},
                description="Window width, > 0; default: the series' window width",
            ),
            OpenApiParameter(
                "mode",
                str,
                enum=list(SLAB_MODES),
                description="A slab instead of one image: maximum (mip), minimum (minip) or mean (avg) "
                "intensity over `slab` mm centred on the image; volume planes only",
            ),
            OpenApiParameter(
                "slab",
                {"type": "number", "minimum": 0, "exclusiveMinimum": True},
                description="Slab thickness in mm (with mode), at most the volume's extent along the plane",
            ),
        ],
        responses={**IMAGE_RESPONSES, 400: OpenApiResponse(description="A window or slab that cannot be made.")},
    )
    def get(self, request, pk: int, plane: str, index: int):
        """One image of a plane (axial, coronal, sagittal, acquired, or stack) at the default or a given
        window, or a slab (MIP, MinIP, average) around it: a redirect to its signed URL (valid
        IMAGE_URL_TTL seconds), which answers the PNG."""
        series = self.series(request, pk)
        window = parse_window(request.query_params, series)
        try:
            slab = parse_slab(request.query_params.get("mode"), request.query_params.get("slab"))
        except SlabError as exc:
            raise ValidationError({"detail": str(exc)}) from None
        if plane not in (series.planes or {}):
            available = ", ".join(series.planes) or "none yet"
            return Response({"detail": f"This series has no '{plane}' plane (available: {available})."}, status=404)
        count = series.planes[plane]["count"]
        if not 0 <= index < count:
            return Response(
                {"detail": f"Image {index} does not exist: the {plane} plane has {count} images."}, status=404
            )
        if slab is not None:
            try:
                check_slab(slab, plane, series.planes[plane])
            except SlabError as exc:
                raise ValidationError({"detail": str(exc)}) from None
        location = image_access.image_url(request, series, plane, index)
        query = [f"wc={window.center:g}&ww={window.width:g}"] if window is not None else []
        if slab is not None:
            query.append(f"mode={slab.mode}&slab={slab.thickness_mm:g}")
        if query:
            location += "?" + "&".join(query)
        return redirect_to(location)


class ThumbnailView(ImageView):
    @extend_schema(responses=IMAGE_RESPONSES)
    def get(self, request, pk: int):
        """A thumbnail of the series, at most 160 pixels wide and high: a redirect to its signed URL."""
        series = self.series(request, pk)
        if not series.planes:
            return not_ready("The thumbnail of this series is not ready yet.")
        return redirect_to(image_access.thumbnail_url(series.pk, series.render_version))
