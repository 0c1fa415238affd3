"""Exception types raised for user mistakes. The CLI prints them as one line and exits with 2."""

from __future__ import annotations


class ProvgraphError(Exception):
    """Base class of every error provgraph raises for bad input or an unsupported request."""


class ModelLoadError(ProvgraphError):
    """The model file is missing, unreadable, not ONNX, or truncated."""


class UnsupportedOpError(ProvgraphError):
    """The model contains operators provgraph cannot turn into provenance edges.

    ``ops`` lists ``(op_type, node_name)`` pairs for every unsupported node.
    """

    def __init__(self, message: str, ops: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.ops = ops or []


class InputError(ProvgraphError):
    """The input array has the wrong shape, is not finite, or cannot be read."""


class TargetError(ProvgraphError):
    """The requested class index is out of range."""


class BudgetError(ProvgraphError):
    """The requested computation exceeds a stated size budget."""
