"""The registered backends a test on this machine can run (those that run on the CPU), and the
check every imported model family makes of them."""

from __future__ import annotations

from typing import Any

import numpy as np

from provgraph.algebra.semirings import BUILTIN_SEMIRINGS
from provgraph.backends import BACKENDS

CPU_BACKENDS = [name for name, cls in BACKENDS.items() if "cpu" in cls.capabilities.devices]


def check_every_semiring_on_every_backend(
    graph: Any, target: list[int], rtol: float = 1e-9, atol: float = 1e-12,
    shape: tuple[int, ...] | None = None, atol_of_largest: bool = False,
) -> None:
    """Every built-in semiring on the scipy reference: no NaN (real: finite and not all zero),
    of ``shape`` when given; every CPU backend equal to it. ``atol_of_largest`` scales ``atol``
    by the largest finite magnitude (at least 1)."""
    x = graph.network.input_name
    for semiring in BUILTIN_SEMIRINGS:
        reference = graph.aggregate(semiring, target=target, backend="scipy")
        values = np.asarray(reference.tensors[x], dtype=np.float64)
        if shape is not None:
            assert values.shape == shape, semiring
        assert not np.any(np.isnan(values)), semiring
        if semiring == "real":
            assert np.all(np.isfinite(values)) and np.any(values != 0)
        tolerance = atol
        if atol_of_largest:
            largest = np.nanmax(np.abs(values[np.isfinite(values)]), initial=0.0)
            tolerance = atol * max(1.0, float(largest))
        for backend in CPU_BACKENDS:
            got = graph.aggregate(semiring, target=target, backend=backend)
            np.testing.assert_allclose(
                np.asarray(got.tensors[x], dtype=np.float64), values, rtol=rtol, atol=tolerance,
                err_msg=f"{semiring} on {backend}",
            )
