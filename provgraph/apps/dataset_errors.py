"""The error raised for a bad dataset or a bad preprocessing declaration."""

from __future__ import annotations

from provgraph.errors import InputError


class DatasetError(InputError):
    """A dataset cannot be read as declared: an empty folder, a file that is not an image,
    mismatched lengths, missing or out-of-range labels, or an invalid preprocessing."""
