"""The ``app-config.js`` /ohif/ hands OHIF: one DICOMweb data source, this site's /dicomweb/, used
with the signed-in user's session (same origin: the browser sends the cookie; our GETs need no CSRF
token). Its switches say what our DICOMweb service does (README: DICOMweb)."""

from __future__ import annotations

import json

from ohif.install import PREFIX

DATA_SOURCE = "dicomweb"


def app_config(dicomweb_root: str) -> dict:
    """OHIF's ``window.config`` for a DICOMweb service at ``dicomweb_root`` (no trailing slash)."""
    return {
        "routerBasename": PREFIX.rstrip("/"),
        "extensions": [],
        "modes": [],
        "showStudyList": True,
        "maxNumberOfWebWorkers": 3,
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": True,
        "showLoadingIndicator": True,
        "strictZSpacingForVolumeViewport": True,
        "defaultDataSourceName": DATA_SOURCE,
        "dataSources": [
            {
                "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
                "sourceName": DATA_SOURCE,
                "configuration": {
                    "friendlyName": "dicomviewer",
                    "name": DATA_SOURCE,
                    "qidoRoot": dicomweb_root,
                    "wadoRoot": dicomweb_root,
                    "wadoUriRoot": dicomweb_root,
                    "qidoSupportsIncludeField": True,
                    "supportsReject": False,
                    "supportsStow": False,
                    "dicomUploadEnabled": False,  # STOW with a session would need a CSRF token
                    "imageRendering": "wadors",
                    "thumbnailRendering": "wadors",
                    "enableStudyLazyLoad": True,
                    "supportsFuzzyMatching": False,  # fuzzymatching is accepted, not used
                    "supportsWildcard": True,
                    "staticWado": False,
                    "singlepart": False,  # frames and bulk data come as multipart/related
                    "omitQuotationForMultipartRequest": True,
                    "bulkDataURI": {"enabled": True},
                },
            }
        ],
    }


def app_config_js(dicomweb_root: str) -> str:
    return f"window.config = {json.dumps(app_config(dicomweb_root), indent=2)};\n"


# What OHIF's index.html did in inline scripts (install.index_html moves them here).
START_JS = (
    'console.time("scriptToView");\n'
    f"window.PUBLIC_URL = {json.dumps(PREFIX)};\n"
    "function browserImportFunction(moduleId) { return import(moduleId); }\n"
)
