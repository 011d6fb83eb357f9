"""Sharing a study read-only with users and groups: only its owner may (``studies.selectors``
says with whom). An unknown name and a name the owner may not share with get the same answer."""

from __future__ import annotations

from django.db import IntegrityError, transaction

from audit.models import AuditEvent
from audit.services import record
from studies import selectors
from studies.models import Study, StudyShare


class ShareError(Exception):
    """The share cannot be made; the message says why."""


class ShareTargetMissing(ShareError):
    """No such active user or group among those the owner may share with."""


class ShareConflict(ShareError):
    """They see the study already (the owner, or an existing share)."""


def share_add(*, study: Study, by, username: str = "", group_name: str = "", request=None) -> StudyShare:
    if not selectors.can_share_study(by, study):
        raise PermissionError("Only the study's owner can share it.")
    if bool(username) == bool(group_name):
        raise ShareError("Name one user or one group to share with.")
    target = {}
    if username:
        user = selectors.share_users_for(by).filter(username=username).first()
        if user is None:
            raise ShareTargetMissing(f"There is no active user '{username}' you can share with.")
        if user.pk == study.owner_id:
            raise ShareConflict("The owner already sees this study.")
        target["user"] = user
    else:
        group = selectors.share_groups_for(by).filter(name=group_name).first()
        if group is None:
            raise ShareTargetMissing(f"There is no group '{group_name}' you can share with.")
        target["group"] = group
    try:
        with transaction.atomic():
            share = StudyShare.objects.create(study=study, created_by=by, **target)
    except IntegrityError:
        raise ShareConflict("The study is already shared with them.") from None
    record(AuditEvent.Action.SHARE_ADD, request=request, user=by, obj=study, detail=share_detail(share))
    return share


def share_remove(*, share: StudyShare, by, request=None) -> None:
    if not selectors.can_share_study(by, share.study):
        raise PermissionError("Only the study's owner can take a share back.")
    detail = share_detail(share)
    share.delete()
    record(AuditEvent.Action.SHARE_REMOVE, request=request, user=by, obj=share.study, detail=detail)


def share_detail(share: StudyShare) -> dict:
    return {"user_id": share.user_id} if share.user_id else {"group_id": share.group_id}
