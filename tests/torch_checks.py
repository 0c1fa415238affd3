"""Comparison helpers and set-up shared by the torch backend's tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from provgraph.algebra.semirings import Semiring
from provgraph.engine.relevance import Relevance


@pytest.fixture(autouse=True, scope="module")
def one_thread_per_worker() -> Iterator[None]:
    """Two pytest-xdist workers share two cores: torch's own threads would oversubscribe them."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def assert_values(k: Semiring, expected: np.ndarray, actual: np.ndarray, what: str = "") -> None:
    """Exactly equal for Boolean and Counting; within 1e-6 relative otherwise."""
    expected, actual = np.asarray(expected), np.asarray(actual)
    assert expected.shape == actual.shape, what
    if k.name in ("boolean", "counting") and np.asarray(actual).dtype.kind in "biuO":
        assert np.array_equal(expected.astype(actual.dtype), actual), what
        return
    e, a = expected.astype(np.float64), actual.astype(np.float64)
    assert np.array_equal(np.isnan(e), np.isnan(a)), what
    assert np.array_equal(np.isinf(e), np.isinf(a)), what
    assert np.array_equal(e[np.isinf(e)], a[np.isinf(a)]), what
    finite = np.isfinite(e)
    scale = float(np.max(np.abs(e[finite]), initial=0.0))
    err = np.abs(e[finite] - a[finite])
    assert np.all(err <= 1e-6 * np.abs(e[finite]) + 1e-12 * scale), (what, float(err.max()))


def assert_agree(expected: Relevance, actual: Relevance, what: str = "") -> None:
    """Same tensors and bias sources, every value as :func:`assert_values` demands."""
    k = expected.semiring
    assert set(expected.tensors) == set(actual.tensors), what
    assert set(expected.biases) == set(actual.biases), what
    for t in expected.tensors:
        assert_values(k, expected.tensors[t], actual.tensors[t], f"{what} tensor {t}")
    for b in expected.biases:
        assert_values(k, expected.biases[b], actual.biases[b], f"{what} bias {b}")
