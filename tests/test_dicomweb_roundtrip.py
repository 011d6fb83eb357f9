"""DICOMweb round trip with the dicomweb-client package against the live server and a real worker:
STOW real files (chunked request body), QIDO them, retrieve metadata, instances (byte-identical),
frames (pixel-identical to pydicom's decode) and rendered images."""

from __future__ import annotations

import io
import zipfile

import cv2
import numpy as np
import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient

from tests.conftest import shared_path
from tokens.services import token_create

pytestmark = [pytest.mark.worker, pytest.mark.slow, pytest.mark.django_db(transaction=True)]
NATIVE = "1.2.840.10008.1.2.1"
ANY_DICOM = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def real_datasets() -> list[pydicom.Dataset]:
    """The nine encodings of one MR slice, 12 neighbouring CT slices, three colour ultrasounds."""
    paths = sorted(shared_path("mr-transfer-syntaxes-dcmqats").glob("*.dcm"))
    paths += [
        shared_path("us-color-and-cine", name)
        for name in ("examples_ybr_color.dcm", "gdcm-US-RGB-8-esopecho.dcm", "gdcm-US-RGB-8-epicard.dcm")
    ]
    datasets = [pydicom.dcmread(path) for path in paths]
    with zipfile.ZipFile(shared_path("ct-chest-lidc0314-fnndsc", "LIDC-IDRI-0314_CT_275slices.zip")) as zf:
        names = sorted(n for n in zf.namelist() if n.endswith(".dcm"))[100:112]
        datasets += [pydicom.dcmread(io.BytesIO(zf.read(name))) for name in names]
    return datasets


def encoded(ds: pydicom.Dataset) -> bytes:
    """The bytes dicomweb-client sends for a data set (what the server must give back)."""
    with io.BytesIO() as buffer:
        pydicom.dcmwrite(buffer, ds)
        return buffer.getvalue()


def expected_frame(data: bytes, number: int) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data))
    arr = ds.pixel_array
    if int(ds.get("NumberOfFrames", 1) or 1) > 1:
        arr = arr[number - 1]
    if (
        ds.SamplesPerPixel > 1
        and ds.get("PlanarConfiguration", 0) == 1
        and not ds.file_meta.TransferSyntaxUID.is_compressed
    ):
        arr = arr.transpose(2, 0, 1)
    return arr.astype(arr.dtype.newbyteorder("<")).tobytes()


def test_dicomweb_round_trip(live_server, user, worker, settings):
    settings.STOW_WAIT_SECONDS = 180
    # dicomweb-client sends its own Host header without the port, so absolute URIs built from it
    # would miss the test server's port: use URIs relative to the service root, as behind a proxy.
    settings.DICOMWEB_RELATIVE_URIS = True
    _, key = token_create(user=user, name="dicomweb-client")
    client = DICOMwebClient(url=f"{live_server.url}/dicomweb", headers={"Authorization": f"Bearer {key}"})
    datasets = real_datasets()
    sent = {ds.SOPInstanceUID: encoded(ds) for ds in datasets}
    assert sum(map(len, sent.values())) > client._chunk_size, "the STOW body is sent chunked"

    # STOW-RS
    result = client.store_instances(datasets)
    referenced = {item.ReferencedSOPInstanceUID for item in result.ReferencedSOPSequence}
    assert referenced == set(sent), worker.log()
    assert not result.get("FailedSOPSequence")
    mr = next(ds for ds in datasets if ds.Modality == "MR")
    ct = next(ds for ds in datasets if ds.Modality == "CT")
    with pytest.raises(requests.HTTPError) as mismatch:
        client.store_instances([ct], study_instance_uid=mr.StudyInstanceUID)
    assert mismatch.value.response.status_code == 409

    # QIDO-RS
    studies = client.search_for_studies(search_filters={"PatientID": mr.PatientID})
    assert [s["0020000D"]["Value"][0] for s in studies] == [mr.StudyInstanceUID]
    assert len(client.search_for_studies()) == len({ds.StudyInstanceUID for ds in datasets})
    (series,) = client.search_for_series(mr.StudyInstanceUID)
    assert series["00201209"]["Value"] == [9]
    ct_instances = client.search_for_instances(ct.StudyInstanceUID, ct.SeriesInstanceUID)
    assert len(ct_instances) == 12

    # WADO-RS metadata, with bulk data that can be followed
    metadata = client.retrieve_series_metadata(mr.StudyInstanceUID, mr.SeriesInstanceUID)
    assert len(metadata) == 9
    native = next(m for m in metadata if m["00083002"]["Value"] == [NATIVE])
    uid = native["00080018"]["Value"][0]
    uri = native["7FE00010"]["BulkDataURI"]
    assert uri.startswith(f"studies/{mr.StudyInstanceUID}/series/")
    pixel_data = client.retrieve_bulkdata(f"{live_server.url}/dicomweb/{uri}")
    assert pixel_data[0] == pydicom.dcmread(io.BytesIO(sent[uid])).PixelData

    for ds in datasets:
        study, series_uid, sop = ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
        # instances: byte for byte what was stored
        url = f"{live_server.url}/dicomweb/studies/{study}/series/{series_uid}/instances/{sop}"
        response = client._session.get(url, headers={"Accept": ANY_DICOM})  # the client's own session and
        (raw,) = client._decode_multipart_message(response, stream=False)  # multipart decoder, raw bytes
        assert raw == sent[sop], ds.file_meta.TransferSyntaxUID
        assert client.retrieve_instance(study, series_uid, sop).SOPInstanceUID == sop
        # frames, natively: the pixels pydicom decodes from the same file
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        numbers = sorted({1, frames})
        native_frames = client.retrieve_instance_frames(
            study, series_uid, sop, numbers, media_types=(("application/octet-stream", NATIVE),)
        )
        for number, data in zip(numbers, native_frames, strict=True):
            assert data == expected_frame(sent[sop], number), (ds.file_meta.TransferSyntaxUID, number)
        # rendered
        png = client.retrieve_instance_rendered(study, series_uid, sop, media_types=("image/png",))
        image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
        assert image.shape[:2] == (ds.Rows, ds.Columns) or ds.get("PixelSpacing")

    # frames as stored when any transfer syntax will do (what OHIF asks for)
    jpeg_ls = next(ds for ds in datasets if ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.80")
    (frame,) = client.retrieve_instance_frames(
        jpeg_ls.StudyInstanceUID,
        jpeg_ls.SeriesInstanceUID,
        jpeg_ls.SOPInstanceUID,
        [1],
        media_types=(("application/octet-stream", "*"),),
    )
    assert frame == pydicom.encaps.get_frame(jpeg_ls.PixelData, 0, number_of_frames=1)

    jpeg = client.retrieve_series_rendered(ct.StudyInstanceUID, ct.SeriesInstanceUID, media_types=("image/jpeg",))
    assert jpeg[:2] == b"\xff\xd8"
