"""Backends: per-op propagation steps ``R_in ⊕= ⊕_k Θ(r_jk) ⊗ R_out[k]``.

A backend is one module with a :class:`~provgraph.backends.base.Backend` subclass; register it in
:data:`BACKENDS`. ``"auto"`` (or ``None``) picks scipy for graphs within its edge budget and torch
(on the CPU) above it and for batches; the choice is recorded in ``Relevance.info``.
"""

from __future__ import annotations

from typing import Any

from provgraph.backends.base import Backend
from provgraph.backends.scipy_backend import DEFAULT_EDGE_BUDGET, ScipyBackend
from provgraph.backends.torch_backend import TorchBackend
from provgraph.errors import ProvgraphError

BACKENDS: dict[str, type[Backend]] = {"scipy": ScipyBackend, "torch": TorchBackend}


def get_backend(
    backend: str | Backend | None = "auto", graph: Any = None, **options: Any
) -> Backend:
    """A backend from an instance, a name, or ``"auto"``.

    Names may carry a device: ``"torch:cuda"``. ``options`` go to the backend's constructor
    (``get_backend("torch", device="cuda", counting="log")``). ``"auto"`` needs ``graph``.
    """
    if isinstance(backend, Backend):
        return backend
    key, _, device = str(backend if backend is not None else "auto").lower().partition(":")
    if device:
        options.setdefault("device", device)
    if key == "auto":
        return _auto(graph, options)
    if key not in BACKENDS:
        raise ProvgraphError(
            f"unknown backend {backend!r}; available: auto, {', '.join(BACKENDS)}"
        )
    return BACKENDS[key](**options)


def _auto(graph: Any, options: dict[str, Any]) -> Backend:
    if getattr(graph, "batched", False):
        engine: Backend = TorchBackend(**options)
        engine.selection = "auto: a batch of samples"
        return engine
    edges = graph.network.num_edges() if graph is not None else 0
    if "device" in options:
        engine = TorchBackend(**options)
        engine.selection = f"auto: device {options['device']!r} requested"
    elif edges <= DEFAULT_EDGE_BUDGET:
        engine = ScipyBackend()
        engine.selection = f"auto: {edges:,} edges within the scipy budget"
    else:
        engine = TorchBackend(**options)
        engine.selection = f"auto: {edges:,} edges over the scipy budget of {DEFAULT_EDGE_BUDGET:,}"
    return engine


__all__ = ["BACKENDS", "Backend", "ScipyBackend", "TorchBackend", "get_backend"]
