"""DICOMweb views (PS3.18): QIDO-RS, WADO-RS, STOW-RS. Thin: resources are found through
``dicomweb.resources`` (``studies.selectors``), answers are built by the modules beside this one.

Authentication and errors are the REST API's: Token, Bearer or session; JSON error bodies.
"""

from __future__ import annotations

from rest_framework.exceptions import NotFound
from rest_framework.views import APIView

from dicomviewer.ratelimit import UnsafeMethodRateThrottle
from dicomweb.resources import instance_for, instances_of, series_for, study_for
from dicomweb.retrieve import bulkdata, frame_numbers, frames, metadata, rendered, representative, retrieve_instances
from dicomweb.search import search_instances, search_series, search_studies
from dicomweb.store import store_instances
from studies import selectors
from studies.api.views import AnyAcceptNegotiation


class DicomWebView(APIView):
    """Base: no Accept check by DRF (each view negotiates its own types); not in the OpenAPI schema."""

    content_negotiation_class = AnyAcceptNegotiation
    schema = None
    throttle_classes = [UnsafeMethodRateThrottle]  # STOW counts as an upload
    throttle_scope = "upload"


class StudiesView(DicomWebView):
    def get(self, request):
        return search_studies(request)

    def post(self, request):
        return store_instances(request, None)


class StudyView(DicomWebView):
    def get(self, request, study):
        found = study_for(request.user, study)
        return retrieve_instances(request, list(instances_of(request.user, study)), found)

    def post(self, request, study):
        return store_instances(request, study)


class SeriesSearchView(DicomWebView):
    def get(self, request, study=None):
        return search_series(request, study)


class SeriesView(DicomWebView):
    def get(self, request, study, series):
        found = series_for(request.user, study, series)
        return retrieve_instances(request, list(instances_of(request.user, study, series)), found)


class InstancesSearchView(DicomWebView):
    def get(self, request, study=None, series=None):
        return search_instances(request, study, series)


class InstanceView(DicomWebView):
    def get(self, request, study, series, instance):
        found = instance_for(request.user, study, series, instance)
        return retrieve_instances(request, [found], found, single=True)


class MetadataView(DicomWebView):
    def get(self, request, study, series=None, instance=None):
        if instance is not None:
            found = instance_for(request.user, study, series, instance)
            return metadata(request, [found], found)
        obj = series_for(request.user, study, series) if series else study_for(request.user, study)
        return metadata(request, list(instances_of(request.user, study, series)), obj)


class BulkdataView(DicomWebView):
    def get(self, request, study, series, instance, path):
        return bulkdata(request, instance_for(request.user, study, series, instance), path)


class FramesView(DicomWebView):
    def get(self, request, study, series, instance, frames_list):
        return frames(request, instance_for(request.user, study, series, instance), frames_list)


class RenderedView(DicomWebView):
    thumbnail = False

    def get(self, request, study, series=None, instance=None, frames_list=None):
        if instance is not None:
            found = instance_for(request.user, study, series, instance)
            frame = frame_numbers(frames_list)[0] if frames_list else None
            return rendered(request, found, frame, self.thumbnail)
        if series is None:
            study_obj = study_for(request.user, study)
            first = selectors.series_visible_to(request.user).filter(study=study_obj).order_by("series_number", "id")
            first = first.first()
            if first is None:
                raise NotFound("This study has no series.")
            series = first.series_instance_uid
        return rendered(request, representative(list(instances_of(request.user, study, series))), None, self.thumbnail)


class ThumbnailView(RenderedView):
    thumbnail = True
