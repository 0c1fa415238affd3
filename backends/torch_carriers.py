"""The torch carrier a semiring names in its
:attr:`~provgraph.algebra.semirings.Semiring.torch_carrier`."""

from __future__ import annotations

from typing import Any

import torch

from provgraph.backends.torch_generic import GenericCarrier
from provgraph.backends.torch_semiring import (
    BooleanCarrier,
    IntegerCarrier,
    SumSemiring,
    TorchSemiring,
)
from provgraph.errors import ProvgraphError

#: carriers by the names semirings give
CARRIERS: dict[str, type[TorchSemiring]] = {
    "sum": SumSemiring,
    "boolean": BooleanCarrier,
    "integer": IntegerCarrier,
    "generic": GenericCarrier,
}


def torch_semiring(semiring: Any, dtype: torch.dtype, device: torch.device) -> TorchSemiring:
    """The carrier ``semiring`` names, built for ``dtype`` on ``device``.

    A semiring names a built-in carrier (``"sum"``, ``"boolean"``, ``"integer"``,
    ``"generic"``) or gives a :class:`~provgraph.backends.torch_semiring.TorchSemiring` subclass.
    """
    spec = getattr(semiring, "torch_carrier", "generic")
    if isinstance(spec, type) and issubclass(spec, TorchSemiring):
        return spec(semiring, dtype, device)
    if spec not in CARRIERS:
        raise ProvgraphError(
            f"{type(semiring).__name__}.torch_carrier is {spec!r}; name one of "
            f"{', '.join(CARRIERS)} or give a TorchSemiring subclass"
        )
    return CARRIERS[spec](semiring, dtype, device)
