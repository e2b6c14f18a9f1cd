"""Limit/offset pagination with a ceiling on the page size."""
from rest_framework.pagination import LimitOffsetPagination


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    """Pages of at most 1,000 rows: a larger `limit` is cut to that. Unbounded, a limit past 2**63
    reached SQL as a number the database refuses (a 500 that schemathesis found)."""

    max_limit = 1000
