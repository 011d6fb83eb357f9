"""Study shares: added and removed (each audited), never changed; only by the study's owner
(``studies.selectors.can_share_study``), here as everywhere."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied

from audit.services import record
from studies import selectors
from studies.admin.base import A
from studies.models import Study, StudyShare
from studies.services.sharing import share_detail


class ShareTargets:
    """Users and groups to share with: those the signed-in user may name (studies.selectors); the
    study: one of their own."""

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        user = request.user
        if db_field.name == "user":
            kwargs["queryset"] = selectors.share_users_for(user)
        elif db_field.name == "group":
            kwargs["queryset"] = selectors.share_groups_for(user)
        elif db_field.name == "study":
            kwargs["queryset"] = Study.objects.filter(owner=user)  # only owners share (selectors.can_share_study)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class ShareInline(ShareTargets, admin.TabularInline):
    """Existing shares can be removed, not changed; new ones are added below them."""

    model = StudyShare
    fields = ["user", "group", "created_by", "created_at"]
    readonly_fields = ["created_by", "created_at"]
    autocomplete_fields = ["user", "group"]
    fk_name = "study"
    extra = 0

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request, obj=None):
        return (
            obj is not None
            and selectors.can_share_study(request.user, obj)
            and super().has_add_permission(request, obj)
        )

    def has_delete_permission(self, request, obj=None):
        return (
            obj is not None
            and selectors.can_share_study(request.user, obj)
            and super().has_delete_permission(request, obj)
        )


def share_added(request, share: StudyShare) -> None:
    record(A.SHARE_ADD, request=request, obj=share.study, detail=share_detail(share))


def share_removed(request, share: StudyShare) -> None:
    record(A.SHARE_REMOVE, request=request, obj=share.study, detail=share_detail(share))


@admin.register(StudyShare)
class StudyShareAdmin(ShareTargets, admin.ModelAdmin):
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

    def has_delete_permission(self, request, obj=None):
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or selectors.can_share_study(request.user, obj.study))

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
        shares = list(queryset.select_related("study"))
        if not all(selectors.can_share_study(request.user, share.study) for share in shares):
            raise PermissionDenied("Only a study's owner takes its shares back.")
        for share in shares:
            self.delete_model(request, share)
