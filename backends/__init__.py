"""Backends: per-op propagation steps ``R_in ⊕= ⊕_k Θ(r_jk) ⊗ R_out[k]``.

A backend is one module with a :class:`~provgraph.backends.base.Backend` subclass; register it in
:data:`BACKENDS`.
"""

from __future__ import annotations

from ..errors import ProvgraphError
from .base import Backend
from .scipy_backend import ScipyBackend

BACKENDS: dict[str, type[Backend]] = {"scipy": ScipyBackend}


def get_backend(backend: str | Backend) -> Backend:
    """A backend from an instance or a name (``"scipy"``)."""
    if isinstance(backend, Backend):
        return backend
    key = str(backend).lower()
    if key not in BACKENDS:
        raise ProvgraphError(f"unknown backend {backend!r}; available: {', '.join(BACKENDS)}")
    return BACKENDS[key]()


__all__ = ["BACKENDS", "Backend", "ScipyBackend", "get_backend"]
