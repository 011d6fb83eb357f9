"""Test-run environment, loaded as a pytest plugin (-p tests.testenv) before Django reads its settings."""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production-0123456789")
os.environ.setdefault("SECURE_COOKIES", "0")
_scratch = tempfile.mkdtemp(prefix="dicomviewer-test-")
# Every test process has its own VAR_DIR, whatever the environment says (`make test` exports the
# developer's var/): the ingest's claims are flock files under VAR_DIR/locks keyed by upload id,
# and every pytest-xdist worker's database numbers its uploads from 1, so with one shared folder
# one worker's ingest of upload 1 made another's stay "queued".
os.environ["VAR_DIR"] = os.path.join(_scratch, "var")
# MEDIA_ROOT: the caller's if set; else this process's own (an xdist worker inherits the folder
# its controlling process made here, and makes its own instead).
_inherited = os.environ.get("DICOMVIEWER_TEST_SCRATCH")
if os.environ.get("PYTEST_XDIST_WORKER") and _inherited:
    if os.environ.get("MEDIA_ROOT") == os.path.join(_inherited, "media"):
        os.environ["MEDIA_ROOT"] = os.path.join(_scratch, "media")
os.environ["DICOMVIEWER_TEST_SCRATCH"] = _scratch
os.environ.setdefault("MEDIA_ROOT", os.path.join(_scratch, "media"))
# Tests sign in and upload far faster than people do; the rate-limit tests set their own limits.
for _scope in ("LOGIN", "TOKEN", "UPLOAD"):
    os.environ.setdefault(f"RATE_LIMIT_{_scope}", "100000/minute")
