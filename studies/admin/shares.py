"""Study shares: added and removed (each audited), never changed."""

from __future__ import annotations

from django.contrib import admin

from audit.services import record
from studies.admin.base import A
from studies.models import StudyShare
from studies.services.sharing import share_detail


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
    record(A.SHARE_ADD, request=request, obj=share.study, detail=share_detail(share))


def share_removed(request, share: StudyShare) -> None:
    record(A.SHARE_REMOVE, request=request, obj=share.study, detail=share_detail(share))


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
