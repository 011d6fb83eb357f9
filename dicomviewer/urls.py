from django.contrib import admin
from django.urls import include, path

from dicomviewer import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("api/", include("studies.api.urls")),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("viewer.urls")),
]

handler404 = "dicomviewer.health.not_found"
handler500 = "dicomviewer.health.server_error"
