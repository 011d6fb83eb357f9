from rest_framework import serializers

from studies.models import Patient, Series, Study, Upload
from studies.services.ingest import upload_progress


class PatientSerializer(serializers.ModelSerializer):
    class Meta:
        model = Patient
        fields = ["id", "patient_id", "issuer_of_patient_id", "name", "birth_date", "sex"]


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


class SeriesSerializer(serializers.ModelSerializer):
    study = serializers.PrimaryKeyRelatedField(read_only=True)
    window = WindowSerializer(read_only=True, allow_null=True)
    planes = serializers.SerializerMethodField()
    notes = serializers.SerializerMethodField()

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
            "planes",
            "render_status",
            "render_version",
            "images_total",
            "images_done",
            "render_error",
            "notes",
        ]

    def get_planes(self, series) -> dict:
        return series.planes or {}

    def get_notes(self, series) -> list[str]:
        return (series.layout or {}).get("notes", [])


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
