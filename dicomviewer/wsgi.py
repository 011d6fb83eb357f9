import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dicomviewer.settings")
django_application = get_wsgi_application()

from studies.api.fastpath import FastImages  # noqa: E402  (needs Django set up)

application = FastImages(django_application)
