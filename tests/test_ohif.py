"""/ohif/ and ``manage.py install_ohif`` (ohif/): the pinned npm build installed only when its sha512
matches, rewritten for /ohif/, and served to signed-in users with our app-config.js and its own CSP.
Built from a small tarball shaped like ``@ohif/app``'s (the real one: tests/test_browser_ohif.py)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from ohif import install
from tests.factories import make_study

pytestmark = pytest.mark.django_db

BUNDLE = "app.bundle.0123456789abcdef.js"
# The parts of OHIF 3.13.2's index.html that the install rewrites, in their order there.
INDEX = (
    '<!doctype html><html lang="en"><head><meta name="msapplication-TileImage" content="/assets/tile.png">'
    '<script>console.time("scriptToView"),window.PUBLIC_URL="/"</script>'
    '<link rel="manifest" href="/manifest.json">'
    '<script rel="preload" as="script" src="/app-config.js"></script>'
    '<script rel="preload" as="script" type="module" src="/init-service-worker.js"></script>'
    "<title>OHIF Viewer</title>"
    '<script>function browserImportFunction(n){return import(n)}window.PUBLIC_URL="/"</script>'
    f'<script defer src="/{BUNDLE}"></script><link href="/app.bundle.css" rel="stylesheet"></head>'
    '<body><div id="root"></div></body></html>'
)
DIST = {
    "index.html": INDEX.encode(),
    BUNDLE: b'(() => {\n__webpack_require__.p = "/";\n})();',
    "app.bundle.css": b"@font-face{src:url(/fedcba9876543210.woff2)}",
    "0123456789abcdef.wasm": b"\0asm\1\0\0\0",
    f"{BUNDLE}.map": b"{}",
    "app-config.js": b"window.config = {dataSources: ['somewhere else']};",
    "assets/favicon.ico": b"icon",
}


def tarball(files: dict[str, bytes], tmp_path: Path, name: str = "app.tgz") -> Path:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for member, data in files.items():
            info = tarfile.TarInfo(member if member.startswith("package/") else f"package/dist/{member}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    path = tmp_path / name
    path.write_bytes(buffer.getvalue())
    return path


def integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


@pytest.fixture
def pinned(tmp_path, monkeypatch, settings) -> Path:
    """A tarball shaped like @ohif/app's, pinned in place of the real one; OHIF_DIR in tmp_path."""
    path = tarball(DIST, tmp_path)
    monkeypatch.setattr(install, "INTEGRITY", integrity(path))
    settings.OHIF_DIR = tmp_path / "var" / "ohif"
    return path


@pytest.fixture
def installed(pinned, settings) -> Path:
    install.install(settings.OHIF_DIR, tarball=pinned)
    return settings.OHIF_DIR


def test_install_rewrites_the_build_for_ohif_and_leaves_out_source_maps(pinned, settings):
    folder = settings.OHIF_DIR
    done = install.install(folder, tarball=pinned)
    assert done.version == install.VERSION and install.is_current(folder)
    index = (folder / "index.html").read_text()
    assert "<script>" not in index and "PUBLIC_URL" not in index and "init-service-worker" not in index
    start, config, bundle = (index.index(f'src="/ohif/{name}') for name in ("ohif-start.js", "app-config.js", BUNDLE))
    assert start < config < bundle  # PUBLIC_URL and window.config are set before OHIF starts
    assert 'href="/ohif/manifest.json"' in index and 'content="/ohif/assets/tile.png"' in index
    assert 'src="/' not in index.replace('src="/ohif/', "") and 'href="/' not in index.replace('href="/ohif/', "")
    assert (folder / BUNDLE).read_text() == '(() => {\n__webpack_require__.p = "/ohif/";\n})();'
    assert (folder / "app.bundle.css").read_text() == "@font-face{src:url(/ohif/fedcba9876543210.woff2)}"
    assert not (folder / f"{BUNDLE}.map").exists() and (folder / "assets" / "favicon.ico").read_bytes() == b"icon"
    # installed once: a second call neither fetches nor reads anything
    assert install.install(folder, tarball=Path("/nonexistent.tgz")) == done


def test_a_tarball_failing_its_integrity_check_changes_nothing(installed, tmp_path):
    before = (installed / "index.html").read_bytes()
    other = tarball({**DIST, BUNDLE: b'__webpack_require__.p = "/"; evil()'}, tmp_path, "other.tgz")
    with pytest.raises(install.InstallError, match="integrity check failed"):
        install.install(installed, tarball=other, force=True)
    assert (installed / "index.html").read_bytes() == before and install.is_current(installed)
    assert not (installed / BUNDLE).read_text().endswith("evil()")


@pytest.mark.parametrize(
    "files, problem",
    [
        ({**DIST, "package/dist/../../escaped.txt": b"x"}, "unsafe path"),
        ({**DIST, "index.html": b"<html><title>x</title></html>"}, "a different OHIF build"),
        ({"index.html": INDEX.encode()}, "no built viewer"),
    ],
)
def test_unsafe_or_unexpected_builds_are_refused(files, problem, tmp_path, monkeypatch):
    path = tarball(files, tmp_path)
    monkeypatch.setattr(install, "INTEGRITY", integrity(path))
    folder = tmp_path / "deep" / "ohif"
    with pytest.raises(install.InstallError, match=problem):
        install.install(folder, tarball=path)
    assert not folder.exists() and not (tmp_path / "escaped.txt").exists()
    assert list((tmp_path / "deep").iterdir()) == []  # no staging folder left behind


def test_install_command_reports_success_and_failure(pinned, settings, tmp_path):
    out = io.StringIO()
    call_command("install_ohif", tarball=pinned, stdout=out)
    assert f"OHIF Viewer {install.VERSION} installed" in out.getvalue()
    call_command("install_ohif", stdout=out)  # there already: no tarball needed
    assert "is installed in" in out.getvalue()
    with pytest.raises(CommandError, match="integrity check failed"):
        call_command("install_ohif", tarball=tarball({}, tmp_path, "empty.tgz"), force=True)


def test_ohif_asks_for_sign_in(client, installed):
    response = client.get("/ohif/viewer?StudyInstanceUIDs=1.2.3")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/ohif/viewer")


def test_without_ohif_a_page_says_how_to_install_it(client, user, settings, tmp_path):
    settings.OHIF_DIR = tmp_path / "none"
    client.force_login(user)
    for url in ("/ohif/", "/ohif/viewer", "/ohif/app-config.js"):
        response = client.get(url)
        assert response.status_code == 404 and b"make ohif" in response.content, url


def test_routes_get_index_files_are_served_with_ohifs_csp(client, user, installed):
    client.force_login(user)
    for url in ("/ohif/", "/ohif/viewer?StudyInstanceUIDs=1.2.3", "/ohif/viewer/dicomweb"):
        response = client.get(url)
        assert response.status_code == 200 and f"/ohif/{BUNDLE}".encode() in b"".join(response.streaming_content)
        assert response["Cache-Control"] == "no-store"
    csp = response["Content-Security-Policy"]
    assert "script-src 'self' 'unsafe-eval' 'wasm-unsafe-eval';" in csp and "worker-src 'self' blob:" in csp
    assert "unsafe-inline" not in csp.split("style-src")[0] and "frame-ancestors 'none'" in csp

    bundle = client.get(f"/ohif/{BUNDLE}")
    assert bundle["Content-Type"].startswith("text/javascript")
    assert bundle["Cache-Control"] == "private, max-age=31536000, immutable"
    assert bundle["Content-Security-Policy"] == csp  # a worker takes its policy from its script
    assert client.get("/ohif/0123456789abcdef.wasm")["Content-Type"] == "application/wasm"
    assert client.get("/ohif/assets/favicon.ico")["Cache-Control"] == "private, no-cache"
    for missing in ("/ohif/nothing.js", f"/ohif/{BUNDLE}.map", "/ohif/installed.json"):
        assert client.get(missing).status_code == 404, missing
    (installed.parent / "outside.txt").write_text("not OHIF's")
    for escape in ("/ohif/..%2Foutside.txt", "/ohif/assets/..%2F..%2Foutside.txt", "/ohif/%2E%2E/outside.txt"):
        response = client.get(escape)
        assert response.status_code in (400, 404) and b"not OHIF" not in response.getvalue(), escape
    assert client.post("/ohif/viewer").status_code == 405

    # every other page keeps the strict policy
    assert "script-src 'self';" in client.get("/")["Content-Security-Policy"]


def test_app_config_points_ohif_at_this_sites_dicomweb(client, user, installed):
    client.force_login(user)
    response = client.get("/ohif/app-config.js")
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    text = response.content.decode()
    assert text.startswith("window.config = ") and text.rstrip().endswith(";")
    config = json.loads(text.removeprefix("window.config = ").rstrip().rstrip(";"))
    assert config["routerBasename"] == "/ohif" and config["defaultDataSourceName"] == "dicomweb"
    (source,) = config["dataSources"]
    settings_of = source["configuration"]
    for root in ("qidoRoot", "wadoRoot", "wadoUriRoot"):
        assert settings_of[root] == "http://testserver/dicomweb"
    assert settings_of["omitQuotationForMultipartRequest"] is True and settings_of["dicomUploadEnabled"] is False
    start = client.get("/ohif/ohif-start.js").content.decode()
    assert 'window.PUBLIC_URL = "/ohif/";' in start and "function browserImportFunction" in start


def test_study_page_opens_the_study_in_ohif_when_installed(client, user, other_user, settings, pinned):
    study = make_study(user, 1)
    client.force_login(user)
    link = f'href="/ohif/viewer?StudyInstanceUIDs={study.study_instance_uid}"'
    assert link not in client.get(f"/studies/{study.pk}/").content.decode()
    install.install(settings.OHIF_DIR, tarball=pinned)
    assert link in client.get(f"/studies/{study.pk}/").content.decode()
