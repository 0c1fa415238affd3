"""Backends: per-role propagation steps over one ⊕⊗-contraction primitive, and their registry.

A backend is one module with a :class:`~provgraph.backends.base.Backend` subclass that declares
its :class:`~provgraph.backends.base.Capabilities`; :func:`register` adds it to :data:`BACKENDS`.
``"auto"`` (or ``None``) takes the first registered backend, in order of preference, whose
capabilities meet the request (a batch of samples, a device, the number of edges); the choice
and its reason are recorded in ``Relevance.info["backend_selection"]``.
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Any

from provgraph.backends.base import Backend, Capabilities, Request
from provgraph.backends.numba_backend import NumbaBackend
from provgraph.backends.scipy_backend import ScipyBackend
from provgraph.backends.torch_backend import TorchBackend
from provgraph.backends.triton_backend import TritonBackend
from provgraph.errors import ProvgraphError

#: registered backends by name, in order of preference for ``"auto"``
BACKENDS: dict[str, type[Backend]] = {}


def register(cls: type[Backend]) -> type[Backend]:
    """Add a backend class to the registry under ``cls.name`` (usable as a decorator)."""
    BACKENDS[cls.name] = cls
    return cls


register(ScipyBackend)
register(NumbaBackend)
register(TorchBackend)
register(TritonBackend)  # CUDA only; "auto" prefers torch, so it is chosen by name


def get_backend(
    backend: str | Backend | None = "auto",
    graph: Any = None,
    *,
    request: Request | None = None,
    **options: Any,
) -> Backend:
    """A backend from an instance, a name, or ``"auto"``.

    Parameters
    ----------
    backend
        A :class:`~provgraph.backends.base.Backend` (returned as is), a registered name, which
        may carry a device (``"torch:cuda"``), or ``"auto"``.
    graph
        The graph to explain, from which ``"auto"`` reads what is needed (batch, edges).
    request
        What is needed when there is no graph yet (``Request(batches=True)``).
    options
        Keyword arguments of the backend's constructor
        (``get_backend("torch", device="cuda", counting="log")``).
    """
    if isinstance(backend, Backend):
        return backend
    spec = str(backend if backend is not None else "auto").lower()
    key, _, device = spec.partition(":")
    if device:
        options.setdefault("device", device)
    device = None if options.get("device") is None else str(options["device"])
    if key == "auto":
        need = request or Request.of(graph)
        return _choose(replace(need, device=device or need.device), options)
    if key not in BACKENDS:
        raise ProvgraphError(f"unknown backend {backend!r}; available: auto, {', '.join(BACKENDS)}")
    cls = BACKENDS[key]
    if device is not None and not Request(device=device).serves_device(cls.capabilities):
        raise ProvgraphError(
            f"backend {backend!r}: the {key} backend runs on "
            f"{', '.join(cls.capabilities.devices)} only"
        )
    if "device" in options and "device" not in _constructor_options(cls):
        options.pop("device")  # a device the backend runs on but takes no option for
    return cls(**options)


def _constructor_options(cls: type[Backend]) -> tuple[str, ...]:
    return tuple(inspect.signature(cls).parameters)


def _choose(need: Request, options: dict[str, Any]) -> Backend:
    reasons = []
    for name, cls in BACKENDS.items():
        accepted = _constructor_options(cls)
        extra = sorted(set(options) - set(accepted) - {"device"})
        if extra:
            reasons.append(f"{name}: takes no option {', '.join(extra)}")
            continue
        why_not = need.unmet(name, cls.capabilities)
        if why_not is not None:
            reasons.append(why_not)
            continue
        engine = cls(**{k: v for k, v in options.items() if k in accepted})
        engine.selection = "auto: " + "; ".join([need.met(name, cls.capabilities), *reasons])
        return engine
    raise ProvgraphError("no backend can run this: " + "; ".join(reasons))


__all__ = [
    "BACKENDS",
    "Backend",
    "Capabilities",
    "NumbaBackend",
    "Request",
    "ScipyBackend",
    "TorchBackend",
    "TritonBackend",
    "get_backend",
    "register",
]
