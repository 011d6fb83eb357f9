"""DICOMweb inputs that could amplify work or crash: QIDO wildcards (LIKE, never a regex),
limit/offset and integer keys out of range, WADO frame lists (no repeats, no more than the
instance has, streamed)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dicomweb.matching import like_pattern
from studies.models import Instance, Upload
from tests.conftest import ingest_zip, make_zip
from tests.dicomgen import make_dataset, save
from tests.factories import make_study

pytestmark = pytest.mark.django_db


def names(response) -> list[str]:
    assert response.status_code == 200, response.content
    return sorted(study["00100010"]["Value"][0]["Alphabetic"] for study in response.json())


@pytest.fixture
def named(user):
    names = ["Doe^Jane", "Doe^John", "Dow^Jim", "100%^Pure", "100x^Pure", "snake_case", "snakeXcase", "back\\slash"]
    for number, name in enumerate(names):
        make_study(user, number, name=name)
    return names


def test_wildcards_mean_any_run_and_one_character_and_nothing_else_is_special(api, named):
    search = lambda value: names(api.get("/dicomweb/studies", {"PatientName": value}))  # noqa: E731
    assert search("doe*") == ["Doe^Jane", "Doe^John"]  # case-insensitive, * any run
    assert search("D?e^J*") == ["Doe^Jane", "Doe^John"]
    assert search("Do?^J??") == ["Dow^Jim"]  # ? exactly one character
    assert search("Do?^J?") == []
    assert search("*^J*n*") == ["Doe^Jane", "Doe^John"]
    assert search("100%*") == ["100%^Pure"]  # % and _ are literal, not LIKE's wildcards
    assert search("snake_*") == ["snake_case"]
    assert search("*_case") == ["snake_case"]
    assert search("back\\*") == ["back\\slash"]  # a backslash is literal (LIKE escapes with it)
    assert search("back\\") == []
    assert search("*.*") == []  # regex characters are literal too
    assert search("[Dd]oe*") == []
    assert search("**o**") == ["Doe^Jane", "Doe^John", "Dow^Jim"]


def test_like_pattern_escapes_what_like_would_read():
    assert like_pattern("a*b?c") == "a%b_c"
    assert like_pattern("50%_\\*") == "50\\%\\_\\\\%"
    assert like_pattern("***x") == "%x"


def test_many_wildcards_against_a_long_name_answer_fast_and_without_a_regex(api, user):
    make_study(user, 1, name="a" * 200)
    make_study(user, 2, name="a" * 199 + "b")
    assert api.get("/dicomweb/studies").status_code == 200  # warm up (URLs, first connection)
    with CaptureQueriesContext(connection) as queries:
        started = time.monotonic()
        found = names(api.get("/dicomweb/studies", {"PatientName": "*a*a*a*a*a*b"}))
        elapsed = time.monotonic() - started
    assert found == ["a" * 199 + "b"]
    assert elapsed < 1.0
    assert not [q["sql"] for q in queries.captured_queries if "REGEXP" in q["sql"].upper() or " ~" in q["sql"]]
    started = time.monotonic()
    assert names(api.get("/dicomweb/studies", {"PatientName": "*a" * 150 + "*b"})) == ["a" * 199 + "b"]
    assert names(api.get("/dicomweb/studies", {"PatientName": "?" * 200})) == ["a" * 200, "a" * 199 + "b"]
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize(
    "params",
    [
        {"offset": "99999999999999999999999"},
        {"limit": "99999999999999999999999"},
        {"offset": "2147483648"},
        {"limit": "1" * 5000},
        {"offset": "²"},
        {"limit": "-1"},
        {"SeriesNumber": "99999999999999999999999"},
        {"PatientName": "a*" * 30_000},  # a LIKE pattern longer than SQLite takes
        {"StudyInstanceUID": ",".join(["1.2"] * 40_000)},  # more values than SQLite binds
    ],
)
def test_out_of_range_numbers_are_a_400(api, user, params):
    make_study(user, 1)
    url = "/dicomweb/series" if "SeriesNumber" in params else "/dicomweb/studies"
    response = api.get(url, params)
    assert response.status_code == 400, response.content
    assert response.json()["detail"]


def test_the_largest_offset_is_an_empty_answer(api, user):
    make_study(user, 1)
    response = api.get("/dicomweb/studies", {"offset": str(2**31 - 1), "limit": str(2**31 - 1)})
    assert response.status_code == 200 and response.json() == []


# --- WADO-RS frame lists ----------------------------------------------------------------------------


@pytest.fixture
def two_frames(user, tmp_path, eager_celery) -> Instance:
    pixels = np.arange(2 * 64 * 64, dtype=np.uint16).reshape(2, 64, 64)
    ds = make_dataset(pixels[0], modality="OT")
    ds.NumberOfFrames = 2
    ds.PixelData = pixels.astype("<u2").tobytes()
    upload = ingest_zip(user, make_zip(tmp_path / "f.zip", {"f.dcm": save(ds, tmp_path / "f.dcm")}))
    assert upload.status == Upload.Status.DONE, (upload.error, upload.skipped)
    return Instance.objects.get()


def frames_url(instance: Instance, numbers: str) -> str:
    series = instance.series
    return (
        f"/dicomweb/studies/{series.study.study_instance_uid}/series/{series.series_instance_uid}"
        f"/instances/{instance.sop_instance_uid}/frames/{numbers}"
    )


ANY = "multipart/related; type=application/octet-stream"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("numbers", ["1,1", ",".join(["1"] * 300), "1,2,1", "2,1,2"])
def test_a_frame_list_with_repeats_is_a_400(api, two_frames, numbers):
    response = api.get(frames_url(two_frames, numbers), HTTP_ACCEPT=ANY)
    assert response.status_code == 400, response.status_code
    assert "more than once" in response.json()["detail"]


@pytest.mark.django_db(transaction=True)
def test_a_frame_list_longer_than_the_instance_is_a_400_before_any_reading(api, two_frames):
    response = api.get(frames_url(two_frames, "1,2,3"), HTTP_ACCEPT=ANY)
    assert response.status_code == 400
    assert "2 frame" in response.json()["detail"]


@pytest.mark.django_db(transaction=True)
def test_frames_come_in_the_order_asked(api, two_frames):
    response = api.get(frames_url(two_frames, "2,1"), HTTP_ACCEPT=ANY)
    assert response.status_code == 200 and response.streaming
    body = b"".join(response.streaming_content)
    expected = np.arange(2 * 64 * 64, dtype="<u2").reshape(2, 64, 64)
    assert body.index(expected[1].tobytes()) < body.index(expected[0].tobytes())


def test_frames_are_decoded_one_at_a_time_as_the_answer_is_sent(tmp_path, monkeypatch):
    from pydicom.uid import RLELossless

    from dicomweb import pixels

    stack = np.arange(3 * 16 * 16, dtype=np.uint16).reshape(3, 16, 16)
    ds = make_dataset(stack[0], modality="OT")
    ds.NumberOfFrames = 3
    ds.PixelData = stack.astype("<u2").tobytes()
    ds.compress(RLELossless, stack)
    path = save(ds, tmp_path / "rle.dcm")
    calls = []
    real = pixels.pixel_array
    monkeypatch.setattr(pixels, "pixel_array", lambda *a, **k: calls.append(k["index"]) or real(*a, **k))
    result = pixels.frames(path, [3, 1, 2], keep_compressed=False, transfer_syntax=str(RLELossless))
    assert calls == [2]  # the first asked for is decoded at once (errors come before the answer starts)
    data = iter(result.data)
    assert next(data) == stack[2].tobytes() and calls == [2]
    assert next(data) == stack[0].tobytes() and calls == [2, 0]
    assert next(data) == stack[1].tobytes() and calls == [2, 0, 1]
