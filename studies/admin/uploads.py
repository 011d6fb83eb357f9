"""Uploads: what each brought or skipped, and re-running their ingest."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join

from studies.admin.base import OWNER_FILTER, ArchiveAdmin, change_link, model_fields
from studies.models import Upload
from studies.services.uploads import UploadBusy, upload_rerun

SKIPPED_SHOWN = 1000  # an archive of 50,000 non-DICOM files must not make a 50,000-row page


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

    def has_rerun_permission(self, request):
        """The admin re-runs anyone's uploads, so its action needs ``studies.rerun_upload`` (what
        ``studies.selectors.can_rerun_upload`` asks of non-owners); owners re-run their own from the
        upload page or the API."""
        return request.user.has_perm("studies.rerun_upload")

    @admin.action(description="Re-run ingest", permissions=["rerun"])
    def rerun_ingest(self, request, queryset):
        queued = 0
        for upload in queryset.order_by("pk"):
            try:
                upload_rerun(upload)  # no transaction around it: it may undo files of a failed attempt
            except UploadBusy as exc:
                self.message_user(request, f"{upload}: {exc}", messages.WARNING)
                continue
            self.log_change(request, upload, "Re-ran its ingest.")
            queued += 1
        if queued:
            self.message_user(request, f"Re-run queued for {queued} upload(s).", messages.SUCCESS)
