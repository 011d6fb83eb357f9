"""The registry of remote DICOM AEs in the admin (changes are audited as admin changes)."""

from django.contrib import admin

from dicomnet.models import RemoteAE


@admin.register(RemoteAE)
class RemoteAEAdmin(admin.ModelAdmin):
    list_display = ["ae_title", "host", "port", "owner", "may_store", "may_find", "may_retrieve", "description"]
    list_filter = ["may_store", "may_find", "may_retrieve"]
    list_select_related = ["owner"]
    search_fields = ["ae_title", "host", "description", "owner__username"]
    autocomplete_fields = ["owner"]
    fields = [
        "ae_title",
        ("host", "port"),
        "owner",
        ("may_store", "may_find", "may_retrieve"),
        "description",
        "created",
    ]
    readonly_fields = ["created"]
