from django.apps import AppConfig


class TokensConfig(AppConfig):
    name = "tokens"
    verbose_name = "API tokens"

    def ready(self):
        from tokens import schema, signals  # noqa: F401  (the OpenAPI security scheme; revocation on password change)
