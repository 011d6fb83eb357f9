"""Test-run environment, loaded as a pytest plugin (-p tests.testenv) before Django reads its settings."""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "test-only-secret-key-not-for-production-0123456789")
os.environ.setdefault("SECURE_COOKIES", "0")
_scratch = tempfile.mkdtemp(prefix="dicomviewer-test-")
os.environ.setdefault("VAR_DIR", os.path.join(_scratch, "var"))
os.environ.setdefault("MEDIA_ROOT", os.path.join(_scratch, "media"))
