"""Template helpers of the pages: DICOM names, sortable headers, page links."""

from __future__ import annotations

from django import template
from django.utils.html import format_html

from studies.services import image_access
from viewer.presenters import person_name as _person_name
from viewer.presenters import sex_label

register = template.Library()


@register.simple_tag
def thumbnail_url(series_id: int, version: int) -> str:
    """The signed URL of a series' thumbnail (the page's own audit event names the series shown)."""
    return image_access.thumbnail_url(series_id, version)


@register.filter
def person_name(value: str) -> str:
    return _person_name(value)


@register.filter
def modalities(value: str) -> list[str]:
    return [code for code in (value or "").split("\\") if code]


@register.filter
def sex(value: str) -> str:
    return sex_label(value)


@register.simple_tag(takes_context=True)
def query(context, **changes) -> str:
    """The current page's query string with some parameters changed (None removes one)."""
    params = context["request"].GET.copy()
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    return "?" + params.urlencode()


@register.simple_tag(takes_context=True)
def sort_header(context, key: str, label: str):
    """A table header cell that sorts by ``key``, toggling the direction, with an arrow when active."""
    current = context["sort"]
    active = current.lstrip("-") == key
    descending = current.startswith("-")
    target = (key if descending else f"-{key}") if active else key
    arrow = ("▼" if descending else "▲") if active else ""
    state = ("descending" if descending else "ascending") if active else "none"
    href = query(context, sort=target, page=None)
    return format_html(
        '<th scope="col" aria-sort="{}"><a class="sort{}" href="{}">{}'
        '<span class="arrow" aria-hidden="true">{}</span></a></th>',
        state,
        " active" if active else "",
        href,
        label,
        arrow,
    )
