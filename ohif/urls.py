from django.urls import path

from ohif import views

app_name = "ohif"

urlpatterns = [
    path("", views.ohif, name="index"),
    path("<path:path>", views.ohif, name="file"),
]
