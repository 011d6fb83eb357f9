from django.apps import AppConfig


class OhifConfig(AppConfig):
    name = "ohif"
    verbose_name = "OHIF Viewer"
