import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dicomviewer.settings")
django_application = get_wsgi_application()

from studies.image_server import SignedImages  # noqa: E402  (needs Django set up)

# Signed image URLs are answered in front of Django: they need no session, user or database.
application = SignedImages(django_application)
