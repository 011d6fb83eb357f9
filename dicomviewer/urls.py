from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from dicomviewer import accounts, health, metrics
from studies import image_server

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("images/<path:rest>", image_server.signed_image, name="signed-image"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("api/", include("annotations.api.urls")),
    path("api/", include("studies.api.urls")),
    path("dicomweb/", include("dicomweb.urls")),
    path("ohif/", include("ohif.urls")),
    path("admin/", admin.site.urls),
    path("accounts/signup/", accounts.signup, name="signup"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("viewer.urls")),
]

handler404 = "dicomviewer.health.not_found"
handler500 = "dicomviewer.health.server_error"
