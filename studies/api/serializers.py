from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from studies.imaging.presets import layout_presets
from studies.models import Instance, Patient, Series, Study, Upload
from studies.services.ingest import upload_progress


class PatientSerializer(serializers.ModelSerializer):
    class Meta:
        model = Patient
        fields = ["id", "patient_id", "issuer_of_patient_id", "name", "birth_date", "sex"]


class PatientListSerializer(PatientSerializer):
    num_studies = serializers.IntegerField(read_only=True, help_text="Studies of this patient visible to you")

    class Meta(PatientSerializer.Meta):
        fields = PatientSerializer.Meta.fields + ["num_studies"]


class StudySummarySerializer(serializers.ModelSerializer):
    modalities = serializers.ListField(source="modality_list", child=serializers.CharField(), read_only=True)

    class Meta:
        model = Study
        fields = [
            "id",
            "study_instance_uid",
            "study_date",
            "description",
            "accession_number",
            "modalities",
            "num_series",
            "num_instances",
        ]


class PatientDetailSerializer(PatientSerializer):
    studies = StudySummarySerializer(many=True, read_only=True, source="visible_studies")

    class Meta(PatientSerializer.Meta):
        fields = PatientSerializer.Meta.fields + ["studies"]


class SeriesSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Series
        fields = [
            "id",
            "series_instance_uid",
            "series_number",
            "modality",
            "description",
            "num_instances",
            "render_status",
        ]


class StudySerializer(serializers.ModelSerializer):
    patient = PatientSerializer(read_only=True)
    modalities = serializers.ListField(source="modality_list", child=serializers.CharField(), read_only=True)

    class Meta:
        model = Study
        fields = [
            "id",
            "study_instance_uid",
            "patient",
            "study_date",
            "study_time",
            "description",
            "accession_number",
            "modalities",
            "num_series",
            "num_instances",
            "created_at",
        ]


class StudyDetailSerializer(StudySerializer):
    series = SeriesSummarySerializer(many=True, read_only=True)

    class Meta(StudySerializer.Meta):
        fields = StudySerializer.Meta.fields + ["referring_physician_name", "study_id", "series"]


class WindowSerializer(serializers.Serializer):
    center = serializers.FloatField()
    width = serializers.FloatField()


PRESETS_SCHEMA = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"name": {"type": "string"}, "center": {"type": "number"}, "width": {"type": "number"}},
        "required": ["name", "center", "width"],
    },
}


class SeriesSerializer(serializers.ModelSerializer):
    study = serializers.PrimaryKeyRelatedField(read_only=True)
    window = WindowSerializer(read_only=True, allow_null=True)
    planes = serializers.SerializerMethodField()
    notes = serializers.SerializerMethodField()
    presets = serializers.SerializerMethodField()

    class Meta:
        model = Series
        fields = [
            "id",
            "series_instance_uid",
            "study",
            "modality",
            "description",
            "series_number",
            "body_part_examined",
            "num_instances",
            "num_frames",
            "rows",
            "columns",
            "pixel_spacing_row_mm",
            "pixel_spacing_col_mm",
            "slice_thickness_mm",
            "slice_spacing_mm",
            "photometric_interpretation",
            "window",
            "is_volume",
            "frame_of_reference_uid",
            "planes",
            "render_status",
            "render_version",
            "images_total",
            "images_done",
            "render_error",
            "notes",
            "presets",
        ]

    def get_planes(self, series) -> dict:
        return series.planes or {}

    def get_notes(self, series) -> list[str]:
        return (series.layout or {}).get("notes", [])

    @extend_schema_field(PRESETS_SCHEMA)
    def get_presets(self, series) -> list[dict]:
        """Window presets for this modality: CT's fixed ones; MR, PET and other greyscale series'
        from their histogram (PET with an SUV factor: SUV windows first)."""
        return layout_presets(series.modality, series.layout)


class SeriesListSerializer(SeriesSummarySerializer):
    study = serializers.PrimaryKeyRelatedField(read_only=True)

    class Meta(SeriesSummarySerializer.Meta):
        fields = SeriesSummarySerializer.Meta.fields + ["study", "body_part_examined", "is_volume"]


class InstanceSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Instance
        fields = ["id", "sop_instance_uid", "instance_number", "number_of_frames", "in_volume"]


PLANES_WITH_URLS_SCHEMA = {
    "type": "object",
    "description": "Each plane's geometry and the URL template of its images: put the image number (0 to count - 1) "
    "for {index}; add ?wc=&ww= for another window. The URLs are signed and valid until image_urls_expire.",
    "additionalProperties": {
        "type": "object",
        "properties": {
            "count": {"type": "integer"},
            "width": {"type": "integer"},
            "height": {"type": "integer"},
            "url": {"type": "string"},
        },
    },
}


class SeriesDetailSerializer(SeriesSerializer):
    """A series with its instances and the signed URLs of its images (handed out with an
    ``images_view`` audit event by ``image_access.plane_urls``; the view passes them in context)."""

    instances = InstanceSummarySerializer(many=True, read_only=True)
    thumbnail_url = serializers.SerializerMethodField()
    image_urls_expire = serializers.SerializerMethodField()

    class Meta(SeriesSerializer.Meta):
        fields = SeriesSerializer.Meta.fields + ["thumbnail_url", "image_urls_expire", "instances"]

    @extend_schema_field(PLANES_WITH_URLS_SCHEMA)
    def get_planes(self, series) -> dict:
        urls = self.context["image_urls"]["planes"]
        return {name: {**info, "url": urls[name]} for name, info in (series.planes or {}).items()}

    def get_thumbnail_url(self, series) -> str:
        return self.context["image_urls"]["thumbnail"]

    def get_image_urls_expire(self, series) -> int:
        """Unix time after which the image URLs answer 403: get the series again for new ones."""
        return self.context["image_urls"]["expires"]


class InstanceSerializer(serializers.ModelSerializer):
    study = serializers.IntegerField(source="series.study_id", read_only=True)
    image_position = serializers.ListField(child=serializers.FloatField(), allow_null=True, read_only=True)
    image_orientation = serializers.ListField(child=serializers.FloatField(), allow_null=True, read_only=True)
    pixel_spacing = serializers.ListField(child=serializers.FloatField(), allow_null=True, read_only=True)

    class Meta:
        model = Instance
        fields = [
            "id",
            "sop_instance_uid",
            "sop_class_uid",
            "series",
            "study",
            "instance_number",
            "transfer_syntax_uid",
            "rows",
            "columns",
            "number_of_frames",
            "samples_per_pixel",
            "photometric_interpretation",
            "bits_allocated",
            "bits_stored",
            "pixel_representation",
            "image_position",
            "image_orientation",
            "pixel_spacing",
            "window_center",
            "window_width",
            "rescale_slope",
            "rescale_intercept",
            "file_size",
            "in_volume",
            "note",
            "created_at",
        ]
        read_only_fields = fields


class SkippedFileSerializer(serializers.Serializer):
    name = serializers.CharField()
    reason = serializers.CharField()


class UploadSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()
    skipped = SkippedFileSerializer(many=True, read_only=True)
    studies = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    url = serializers.HyperlinkedIdentityField(view_name="api:upload-detail")

    class Meta:
        model = Upload
        fields = [
            "id",
            "url",
            "original_name",
            "size_bytes",
            "status",
            "progress",
            "stage",
            "error",
            "files_total",
            "files_dicom",
            "files_skipped",
            "skipped",
            "studies",
            "created_at",
            "started_at",
            "finished_at",
        ]

    def get_progress(self, upload) -> int:
        return upload_progress(upload)


class UploadCreateSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="A ZIP archive of DICOM files.")


class UploadCreatedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    url = serializers.URLField()


class StrictCharField(serializers.CharField):
    """Text only: a number or a boolean is a 400, not turned into text."""

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class TokenSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = StrictCharField(
        max_length=100, trim_whitespace=False, help_text="What the token is for, e.g. 'nightly export'."
    )
    prefix = serializers.CharField(read_only=True, help_text="The first characters of the key.")
    created_at = serializers.DateTimeField(read_only=True)
    last_used_at = serializers.DateTimeField(read_only=True, allow_null=True)


class TokenCreatedSerializer(TokenSerializer):
    key = serializers.CharField(
        read_only=True, help_text="Send as 'Authorization: Token <key>' or 'Bearer <key>'. Shown only once."
    )


class TokenKeySerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send as 'Authorization: Token <token>'.")


class LoginSerializer(serializers.Serializer):
    """A username and password; a name longer than any account's is a 400 before any sign-in."""

    username = serializers.CharField(label="Username", max_length=150, write_only=True)
    password = serializers.CharField(
        label="Password", style={"input_type": "password"}, trim_whitespace=False, write_only=True
    )

    def validate(self, attrs):
        # the request lets django-axes count the attempt against this client (and lock it out)
        user = authenticate(self.context.get("request"), username=attrs["username"], password=attrs["password"])
        if user is None:  # also inactive accounts: ModelBackend refuses them
            raise serializers.ValidationError("Unable to log in with provided credentials.", code="authorization")
        attrs["user"] = user
        return attrs
