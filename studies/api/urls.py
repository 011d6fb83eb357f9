from django.urls import path, register_converter
from rest_framework.routers import SimpleRouter

from studies.api import anonymise, links, segmentations, shares, values, views


class IdConverter:
    """A primary key that fits the database's 64-bit ids (longer digit strings are a 404)."""

    regex = views.ID

    def to_python(self, value):
        return int(value)

    def to_url(self, value):
        return str(value)


register_converter(IdConverter, "id")

app_name = "api"

router = SimpleRouter()
router.register("uploads", views.UploadViewSet, basename="upload")
router.register("patients", views.PatientViewSet, basename="patient")
router.register("studies", views.StudyViewSet, basename="study")
router.register("series", views.SeriesViewSet, basename="series")
router.register("instances", views.InstanceViewSet, basename="instance")
router.register("tokens", views.TokenViewSet, basename="token")

download = {"get": "archive"}
binary = {"content_negotiation_class": views.AnyAcceptNegotiation}

urlpatterns = [
    path("auth/token/", views.LoginTokenView.as_view(), name="token"),
    path("studies/<id:pk>/shares/", shares.StudySharesView.as_view(), name="study-shares"),
    path("studies/<id:pk>/shares/<id:share_id>/", shares.StudyShareView.as_view(), name="study-share"),
    path("studies/<id:pk>/anonymise/", anonymise.StudyAnonymiseView.as_view(), name="study-anonymise"),
    path("studies/<id:pk>/links/", links.StudyLinksView.as_view(), name="study-links"),
    path("studies/<id:pk>/links/<id:link_id>/", links.StudyLinkView.as_view(), name="study-link"),
    path("studies/<id:pk>/archive.zip", views.StudyViewSet.as_view(download, **binary), name="study-archive"),
    path("series/<id:pk>/archive.zip", views.SeriesViewSet.as_view(download, **binary), name="series-archive"),
    path("instances/<id:pk>/file", views.InstanceViewSet.as_view({"get": "file"}, **binary), name="instance-file"),
    path("series/<id:pk>/planes/<str:plane>/<int:index>.png", views.PlaneImageView.as_view(), name="plane-image"),
    path("series/<id:pk>/planes/<str:plane>/<int:index>/probe", values.ProbeView.as_view(), name="plane-probe"),
    path("series/<id:pk>/planes/<str:plane>/<int:index>/roi", values.RoiView.as_view(), name="plane-roi"),
    path("series/<id:pk>/thumbnail.png", views.ThumbnailView.as_view(), name="thumbnail"),
    path(
        "series/<id:pk>/segmentations/",
        segmentations.SegmentationListView.as_view(),
        name="series-segmentations",
    ),
    path(
        "series/<id:pk>/segmentations/<id:seg>/overlay/v<int:version>-<int:seg_version>/<str:plane>/<int:index>.png",
        segmentations.SegmentationOverlayView.as_view(),
        name="segmentation-overlay",
    ),
    *router.urls,
]
