"""What the archive's admin pages share: links, read-only pages, audited views, deletes with files."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from audit.admin import admin_filter_names
from audit.models import AuditEvent
from audit.services import record

A = AuditEvent.Action
OWNER_FILTER = ("owner", admin.RelatedOnlyFieldListFilter)


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
