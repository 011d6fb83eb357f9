"""The audit trail in the Django admin: nobody adds, changes or deletes an event here (superusers
included); the list exports as CSV with the filters applied; reading or exporting it is itself
audited (DICOM 110101 "Audit Log Used"), naming the filters used but never their values.
"""

from __future__ import annotations

import csv
import json

from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import (
    ALL_VAR,
    ERROR_FLAG,
    IS_FACETS_VAR,
    IS_POPUP_VAR,
    ORDER_VAR,
    PAGE_VAR,
    SEARCH_VAR,
    TO_FIELD_VAR,
)
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.urls import path
from django.utils import timezone
from django.utils.html import format_html

from audit.models import AuditEvent
from audit.services import EVENT_CODES, record

A = AuditEvent.Action
NOT_FILTERS = {ALL_VAR, ERROR_FLAG, IS_FACETS_VAR, IS_POPUP_VAR, ORDER_VAR, PAGE_VAR, TO_FIELD_VAR}
# DICOM PS3.16 CID 400 meanings of the EventID codes in use
EVENT_CODE_MEANINGS = {
    "110101": "Audit Log Used",
    "110103": "DICOM Instances Accessed",
    "110105": "DICOM Study Deleted",
    "110106": "Export",
    "110107": "Import",
    "110112": "Query",
    "110113": "Security Alert",
    "110114": "User Authentication",
}
CSV_COLUMNS = [
    "time",
    "user_id",
    "username",
    "ip",
    "user_agent",
    "action",
    "event_code",
    "event_action",
    "object_type",
    "object_id",
    "object_uid",
    "outcome",
    "detail",
]
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def admin_filter_names(request) -> list[str]:
    """The names of the filters (and search) an admin list was asked for, never their values."""
    names = {"search" if key == SEARCH_VAR else key[:64] for key, value in request.GET.items() if value}
    return sorted(names - NOT_FILTERS)


def csv_cell(value) -> str:
    """A cell a spreadsheet shows as text: one starting like a formula gets a leading quote."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class _Lines:
    """csv.writer's file: hands each written line back instead of keeping it."""

    def write(self, line: str) -> str:
        return line


def csv_lines(events):
    writer = csv.writer(_Lines())
    yield writer.writerow(CSV_COLUMNS)
    for event in events:
        values = {column: getattr(event, column) for column in CSV_COLUMNS}
        values["time"] = event.time.isoformat()
        values["detail"] = json.dumps(event.detail, sort_keys=True, ensure_ascii=False)
        yield writer.writerow([csv_cell(values[column]) for column in CSV_COLUMNS])


class EventCodeFilter(admin.SimpleListFilter):
    title = "event code"
    parameter_name = "event_code"

    def lookups(self, request, model_admin):
        codes = sorted({code for code, _ in EVENT_CODES.values()})
        return [(code, f"{code} {EVENT_CODE_MEANINGS.get(code, '')}".strip()) for code in codes]

    def queryset(self, request, queryset):
        return queryset.filter(event_code=self.value()) if self.value() else queryset


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = [
        "time",
        "username",
        "ip",
        "action",
        "event_code",
        "object_type",
        "object_id",
        "object_uid",
        "outcome",
    ]
    list_filter = ["action", "outcome", EventCodeFilter, "time"]
    search_fields = ["username", "ip", "object_uid", "object_id"]
    list_per_page = 100
    show_full_result_count = False  # no COUNT(*) over the whole trail on every page
    fields = [
        "time",
        ("username", "account"),
        ("ip", "user_agent"),
        ("action", "event_code", "event_action"),
        ("object_type", "object_id", "object_uid"),
        "outcome",
        "detail_json",
    ]
    readonly_fields = [field.name for field in AuditEvent._meta.fields] + ["account", "detail_json"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    @admin.display(description="user account")
    def account(self, obj):
        return f"id {obj.user_id}" if obj.user_id else "-"

    @admin.display(description="detail")
    def detail_json(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.detail, indent=2, sort_keys=True, ensure_ascii=False))

    # --- reading is audited ------------------------------------------------------------------

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        if request.method == "GET" and response.status_code == 200:
            record(A.AUDIT_READ, request=request, detail={"filters": admin_filter_names(request)})
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        if request.method == "GET" and response.status_code == 200:
            record(A.AUDIT_READ, request=request, obj=response.context_data.get("original"))
        return response

    # --- CSV export --------------------------------------------------------------------------

    def get_urls(self):
        export = path("export/", self.admin_site.admin_view(self.export_view), name="audit_auditevent_export")
        return [export, *super().get_urls()]

    def export_view(self, request):
        """The events the list shows with the same filters and search, all pages, as CSV."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            events = self.get_changelist_instance(request).queryset
        except IncorrectLookupParameters:
            return HttpResponseBadRequest("Unknown filter.")
        record(A.AUDIT_EXPORT, request=request, detail={"filters": admin_filter_names(request)})
        response = StreamingHttpResponse(csv_lines(events.iterator(chunk_size=2000)), content_type="text/csv")
        filename = f"audit-{timezone.now():%Y%m%d-%H%M%S}.csv"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
