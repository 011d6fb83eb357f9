"""What a user may see and change: the one home of these rules. Every page, API and DICOMweb
answer, image, download and admin action goes through these querysets and checks; anything
outside what a user may see answers 404, what they see but may not change 403.

- A study belongs to the user who uploaded it (its owner).
- Only the owner shares it (read-only) and takes shares back, with users and groups it may name
  (``share_users_for``, ``share_groups_for``): superusers and staff included.
- Staff see everything, read-only.
- A share link (``ShareLink``) shows one study read-only to whoever holds its URL, while it is
  neither expired nor revoked (``studies.services.links.link_check`` says which, on every request):
  its series and their images, nothing else (``series_visible_through_link``). Only the owner
  makes, lists and revokes links (``can_share_study``).
- Owners delete their studies and series and re-run their uploads. Anyone else's need a Django
  permission: ``studies.delete_study``, ``studies.delete_series``, ``studies.rerun_upload``
  (superusers hold every permission).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Q, QuerySet

from studies.models import Instance, Patient, Series, ShareLink, Study, StudyShare, Upload


def studies_visible_to(user) -> QuerySet[Study]:
    if user is None or not user.is_authenticated or not user.is_active:
        return Study.objects.none()
    if user.is_staff:
        return Study.objects.all()
    shared = StudyShare.objects.filter(Q(user=user) | Q(group__in=user.groups.all())).values("study_id")
    return Study.objects.filter(Q(owner=user) | Q(pk__in=shared))


def _active(user) -> bool:
    return user is not None and user.is_authenticated and user.is_active


def can_share_study(user, study: Study) -> bool:
    """Only the owner lists, adds and takes back the shares of a study."""
    return _active(user) and study.owner_id == user.pk


def can_delete_study(user, study: Study) -> bool:
    return _active(user) and (study.owner_id == user.pk or user.has_perm("studies.delete_study"))


def can_delete_series(user, series: Series) -> bool:
    return _active(user) and (series.study.owner_id == user.pk or user.has_perm("studies.delete_series"))


def can_rerun_upload(user, upload: Upload) -> bool:
    return _active(user) and (upload.owner_id == user.pk or user.has_perm("studies.rerun_upload"))


def share_users_for(user) -> QuerySet:
    """Whom ``user`` may name in a share: the active members of their groups, or any active user
    for those who may list accounts anyway (``auth.view_user``; superusers) and when
    SHARE_WITH_ANY_USER is on. Any other name, whether an account or not, gets the same answer as
    an unknown one, so that sharing tells nobody which usernames exist."""
    users = get_user_model().objects.filter(is_active=True)
    if not _active(user):
        return users.none()
    if settings.SHARE_WITH_ANY_USER or user.has_perm("auth.view_user"):
        return users
    return users.filter(groups__in=user.groups.all()).distinct()


def share_groups_for(user) -> QuerySet[Group]:
    """The groups ``user`` may share with: their own; any group for those who may list groups
    (``auth.view_group``) and when SHARE_WITH_ANY_USER is on."""
    if not _active(user):
        return Group.objects.none()
    if settings.SHARE_WITH_ANY_USER or user.has_perm("auth.view_group"):
        return Group.objects.all()
    return user.groups.all()


def links_of_study(user, study: Study) -> QuerySet[ShareLink]:
    """The share links of a study, for its owner only (anyone else: none)."""
    if not can_share_study(user, study):
        return ShareLink.objects.none()
    return study.links.all()


def series_visible_through_link(link: ShareLink) -> QuerySet[Series]:
    """What an active share link shows: the series of its study, nothing else. The caller has
    checked that the link is active (``studies.services.links.link_check``)."""
    return Series.objects.filter(study_id=link.study_id)


def instances_visible_through_link(link: ShareLink) -> QuerySet[Instance]:
    return Instance.objects.filter(series__study_id=link.study_id)


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
