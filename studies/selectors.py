"""What a user may see and change. Every page, API and DICOMweb answer, image and download
goes through these querysets; anything outside them answers 404.

- A study belongs to the user who uploaded it (its owner).
- The owner may share it read-only with users and groups.
- Staff see everything (read-only unless they own it, except that staff may delete).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from django.db import connection
from django.db.models import Q, QuerySet

from studies.models import Instance, Patient, Series, Study, StudyShare, Upload


def studies_visible_to(user) -> QuerySet[Study]:
    if user is None or not user.is_authenticated or not user.is_active:
        return Study.objects.none()
    if user.is_staff:
        return Study.objects.all()
    shared = StudyShare.objects.filter(Q(user=user) | Q(group__in=user.groups.all())).values("study_id")
    return Study.objects.filter(Q(owner=user) | Q(pk__in=shared))


def studies_editable_by(user) -> QuerySet[Study]:
    """Studies the user may delete or share: their own; staff may delete any."""
    if user is None or not user.is_authenticated or not user.is_active:
        return Study.objects.none()
    if user.is_staff:
        return Study.objects.all()
    return Study.objects.filter(owner=user)


def series_visible_to(user) -> QuerySet[Series]:
    return Series.objects.filter(study__in=studies_visible_to(user))


def instances_visible_to(user) -> QuerySet[Instance]:
    return Instance.objects.filter(series__study__in=studies_visible_to(user))


def patients_visible_to(user) -> QuerySet[Patient]:
    return Patient.objects.filter(pk__in=studies_visible_to(user).values("patient_id"))


def uploads_visible_to(user) -> QuerySet[Upload]:
    if user is None or not user.is_authenticated or not user.is_active:
        return Upload.objects.none()
    if user.is_staff:
        return Upload.objects.all()
    return Upload.objects.filter(owner=user)


def can_edit_study(user, study: Study) -> bool:
    return studies_editable_by(user).filter(pk=study.pk).exists()


def visible_series(user, pk: int) -> Series | None:
    """The series ``pk`` if ``user`` may see it, else None: the image path's one- or two-query
    version of ``series_visible_to(user).filter(pk=pk)`` (same rules)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    # layout (frame lists of whole volumes) is read only when a worker or on-demand render needs it
    series = Series.objects.select_related("study").defer("layout").filter(pk=pk).first()
    if series is None:
        return None
    if user.is_staff or series.study.owner_id == user.pk:
        return series
    shared = StudyShare.objects.filter(study_id=series.study_id).filter(Q(user=user) | Q(group__in=user.groups.all()))
    return series if shared.exists() else None


@dataclass(frozen=True)
class TokenImageAccess:
    """What the image fast path needs once a token may see a series (see token_image_access)."""

    user_id: int
    token_id: int
    series_id: int
    study_id: int
    render_version: int
    planes: dict


@cache
def _token_image_sql() -> str:
    from django.contrib.auth import get_user_model

    from tokens.models import ApiToken

    user_model = get_user_model()
    token, user = ApiToken._meta.db_table, user_model._meta.db_table
    member = user_model.groups.through._meta.db_table
    series, study, share = Series._meta.db_table, Study._meta.db_table, StudyShare._meta.db_table
    # studies_visible_to's rules in one statement: staff; the owner; a share to the user or to one
    # of the user's groups (tests/test_selectors.py holds the two to the same answers)
    return f"""
        SELECT u.id, t.id, s.id, s.study_id, s.render_version, s.planes
        FROM {token} t
        JOIN {user} u ON u.id = t.user_id
        JOIN {series} s ON s.id = %s
        JOIN {study} st ON st.id = s.study_id
        WHERE t.key_hash = %s AND t.revoked_at IS NULL AND u.is_active
          AND (u.is_staff OR st.owner_id = u.id OR EXISTS (
                SELECT 1 FROM {share} sh
                WHERE sh.study_id = st.id AND (sh.user_id = u.id OR sh.group_id IN (
                    SELECT m.group_id FROM {member} m WHERE m.user_id = u.id))))
    """


def token_image_access(key_hash: str, series_pk: int) -> TokenImageAccess | None:
    """The image fast path's check in one query: the active named API token with this key hash
    belongs to an active user who may see series ``series_pk`` (``series_visible_to``'s rules).
    None for anything else: no such token, revoked, inactive user, no such series, not visible."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            _execute_prepared(cursor, [series_pk, key_hash])
        else:
            cursor.execute(_token_image_sql(), [series_pk, key_hash])
        row = cursor.fetchone()
    if row is None:
        return None
    user_id, token_id, series_id, study_id, version, planes = row
    planes = Series._meta.get_field("planes").from_db_value(planes, None, connection)
    return TokenImageAccess(user_id, token_id, series_id, study_id, version, planes or {})


def _execute_prepared(cursor, params: list) -> None:
    """PostgreSQL plans a statement each time it is sent (about 0.4 ms for this one, several times
    its execution); a prepared statement is planned once per database connection."""
    raw = connection.connection
    if getattr(connection, "_token_image_prepared_for", None) is not raw:
        sql = _token_image_sql().replace("%s", "$1", 1).replace("%s", "$2", 1)
        cursor.execute(f"PREPARE token_image (bigint, text) AS {sql}")
        connection._token_image_prepared_for = raw
    cursor.execute("EXECUTE token_image (%s, %s)", params)
