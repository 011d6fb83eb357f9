"""Patients and studies (with their series and shares)."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, Exists, OuterRef

from studies.admin.base import (
    OWNER_FILTER,
    A,
    ArchiveAdmin,
    AuditedViews,
    DeletesFiles,
    change_link,
    list_link,
    model_fields,
)
from studies.admin.shares import ShareInline, share_added, share_removed
from studies.models import Patient, Series, Study, StudyShare, Upload
from studies.services.deletion import study_delete


class StudyModalityFilter(admin.SimpleListFilter):
    title = "modality"
    parameter_name = "modality"

    def lookups(self, request, model_admin):
        modalities = Series.objects.exclude(modality="").order_by("modality").values_list("modality", flat=True)
        return [(m, m) for m in modalities.distinct()]

    def queryset(self, request, queryset):
        if not self.value():
            return queryset
        return queryset.filter(Exists(Series.objects.filter(study=OuterRef("pk"), modality=self.value())))


@admin.register(Patient)
class PatientAdmin(AuditedViews, ArchiveAdmin):
    view_action = A.STUDY_VIEW
    list_display = ["id", "patient_id", "issuer_of_patient_id", "name", "birth_date", "sex", "owner", "study_count"]
    list_display_links = ["id", "patient_id"]
    list_select_related = ["owner"]
    list_filter = ["sex", OWNER_FILTER, "created_at"]
    search_fields = ["patient_id", "name"]
    readonly_fields = [*model_fields(Patient), "studies_link"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(study_count=Count("studies"))

    def has_delete_permission(self, request, obj=None):
        return False  # a patient goes with its last study

    @admin.display(description="studies", ordering="study_count")
    def study_count(self, obj):
        return obj.study_count

    @admin.display(description="studies")
    def studies_link(self, obj):
        return list_link(Study, f"{obj.study_count} studies", patient__id__exact=obj.pk)


class SeriesInline(admin.TabularInline):
    model = Series
    fields = ["series_link", "series_number", "modality", "description", "kind", "num_instances", "render_status"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="series")
    def series_link(self, obj):
        return change_link(obj)

    @admin.display(description="kind")
    def kind(self, obj):
        return "volume" if obj.is_volume else "stack"


@admin.register(Study)
class StudyAdmin(AuditedViews, DeletesFiles, ArchiveAdmin):
    view_action = A.STUDY_VIEW
    list_display = [
        "id",
        "patient_identifier",
        "study_date",
        "description",
        "modalities",
        "owner",
        "num_series",
        "num_instances",
        "created_at",
    ]
    list_display_links = ["id", "description"]
    list_select_related = ["patient", "owner"]
    list_filter = [StudyModalityFilter, "study_date", OWNER_FILTER, "created_at"]
    search_fields = [
        "patient__patient_id",
        "patient__name",
        "accession_number",
        "description",
        "study_instance_uid",
        "=series__series_instance_uid",
    ]
    fieldsets = [
        (
            "DICOM",
            {
                "fields": [
                    "study_instance_uid",
                    ("study_date", "study_time"),
                    "description",
                    "accession_number",
                    "study_id",
                    "referring_physician_name",
                    "modalities",
                ]
            },
        ),
        ("Archive", {"fields": ["patient_link", "owner", ("num_series", "num_instances"), "uploads_link"]}),
        ("Record", {"fields": [("created_at", "updated_at")]}),
    ]
    readonly_fields = [*model_fields(Study), "patient_link", "uploads_link"]
    inlines = [SeriesInline, ShareInline]

    def has_change_permission(self, request, obj=None):
        return admin.ModelAdmin.has_change_permission(self, request, obj)  # its shares can be edited

    @admin.display(description="PatientID", ordering="patient__patient_id")
    def patient_identifier(self, obj):
        return obj.patient.patient_id

    @admin.display(description="patient")
    def patient_link(self, obj):
        return change_link(obj.patient)

    @admin.display(description="uploads")
    def uploads_link(self, obj):
        return list_link(Upload, "uploads that brought it", studies__id__exact=obj.pk)

    def save_formset(self, request, form, formset, change):
        if formset.model is not StudyShare:
            return super().save_formset(request, form, formset, change)
        added = formset.save(commit=False)  # existing shares cannot be changed: only new ones
        for share in formset.deleted_objects:
            share.refresh_from_db()  # the form cleared the fields it could not show as editable
            share_removed(request, share)
            share.delete()
        for share in added:
            share.created_by = request.user
            share.save()
            share_added(request, share)

    def delete_one(self, request, obj):
        study_delete(study=obj, request=request)

    def deletion_summary(self, obj):
        return f"{obj}: {obj.num_series} series, {obj.num_instances} instances, their original files and images"
