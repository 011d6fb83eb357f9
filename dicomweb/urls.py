"""DICOMweb routes (PS3.18), under /dicomweb/."""

from django.urls import path, register_converter

from dicomweb import views


class UidConverter:
    regex = r"[0-9][0-9.]{0,63}"

    def to_python(self, value):
        return value

    def to_url(self, value):
        return value


class FramesConverter:
    regex = r"[0-9][0-9,]{0,2000}"

    def to_python(self, value):
        return value

    def to_url(self, value):
        return value


register_converter(UidConverter, "uid")
register_converter(FramesConverter, "frames")

app_name = "dicomweb"

S = "studies/<uid:study>"
SE = S + "/series/<uid:series>"
I = SE + "/instances/<uid:instance>"  # noqa: E741
F = I + "/frames/<frames:frames_list>"

urlpatterns = [
    path("studies", views.StudiesView.as_view(), name="studies"),
    path("series", views.SeriesSearchView.as_view(), name="all-series"),
    path("instances", views.InstancesSearchView.as_view(), name="all-instances"),
    path(S, views.StudyView.as_view(), name="study"),
    path(S + "/metadata", views.MetadataView.as_view(), name="study-metadata"),
    path(S + "/rendered", views.RenderedView.as_view(), name="study-rendered"),
    path(S + "/thumbnail", views.ThumbnailView.as_view(), name="study-thumbnail"),
    path(S + "/series", views.SeriesSearchView.as_view(), name="study-series"),
    path(S + "/instances", views.InstancesSearchView.as_view(), name="study-instances"),
    path(SE, views.SeriesView.as_view(), name="series"),
    path(SE + "/metadata", views.MetadataView.as_view(), name="series-metadata"),
    path(SE + "/rendered", views.RenderedView.as_view(), name="series-rendered"),
    path(SE + "/thumbnail", views.ThumbnailView.as_view(), name="series-thumbnail"),
    path(SE + "/instances", views.InstancesSearchView.as_view(), name="series-instances"),
    path(I, views.InstanceView.as_view(), name="instance"),
    path(I + "/metadata", views.MetadataView.as_view(), name="instance-metadata"),
    path(I + "/rendered", views.RenderedView.as_view(), name="instance-rendered"),
    path(I + "/thumbnail", views.ThumbnailView.as_view(), name="instance-thumbnail"),
    path(I + "/bulkdata/<path:path>", views.BulkdataView.as_view(), name="bulkdata"),
    path(F, views.FramesView.as_view(), name="frames"),
    path(F + "/rendered", views.RenderedView.as_view(), name="frame-rendered"),
    path(F + "/thumbnail", views.ThumbnailView.as_view(), name="frame-thumbnail"),
]
