"""Installs the OHIF Viewer v3 that /ohif/ serves: the built ``dist/`` of the pinned npm package
``@ohif/app``, fetched from the npm registry, checked against npm's sha512 integrity, unpacked into
a folder outside git. No Django here (``manage.py install_ohif`` and the Dockerfile call it).

The npm build is made for the root of a site (webpack's public path "/", ``url(/...)`` in its CSS,
``src="/..."`` in index.html); /ohif/ needs them under ``PREFIX``. Those few literal strings are
rewritten while unpacking, and each rewrite must be found where expected, so a new OHIF build that
moved them fails here instead of loading half a viewer. Nothing else of OHIF is changed. Source
maps are left out (about half the size; nothing loads them unless developer tools are open).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

PREFIX = "/ohif/"
VERSION = "3.13.2"
# `npm view @ohif/app@3.13.2 dist.integrity`
INTEGRITY = "sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA=="
REGISTRY = "https://registry.npmjs.org"
MARKER = "installed.json"  # written last: a folder without it is not (fully) installed
MAX_TARBALL_BYTES = 200 * 1024**2
MAX_UNPACKED_BYTES = 600 * 1024**2

PUBLIC_PATH = '__webpack_require__.p = "/"'


class InstallError(Exception):
    """The tarball could not be fetched, failed its integrity check, or is not the expected build."""


@dataclass(frozen=True)
class Installed:
    version: str
    integrity: str
    files: int
    bytes: int


def tarball_url(registry: str = REGISTRY, version: str = VERSION) -> str:
    return f"{registry.rstrip('/')}/@ohif/app/-/app-{version}.tgz"


def installed(folder: Path) -> Installed | None:
    """What the marker says is installed in ``folder`` (None: nothing, or an unfinished install)."""
    try:
        data = json.loads((Path(folder) / MARKER).read_text())
        return Installed(data["version"], data["integrity"], data["files"], data["bytes"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def is_current(folder: Path) -> bool:
    found = installed(folder)
    return found is not None and found.version == VERSION and found.integrity == INTEGRITY


def fetch(url: str, timeout: float = 60) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (a fixed https URL)
            data = response.read(MAX_TARBALL_BYTES + 1)
    except OSError as exc:
        raise InstallError(f"could not fetch {url}: {exc}") from None
    if len(data) > MAX_TARBALL_BYTES:
        raise InstallError(f"{url} is larger than {MAX_TARBALL_BYTES} bytes")
    return data


def check_integrity(data: bytes, integrity: str) -> None:
    """npm's Subresource-Integrity string: ``sha512-`` and the base64 digest."""
    algorithm, _, expected = integrity.partition("-")
    if algorithm != "sha512":
        raise InstallError(f"unsupported integrity algorithm {algorithm!r}")
    actual = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if actual != expected:
        raise InstallError(f"integrity check failed: got sha512-{actual}, expected {integrity}")


def rewrite(name: str, data: bytes) -> bytes:
    """One file of dist/ made to work under PREFIX (see the module's docstring)."""
    if name == "index.html":
        return index_html(data.decode()).encode()
    if name.endswith(".js") and PUBLIC_PATH.encode() in data:
        return data.replace(PUBLIC_PATH.encode(), f'__webpack_require__.p = "{PREFIX}"'.encode())
    if name.endswith(".css"):
        return data.replace(b"url(/", f"url({PREFIX}".encode())
    return data


def index_html(text: str) -> str:
    """OHIF's index.html for PREFIX, without inline scripts (our Content-Security-Policy allows none:
    their two statements move to ``ohif-start.js``, served by the app) and without the service worker
    (it would keep copies of the viewer in the browser; images never go through it anyway)."""
    inline = [
        '<script>console.time("scriptToView"),window.PUBLIC_URL="/"</script>',
        '<script>function browserImportFunction(n){return import(n)}window.PUBLIC_URL="/"</script>',
        '<script rel="preload" as="script" type="module" src="/init-service-worker.js"></script>',
    ]
    for snippet in inline:
        if snippet not in text:
            raise InstallError(f"index.html: expected {snippet!r} (a different OHIF build?)")
        text = text.replace(snippet, "")
    text = text.replace('<script rel="preload" as="script" src="/app-config.js"></script>', "")
    text = text.replace('href="/', f'href="{PREFIX}').replace('src="/', f'src="{PREFIX}')
    text = text.replace('content="/assets/', f'content="{PREFIX}assets/')
    start = f'<script src="{PREFIX}ohif-start.js"></script>'
    text = text.replace("<title>", f'{start}<script src="{PREFIX}app-config.js"></script><title>', 1)
    if text.count(start) != 1 or f'src="{PREFIX}app.bundle.' not in text:
        raise InstallError("index.html: the script tags are not where expected (a different OHIF build?)")
    return text


def unpack(data: bytes, folder: Path) -> Installed:
    """The tarball's ``package/dist/`` (regular files only, no source maps), rewritten, into
    ``folder``, replacing what was there only once everything is unpacked."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".ohif-", dir=folder.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp's 0700 would hide it from a server running as another user
    try:
        files, total, public_paths = 0, 0, 0
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            for member in archive:
                name = member.name.removeprefix("package/dist/")
                if name == member.name or not member.isfile() or name.endswith(".map"):
                    continue
                parts = Path(name).parts
                if not parts or any(part in ("", ".", "..") for part in parts) or Path(name).is_absolute():
                    raise InstallError(f"unsafe path in the tarball: {member.name!r}")
                content = archive.extractfile(member).read()
                public_paths += PUBLIC_PATH.encode() in content
                content = rewrite(name, content)
                total += len(content)
                if total > MAX_UNPACKED_BYTES:
                    raise InstallError(f"the tarball unpacks to more than {MAX_UNPACKED_BYTES} bytes")
                target = staging.joinpath(*parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
                files += 1
        if not (staging / "index.html").is_file() or public_paths == 0:
            raise InstallError("the tarball has no built viewer (package/dist/index.html, webpack's public path)")
        result = Installed(VERSION, INTEGRITY, files, total)
        (staging / MARKER).write_text(json.dumps(result.__dict__))
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def install(folder: Path, *, registry: str = REGISTRY, tarball: Path | None = None, force: bool = False) -> Installed:
    """Installs the pinned OHIF into ``folder`` unless it is there already (``force``: again)."""
    if not force and is_current(folder):
        return installed(folder)
    data = Path(tarball).read_bytes() if tarball else fetch(tarball_url(registry))
    check_integrity(data, INTEGRITY)
    return unpack(data, folder)
