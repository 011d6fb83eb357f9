"""A password changed or reset, or an account deactivated: none of its API tokens works again."""

from django.dispatch import receiver

from dicomviewer.credentials import credentials_changed
from tokens.services import tokens_revoke_all


@receiver(credentials_changed, dispatch_uid="tokens-revoke-on-credentials")
def revoke_tokens(sender, user, reason, request=None, **kwargs):
    tokens_revoke_all(user, reason=reason, request=request)
