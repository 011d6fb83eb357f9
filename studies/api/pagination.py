from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import PageNumberPagination


class Pagination(PageNumberPagination):
    """``?page=N`` and ``?page_size=M`` (1-500); a malformed page_size is a 400, not ignored."""

    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request):
        value = request.query_params.get(self.page_size_query_param)
        if value is None:
            return self.page_size
        if not (value.isascii() and value.isdigit()) or len(value) > 10 or not 1 <= int(value) <= 10**9:
            raise ValidationError({self.page_size_query_param: ["A whole number from 1 (at most 500 are used)."]})
        return min(int(value), self.max_page_size)

    def get_page_number(self, request, paginator):
        value = request.query_params.get(self.page_query_param)
        if value is None:
            return 1
        # DRF reads an empty page as page 1 (``... or 1``) where the schema says a whole number;
        # anything else that is not one Django's Paginator already answers 404
        if not ((value.isascii() and value.isdigit()) or value in self.last_page_strings):
            raise NotFound("Invalid page: a whole number from 1.")
        return value

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": 10**9}
        return parameters
