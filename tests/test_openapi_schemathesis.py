"""The OpenAPI schema is complete and true: schemathesis generates requests for every operation
from /api/schema/ and checks each answer of the live server against it (status codes, content
types, bodies, no server errors, invalid input rejected, valid input accepted).

Nothing is excluded. The client authenticates with one of the user's API tokens; a generated
DELETE /api/tokens/{id}/ may revoke it, so it is made valid again before every request.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from studies.models import Upload
from tests import dicomgen
from tests.conftest import PASSWORD, ingest_zip, make_zip
from tokens.models import ApiToken
from tokens.services import token_create

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def token_key(user, tmp_path, eager_celery):
    voxels = np.arange(3 * 8 * 8, dtype=np.int16).reshape(3, 8, 8)
    paths = dicomgen.write_volume(tmp_path / "src", voxels, spacing=(1.0, 1.0), slice_step=2.0)
    upload = ingest_zip(user, make_zip(tmp_path / "one.zip", {p.name: p for p in paths}))
    assert upload.status == Upload.Status.DONE, upload.error
    return token_create(user=user, name="schemathesis")


# more for a deeper search: SCHEMATHESIS_EXAMPLES=500 make test PYTEST_ARGS=tests/test_openapi_schemathesis.py
EXAMPLES_PER_OPERATION = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25"))
ONLY_PATHS = os.environ.get("SCHEMATHESIS_PATHS", "")  # e.g. "/shares/": only operations on such paths


def valid_bodies(tmp_path) -> dict:
    """Bodies that are valid in ways a schema cannot say: a real account's credentials (others are
    rightly a 400), a real ZIP archive (other files are rightly a 400). Used for the valid cases."""
    credentials = {"username": "alice", "password": PASSWORD}
    archive = make_zip(tmp_path / "notes.zip", {"readme.txt": b"no images"}).read_bytes()
    login_types = ("application/json", "application/x-www-form-urlencoded", "multipart/form-data")
    return {
        ("POST", "/api/auth/token/"): [(media, credentials) for media in login_types],
        ("POST", "/api/uploads/"): [("multipart/form-data", {"file": archive})],
        # a measurement that fits the images (on the fixture's series, id 1; other ids are a 404)
        ("POST", "/api/series/{id}/annotations/"): [
            ("application/json", {"kind": "length", "plane": "axial", "index": 0, "pixels": [[0, 0], [3, 4]]})
        ],
    }


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_api_answers_as_its_schema_says(live_server, token_key, mode, tmp_path):
    schema = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/")
    token, key = token_key
    headers = {"Authorization": f"Token {key}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20, "every operation of the REST API is in the schema"
    for operation in operations:
        if ONLY_PATHS not in operation.path:
            continue
        strategy = operation.as_strategy(mode)
        valid = valid_bodies(tmp_path).get((operation.method.upper(), operation.path))
        if valid is not None and mode == GenerationMode.POSITIVE:
            strategy = st.one_of(*(operation.as_strategy(mode, body=body, media_type=media) for media, body in valid))

        @given(case=strategy)
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck))
        def answers_as_documented(case):
            ApiToken.objects.filter(pk=token.pk).update(revoked_at=None)  # a generated DELETE may have revoked it
            case.call_and_validate(headers=headers)

        answers_as_documented()
