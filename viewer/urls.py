from django.urls import path

from viewer import views

app_name = "viewer"

urlpatterns = [
    path("", views.home, name="home"),
    path("upload/", views.upload, name="upload"),
    path("studies/<int:pk>/", views.study_detail, name="study"),
    path("studies/<int:pk>/delete/", views.study_delete, name="study-delete"),
    path("studies/<int:pk>/anonymise/", views.study_anonymise, name="study-anonymise"),
    path("studies/<int:pk>/status/", views.study_status, name="study-status"),
    path("studies/<int:pk>/shares/", views.study_share_add, name="study-share-add"),
    path("studies/<int:pk>/shares/<int:share_id>/remove/", views.study_share_remove, name="study-share-remove"),
    path("series/<int:pk>/", views.series_viewer, name="series"),
    path("series/<int:pk>/config/", views.series_config_json, name="series-config"),
    path("series/<int:pk>/status/", views.series_status, name="series-status"),
    path("series/<int:pk>/tags/", views.image_tags, name="image-tags"),
]
