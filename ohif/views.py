"""/ohif/: the OHIF Viewer v3 installed by ``manage.py install_ohif`` (ohif/install.py), for signed-in
users only. Its files come from ``OHIF_DIR``; any path without a file extension is one of OHIF's
own routes (/ohif/viewer?StudyInstanceUIDs=...) and gets its index.html; ``app-config.js`` is made
here (ohif/config.py). Without an installed OHIF every path answers a page saying how to install it.
"""

from __future__ import annotations

import re

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe
from django.views.static import serve

from dicomviewer.security import CSP_OHIF
from ohif import install
from ohif.config import START_JS, app_config_js

# Content-hashed names (webpack's chunks, wasm, fonts) never change; the rest is asked again each time.
HASHED = re.compile(r"(^|[./])[0-9a-f]{16}\.[a-z0-9]+$")
IMMUTABLE = "private, max-age=31536000, immutable"
REVALIDATE = "private, no-cache"


@login_required
@require_safe
def ohif(request, path: str = ""):
    folder = settings.OHIF_DIR
    if not install.is_current(folder):
        response = render(request, "ohif/not_installed.html", {"version": install.VERSION}, status=404)
        response["Cache-Control"] = "no-store"
        return response
    if path == "app-config.js":
        response = script(app_config_js(request.build_absolute_uri("/dicomweb")))
        response["Cache-Control"] = "no-store"
    elif path == "ohif-start.js":
        response = script(START_JS)
        response["Cache-Control"] = REVALIDATE
    elif path == install.MARKER:
        raise Http404("No such file.")
    elif "." in path.rsplit("/", 1)[-1]:
        response = serve(request, path, document_root=folder)  # 404 for a missing file
        response["Cache-Control"] = IMMUTABLE if HASHED.search(path) else REVALIDATE
    else:
        response = serve(request, "index.html", document_root=folder)
        response["Cache-Control"] = "no-store"
    response["Content-Security-Policy"] = CSP_OHIF  # workers too: a worker's policy is its script's
    return response


def script(text: str) -> HttpResponse:
    return HttpResponse(text, content_type="text/javascript; charset=utf-8")
