"""The archive in the Django admin.

- What was read from DICOM (UIDs, names, dates, geometry, window...) is read-only, and so is
  everything ingest derives from it: patients, studies, series, instances and uploads come from
  uploads and cannot be added here. Owners are read-only too: a study's patient and instances
  belong to the same owner, so moving one study would split them.
- Shares can be added and removed, on the study page or on their own list; each is audited.
- Deleting a study or series, one or many, goes through ``studies.services.deletion`` so that its
  files go with its rows. Patients go with their last study; instances with their series.
- Looking at studies, patients and series here is audited like anywhere else.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Count, Exists, OuterRef
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode

from audit.admin import admin_filter_names
from audit.models import AuditEvent
from audit.services import record
from studies.models import Instance, Patient, Series, Study, StudyShare, Upload
from studies.services.deletion import series_delete, study_delete
from studies.services.uploads import UploadBusy, upload_rerun

A = AuditEvent.Action
SKIPPED_SHOWN = 1000  # an archive of 50,000 non-DICOM files must not make a 50,000-row page

admin.site.site_header = "dicomviewer administration"
admin.site.site_title = "dicomviewer admin"


def change_link(obj, label=None):
    if obj is None:
        return "-"
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, label if label is not None else str(obj))


def list_link(model, label, **filters):
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    return format_html('<a href="{}?{}">{}</a>', url, urlencode(filters), label)


def model_fields(model) -> list[str]:
    return [field.name for field in model._meta.fields]


class ArchiveAdmin(admin.ModelAdmin):
    """Rows made by ingest: nobody adds them here, and their pages only show (owners included)."""

    list_per_page = 50

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # The model-level answer stays Django's, so that list actions (re-run, delete) work.
        return obj is None and super().has_change_permission(request)


class AuditedViews:
    """Lists record STUDY_LIST (or STUDY_SEARCH with the names of the filters, never their values);
    change pages record ``view_action``."""

    view_action: str | None = None

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        if request.method == "GET" and response.status_code == 200:
            names = admin_filter_names(request)
            detail = {"admin": self.model._meta.model_name, "filters": names}
            changelist = getattr(response, "context_data", {}).get("cl")
            if changelist is not None:
                detail["results"] = changelist.result_count
            record(A.STUDY_SEARCH if names else A.STUDY_LIST, request=request, detail=detail)
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        if self.view_action and request.method == "GET" and response.status_code == 200:
            obj = response.context_data.get("original")
            if obj is not None:
                record(self.view_action, request=request, obj=obj, detail={"admin": self.model._meta.model_name})
        return response


class DeletesFiles:
    """Delete (one or many) through ``delete_one`` so that files go too, with a short summary on
    the confirmation page instead of Django's list of every instance."""

    def delete_one(self, request, obj):
        raise NotImplementedError

    def deletion_summary(self, obj) -> str:
        raise NotImplementedError

    def delete_model(self, request, obj):
        self.delete_one(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            self.delete_one(request, obj)

    def get_deleted_objects(self, objs, request):
        objs = list(objs)
        summary = [self.deletion_summary(obj) for obj in objs]
        return summary, {self.model._meta.verbose_name_plural: len(objs)}, set(), []

    def get_actions(self, request):
        actions = super().get_actions(request)
        if "delete_selected" in actions:
            func, name, _ = actions["delete_selected"]
            actions[name] = (func, name, f"Delete selected {self.model._meta.verbose_name_plural} with their files")
        return actions


# --- filters --------------------------------------------------------------------------------


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


OWNER_FILTER = ("owner", admin.RelatedOnlyFieldListFilter)


# --- patients -------------------------------------------------------------------------------


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


# --- studies --------------------------------------------------------------------------------


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


class ShareInline(admin.TabularInline):
    """Existing shares can be removed, not changed; new ones are added below them."""

    model = StudyShare
    fields = ["user", "group", "created_by", "created_at"]
    readonly_fields = ["created_by", "created_at"]
    autocomplete_fields = ["user", "group"]
    fk_name = "study"
    extra = 0

    def has_change_permission(self, request, obj=None):
        return False


def share_added(request, share: StudyShare) -> None:
    target = {"user_id": share.user_id} if share.user_id else {"group_id": share.group_id}
    record(A.SHARE_ADD, request=request, obj=share.study, detail=target)


def share_removed(request, share: StudyShare) -> None:
    target = {"user_id": share.user_id} if share.user_id else {"group_id": share.group_id}
    record(A.SHARE_REMOVE, request=request, obj=share.study, detail=target)


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


# --- series and instances -------------------------------------------------------------------


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


# --- uploads and shares ---------------------------------------------------------------------


@admin.register(Upload)
class UploadAdmin(ArchiveAdmin):
    list_display = [
        "id",
        "original_name",
        "owner",
        "status",
        "stage",
        "progress",
        "files_total",
        "files_dicom",
        "files_skipped",
        "attempts",
        "created_at",
        "finished_at",
    ]
    list_select_related = ["owner"]
    list_filter = ["status", OWNER_FILTER, "created_at"]
    search_fields = ["original_name", "owner__username"]
    fields = [
        ("original_name", "size_bytes"),
        "owner",
        ("status", "stage", "progress"),
        "error",
        ("files_total", "files_dicom", "files_skipped"),
        "skipped_files",
        "study_links",
        "attempts",
        ("created_at", "started_at", "finished_at"),
        "file",
    ]
    readonly_fields = [*model_fields(Upload), "skipped_files", "study_links"]
    actions = ["rerun_ingest"]

    def has_delete_permission(self, request, obj=None):
        return False  # the record of what was received; its studies are deleted on their own

    @admin.display(description="skipped files")
    def skipped_files(self, obj):
        skipped = obj.skipped or []
        if not skipped:
            return "-"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td></tr>",
            ((s.get("name", ""), s.get("reason", "")) for s in skipped[:SKIPPED_SHOWN]),
        )
        more = f"and {len(skipped) - SKIPPED_SHOWN} more" if len(skipped) > SKIPPED_SHOWN else ""
        return format_html("<table><tr><th>file</th><th>reason</th></tr>{}</table>{}", rows, more)

    @admin.display(description="studies")
    def study_links(self, obj):
        studies = obj.studies.all()
        return format_html_join(", ", "{}", ((change_link(s),) for s in studies)) if studies else "-"

    @admin.action(description="Re-run ingest", permissions=["change"])
    def rerun_ingest(self, request, queryset):
        queued = 0
        for pk in queryset.values_list("pk", flat=True):
            with transaction.atomic():
                upload = Upload.objects.select_for_update().get(pk=pk)
                try:
                    upload_rerun(upload)
                except UploadBusy as exc:
                    self.message_user(request, f"{upload}: {exc}", messages.WARNING)
                    continue
            self.log_change(request, upload, "Re-ran its ingest.")
            queued += 1
        if queued:
            self.message_user(request, f"Re-run queued for {queued} upload(s).", messages.SUCCESS)


@admin.register(StudyShare)
class StudyShareAdmin(admin.ModelAdmin):
    """Shares are added and removed, never changed (remove one and add another)."""

    list_display = ["id", "study", "user", "group", "created_by", "created_at"]
    list_select_related = ["study", "user", "group", "created_by"]
    list_filter = ["created_at"]
    search_fields = ["study__study_instance_uid", "user__username", "group__name"]
    autocomplete_fields = ["study", "user", "group"]
    fields = ["study", "user", "group", "created_by", "created_at"]
    readonly_fields = ["created_by", "created_at"]

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request)

    def save_model(self, request, obj, form, change):
        if change:
            return  # nothing can be changed (see has_change_permission)
        obj.created_by = request.user
        obj.save()
        share_added(request, obj)

    def delete_model(self, request, obj):
        share_removed(request, obj)
        obj.delete()

    def delete_queryset(self, request, queryset):
        for share in queryset.select_related("study"):
            self.delete_model(request, share)
