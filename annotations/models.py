"""Measurements a user draws on a series: one user's, on one series, never shared.

Points are kept twice: as drawn (``pixels``: [column, row] of the plane image ``plane``/``index``,
pixel centres at whole numbers) and in patient coordinates (``points``: LPS millimetres, derived
from the plane geometry), so a measurement shows on every image it lies in, whatever the plane.
A stack without geometry has no patient coordinates: ``points`` is null and the measurement
belongs to its one image.
"""

from django.conf import settings
from django.db import models

from studies.models import Series


class Annotation(models.Model):
    class Kind(models.TextChoices):
        LENGTH = "length", "Length"
        ANGLE = "angle", "Angle"
        ELLIPSE = "ellipse", "Ellipse ROI"
        RECTANGLE = "rectangle", "Rectangle ROI"
        PROBE = "probe", "Probe"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    series = models.ForeignKey(Series, on_delete=models.CASCADE, related_name="annotations")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    plane = models.CharField(max_length=16)
    index = models.PositiveIntegerField()
    pixels = models.JSONField()  # [[col, row], ...] in the plane image
    points = models.JSONField(null=True, blank=True)  # [[x, y, z], ...] LPS mm, or null (stack)
    label = models.CharField(max_length=128, blank=True)
    # length_mm, angle_deg; ROI: mean, sd, min, max, n, area_mm2, unit; probe: value, unit
    values = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["owner", "series"])]

    def __str__(self):
        return f"{self.get_kind_display()} {self.pk} on series {self.series_id}"
