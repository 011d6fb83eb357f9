from django.urls import path
from rest_framework.authtoken.views import obtain_auth_token
from rest_framework.routers import SimpleRouter

from studies.api import views

app_name = "api"

router = SimpleRouter()
router.register("uploads", views.UploadViewSet, basename="upload")
router.register("studies", views.StudyViewSet, basename="study")
router.register("series", views.SeriesViewSet, basename="series")

urlpatterns = [
    path("auth/token/", obtain_auth_token, name="token"),
    path("series/<int:pk>/planes/<str:plane>/<int:index>.png", views.PlaneImageView.as_view(), name="plane-image"),
    path("series/<int:pk>/thumbnail.png", views.ThumbnailView.as_view(), name="thumbnail"),
    *router.urls,
]
