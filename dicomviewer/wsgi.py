import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dicomviewer.settings")
django_application = get_wsgi_application()

from dicomviewer.front import Front  # noqa: E402  (needs Django set up)
from studies.image_server import SignedImages  # noqa: E402

# Proxies, request ids and /healthz first; then signed image URLs, answered in front of Django
# (they need no session, user or database); then Django.
application = Front(SignedImages(django_application))
