"""`make run` keeps what it creates to its user: the secret key, the SQLite file, var/ and the
storage folder; the storage folder is readable by nginx's workers only where nginx sends files."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from studies import storage
from studies.management.commands.serve import private_files
from tests.conftest import REPO


def mode(path) -> int:
    return path.stat().st_mode & 0o777


@pytest.fixture
def umask():
    """Runs the test under a given umask, and puts the process's own back."""
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


@pytest.mark.parametrize("setting, files, folders", [(0o600, 0o600, 0o700), (0o644, 0o644, 0o755)])
@pytest.mark.parametrize("process_umask", [0o022, 0o077])
def test_stored_files_and_folders_get_media_file_mode_whatever_the_umask(
    settings, media_root, umask, setting, files, folders, process_umask
):
    settings.MEDIA_FILE_MODE = setting
    umask(process_umask)
    name = storage.image_name(7, 1, "axial", 0)
    storage.default().save_bytes(name, b"png")
    path = storage.local_path(name)
    assert mode(path) == files
    assert {mode(folder) for folder in path.parents if media_root in folder.parents} == {folders}


def test_the_default_is_owner_only_unless_nginx_sends_the_files():
    code = "from django.conf import settings; print(oct(settings.MEDIA_FILE_MODE))"
    for accel, expected in (("", "0o600"), ("/protected-media/", "0o644")):
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "dicomviewer.settings", "MEDIA_ACCEL_REDIRECT": accel}
        env.pop("MEDIA_FILE_MODE", None)
        out = subprocess.run(
            [sys.executable, "-c", f"import django; django.setup(); {code}"],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out.strip() == expected


def test_make_run_creates_an_owner_only_secret_key_and_var(tmp_path):
    var = tmp_path / "var"
    make = ["make", "-s", "secret", f"VAR_DIR={var}", f"PY={sys.executable}"]
    subprocess.run(make, cwd=REPO, check=True, preexec_fn=lambda: os.umask(0o022))
    key = (var / "secret_key").read_text()
    assert len(key.strip()) >= 50 and mode(var / "secret_key") == 0o600 and mode(var) == 0o700
    (var / "secret_key").chmod(0o644)  # left so by an earlier `make run`
    var.chmod(0o755)
    subprocess.run(make, cwd=REPO, check=True)
    assert (var / "secret_key").read_text() == key and mode(var / "secret_key") == 0o600 and mode(var) == 0o700


def test_serve_makes_its_processes_files_owner_only(settings, tmp_path, media_root, umask):
    settings.VAR_DIR = tmp_path / "var"
    settings.SECRET_KEY_FILE = settings.VAR_DIR / "secret_key"
    settings.VAR_DIR.mkdir(mode=0o755)
    settings.SECRET_KEY_FILE.write_text("k" * 50)
    settings.SECRET_KEY_FILE.chmod(0o644)
    media_root.chmod(0o755)
    private_files()
    assert os.umask(0o077) == 0o077  # the web server's, the worker's files: the SQLite file, caches...
    assert mode(settings.VAR_DIR) == 0o700 and mode(settings.SECRET_KEY_FILE) == 0o600 and mode(media_root) == 0o700
    settings.MEDIA_FILE_MODE = 0o644
    private_files()
    assert mode(media_root) == 0o755
