"""``{% ohif_study_link study %}``: the study page's "Open in OHIF" (only when OHIF is installed)."""

from __future__ import annotations

from urllib.parse import urlencode

from django import template
from django.conf import settings
from django.urls import reverse
from django.utils.html import format_html

from ohif import install

register = template.Library()


@register.simple_tag
def ohif_study_link(study) -> str:
    if not install.is_current(settings.OHIF_DIR):
        return ""
    url = reverse("ohif:file", args=["viewer"]) + "?" + urlencode({"StudyInstanceUIDs": study.study_instance_uid})
    return format_html('<a class="btn small" id="study-ohif" href="{}">Open in OHIF</a>', url)
