"""Series and their instances."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from studies.admin.base import A, ArchiveAdmin, AuditedViews, DeletesFiles, change_link, list_link, model_fields
from studies.models import Instance, Series
from studies.services.deletion import series_delete


@admin.register(Series)
class SeriesAdmin(AuditedViews, DeletesFiles, ArchiveAdmin):
    view_action = A.SERIES_VIEW
    list_display = [
        "id",
        "study_link",
        "patient_identifier",
        "series_number",
        "modality",
        "description",
        "kind",
        "num_instances",
        "render_status",
        "images",
        "created_at",
    ]
    list_display_links = ["id", "description"]
    list_select_related = ["study__patient"]
    list_filter = ["modality", "render_status", "is_volume", ("study__owner", admin.RelatedOnlyFieldListFilter)]
    search_fields = [
        "series_instance_uid",
        "description",
        "study__study_instance_uid",
        "study__patient__patient_id",
        "study__patient__name",
        "study__accession_number",
    ]
    fieldsets = [
        (
            "DICOM",
            {
                "fields": [
                    "series_instance_uid",
                    ("modality", "series_number"),
                    "description",
                    "body_part_examined",
                    ("series_date", "series_time"),
                    ("rows", "columns"),
                    ("pixel_spacing_row_mm", "pixel_spacing_col_mm"),
                    ("slice_thickness_mm", "slice_spacing_mm"),
                    "image_orientation",
                    "photometric_interpretation",
                    ("window_center", "window_width"),
                ]
            },
        ),
        (
            "Display",
            {
                "fields": [
                    "study_link",
                    "instances_link",
                    ("num_instances", "num_frames"),
                    "kind",
                    "plane_table",
                    "layout_notes",
                    ("render_status", "render_version"),
                    ("images_done", "images_total"),
                    "render_error",
                ]
            },
        ),
        ("Record", {"fields": [("created_at", "updated_at")]}),
    ]
    readonly_fields = [
        *model_fields(Series),
        "study_link",
        "instances_link",
        "kind",
        "plane_table",
        "layout_notes",
    ]

    @admin.display(description="study", ordering="study_id")
    def study_link(self, obj):
        return change_link(obj.study)

    @admin.display(description="PatientID", ordering="study__patient__patient_id")
    def patient_identifier(self, obj):
        return obj.study.patient.patient_id

    @admin.display(description="kind", ordering="is_volume")
    def kind(self, obj):
        return "volume" if obj.is_volume else "stack"

    @admin.display(description="images")
    def images(self, obj):
        return f"{obj.images_done}/{obj.images_total}"

    @admin.display(description="instances")
    def instances_link(self, obj):
        return list_link(Instance, f"{obj.num_instances} instances", series__id__exact=obj.pk)

    @admin.display(description="planes")
    def plane_table(self, obj):
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{} x {}</td><td>{}</td></tr>",
            (
                (name, p.get("count"), p.get("width"), p.get("height"), p.get("pixel_mm", "-"))
                for name, p in (obj.planes or {}).items()
            ),
        )
        header = "<tr><th>plane</th><th>images</th><th>width x height</th><th>pixel mm</th></tr>"
        return format_html("<table>" + header + "{}</table>", rows) if obj.planes else "-"

    @admin.display(description="notes")
    def layout_notes(self, obj):
        notes = (obj.layout or {}).get("notes") or []
        return format_html_join("", "<div>{}</div>", ((note,) for note in notes)) if notes else "-"

    def delete_one(self, request, obj):
        series_delete(series=obj, request=request)

    def deletion_summary(self, obj):
        return f"{obj} of study {obj.study_id}: {obj.num_instances} instances, their original files and images"


@admin.register(Instance)
class InstanceAdmin(ArchiveAdmin):
    list_display = [
        "id",
        "sop_instance_uid",
        "series_link",
        "instance_number",
        "transfer_syntax_uid",
        "size",
        "number_of_frames",
        "in_volume",
        "created_at",
    ]
    list_select_related = ["series"]
    list_filter = ["in_volume", "transfer_syntax_uid", "photometric_interpretation"]
    search_fields = ["=sop_instance_uid", "=series__series_instance_uid", "=series__study__study_instance_uid"]
    readonly_fields = [
        *(name for name in model_fields(Instance) if name not in ("series", "upload")),
        "series_link",
        "upload_link",
    ]
    exclude = ["series", "upload"]

    def has_delete_permission(self, request, obj=None):
        return False  # a series is laid out from all its instances: delete the series instead

    @admin.display(description="series", ordering="series_id")
    def series_link(self, obj):
        return change_link(obj.series)

    @admin.display(description="upload")
    def upload_link(self, obj):
        return change_link(obj.upload)

    @admin.display(description="Rows x Columns")
    def size(self, obj):
        return f"{obj.rows} x {obj.columns}"
