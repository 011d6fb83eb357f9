"""Test-run environment, loaded as a pytest plugin (-p tests.testenv) before Django reads its settings."""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production-0123456789")
os.environ.setdefault("SECURE_COOKIES", "0")
_scratch = tempfile.mkdtemp(prefix="dicomviewer-test-")
os.environ.setdefault("VAR_DIR", os.path.join(_scratch, "var"))
os.environ.setdefault("MEDIA_ROOT", os.path.join(_scratch, "media"))
# Tests sign in and upload far faster than people do; the rate-limit tests set their own limits.
for _scope in ("LOGIN", "TOKEN", "UPLOAD"):
    os.environ.setdefault(f"RATE_LIMIT_{_scope}", "100000/minute")
