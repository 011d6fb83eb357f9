"""Test-run environment, loaded as a pytest plugin (-p tests.testenv) before Django reads its settings."""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production-0123456789")
os.environ.setdefault("SECURE_COOKIES", "0")
_scratch = tempfile.mkdtemp(prefix="dicomviewer-test-")
# pytest-xdist's workers inherit the environment of the process that started them: folders that
# process made here would be shared by every worker (the ingest's claim on upload 1 in one worker's
# database then blocked upload 1 in another's, which stayed "queued"). Each worker makes its own.
_inherited = os.environ.get("DICOMVIEWER_TEST_SCRATCH")
if os.environ.get("PYTEST_XDIST_WORKER") and _inherited:
    for _name, _sub in (("VAR_DIR", "var"), ("MEDIA_ROOT", "media")):
        if os.environ.get(_name) == os.path.join(_inherited, _sub):
            os.environ[_name] = os.path.join(_scratch, _sub)
os.environ["DICOMVIEWER_TEST_SCRATCH"] = _scratch
os.environ.setdefault("VAR_DIR", os.path.join(_scratch, "var"))
os.environ.setdefault("MEDIA_ROOT", os.path.join(_scratch, "media"))
# Tests sign in and upload far faster than people do; the rate-limit tests set their own limits.
for _scope in ("LOGIN", "TOKEN", "UPLOAD"):
    os.environ.setdefault(f"RATE_LIMIT_{_scope}", "100000/minute")
