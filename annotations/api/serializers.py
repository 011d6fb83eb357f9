from rest_framework import serializers

from annotations.models import Annotation

POINT_HELP = "[column, row] in the pixels of the plane image (pixel centres are whole numbers)"


class AnnotationSerializer(serializers.ModelSerializer):
    pixels = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(), min_length=2, max_length=2),
        min_length=1,
        max_length=3,
        help_text=f"The drawn points, each {POINT_HELP}: 2 for length, ellipse and rectangle (opposite corners "
        "of the shape's box), 3 for angle (vertex in the middle), 1 for probe.",
    )
    points = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(), min_length=3, max_length=3),
        read_only=True,
        allow_null=True,
        help_text="The same points in patient coordinates (LPS, mm), from the plane geometry; null on a stack "
        "without geometry.",
    )
    plane = serializers.ChoiceField(
        choices=["axial", "coronal", "sagittal", "acquired", "stack"],
        help_text="The plane it was drawn on (one the series has: see planes in /api/series/<id>/).",
    )
    values = serializers.DictField(
        required=False,
        help_text="Measured values. Sent: for ellipse/rectangle the statistics from the roi endpoint (mean, sd, "
        "min, max, n, unit); for a probe value and unit. Computed here: length_mm (length_px without pixel "
        "spacing), angle_deg, area_mm2.",
    )

    class Meta:
        model = Annotation
        fields = ["id", "kind", "plane", "index", "pixels", "points", "label", "values", "created_at", "updated_at"]
        read_only_fields = ["id", "points", "created_at", "updated_at"]
        extra_kwargs = {
            "index": {"help_text": "Image number in the plane, from 0."},
            "label": {"required": False},
        }


class AnnotationUpdateSerializer(serializers.ModelSerializer):
    class Meta:
        model = Annotation
        fields = ["label"]
