"""Test-run environment, loaded as a pytest plugin (-p tests.testenv) before Django reads its settings."""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production-0123456789")
os.environ.setdefault("SECURE_COOKIES", "0")
_scratch = tempfile.mkdtemp(prefix="dicomviewer-test-")
# Every test process has its own folders, whatever the environment says (`make test` exports the
# developer's VAR_DIR=var, and pytest-xdist's workers inherit what their controller set): the
# ingest's claims are flock files under VAR_DIR/locks keyed by upload id, and every xdist worker's
# database numbers its uploads from 1, so with one shared folder one worker's ingest of upload 1
# made another's stay "queued". (Each test gets its own media folder too: conftest.media_root.)
os.environ["VAR_DIR"] = os.path.join(_scratch, "var")
os.environ["MEDIA_ROOT"] = os.path.join(_scratch, "media")
# Tests sign in and upload far faster than people do; the rate-limit tests set their own limits.
for _scope in ("LOGIN", "TOKEN", "UPLOAD"):
    os.environ.setdefault(f"RATE_LIMIT_{_scope}", "100000/minute")
