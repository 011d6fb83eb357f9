from django.urls import re_path

from annotations.api import views

app_name = "annotations"
ID = r"[0-9]{1,18}"  # ids that fit the database's 64-bit keys; anything else is a 404

urlpatterns = [
    re_path(rf"^series/(?P<pk>{ID})/annotations/$", views.AnnotationsView.as_view(), name="list"),
    re_path(rf"^series/(?P<pk>{ID})/annotations/report\.dcm$", views.ReportView.as_view(), name="report"),
    re_path(rf"^series/(?P<pk>{ID})/annotations/(?P<aid>{ID})/$", views.AnnotationView.as_view(), name="detail"),
]
