"""The backend contract: a backend that implements only the contraction primitive is complete.

Two such backends are held to the brute-force path folds of :mod:`test_brute_force`:

- a test-only backend whose primitive is a plain Python loop over the edges, with blocks of at
  most three edges (so that every op is cut into many blocks);
- the torch backend with its structured kernels switched off, so that every op goes through the
  generic per-role steps and :meth:`TorchBackend.contract`.

Then the registry: choice by capability, devices in names, clear errors.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from test_brute_force import (
    CONFIGS,
    MODELS,
    PROVGRAPH_RULES,
    assert_path_folds,
    case,
    edge_annotations,
)
from torch_checks import one_thread_per_worker  # noqa: F401 (autouse fixture)

import provgraph.engine.driver as driver
from provgraph.backends import (
    BACKENDS,
    Backend,
    Capabilities,
    Request,
    ScipyBackend,
    TorchBackend,
    get_backend,
    register,
)
from provgraph.backends.base import Edges, StepContext, row_blocks
from provgraph.errors import ProvgraphError
from provgraph.symbolic import Circuit


class LoopBackend(Backend):
    """The primitive as the formula: ``out[j] = ⊕_k Θ(r_jk) ⊗ R[k]``, one edge at a time."""

    name = "loop"
    block_edges = 3

    def contract(self, ctx: StepContext, edges: Edges, r_out: np.ndarray) -> np.ndarray:
        k = ctx.semiring
        ann = edges.values
        if ann is None and edges.weights is not None:
            assert ctx.theta is not None
            ann = ctx.theta(np.asarray(edges.weights, dtype=np.float64), k, ctx.layer)
        out = k.zeros((edges.rows, r_out.shape[1]))
        for j in range(edges.rows):
            for p in range(int(edges.indptr[j]), int(edges.indptr[j + 1])):
                for t in range(r_out.shape[1]):
                    term = r_out[edges.cols[p], t]
                    if ann is not None:
                        term = k.times(ann[p], term)
                    out[j, t] = k.plus(out[j, t], term)
        return out


class GenericTorch(TorchBackend):
    """The torch backend through the generic steps only (its primitive, blocks of 5 edges)."""

    block_edges = 5
    linear = Backend.linear
    route = Backend.route
    select = Backend.select


BRUTE_CONFIGS = [c for c in CONFIGS if c[1] in ("lrp0", "maxnorm", "zb")]


ENGINES = {
    "loop": LoopBackend,
    "torch": GenericTorch,
    "torch-cuda": lambda: GenericTorch(device="cuda"),
}


@pytest.mark.parametrize("engine_name", list(ENGINES))
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(("semiring", "rule"), BRUTE_CONFIGS)
def test_the_primitive_alone_equals_brute_force(
    engine_name: str, model: str, semiring: str, rule: str
) -> None:
    if engine_name.endswith("cuda") and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    engine = ENGINES[engine_name]()
    c = case(model)
    k, ann = edge_annotations(c, semiring, c.r(rule))
    rel = c.graph.aggregate(
        k, rule=PROVGRAPH_RULES[rule], target=list(range(c.classes)), backend=engine
    )
    assert rel.info["backend"] == engine.name
    assert_path_folds(c, k, ann, rel)


def test_row_blocks_cover_every_edge_once() -> None:
    indptr = np.array([0, 4, 4, 5, 9, 10])
    cols = np.arange(10)
    blocks = row_blocks(indptr, cols, cols * 0.5, 3)
    assert [(b.start, b.rows) for b in blocks] == [(0, 1), (1, 2), (3, 1), (4, 1)]
    assert np.array_equal(np.concatenate([b.cols for b in blocks]), cols)
    assert np.array_equal(np.concatenate([b.weights for b in blocks]), cols * 0.5)
    assert all(b.indptr[0] == 0 and b.indptr[-1] == len(b.cols) for b in blocks)
    assert row_blocks(indptr, cols, None, None)[0].count == 10


def test_aggregate_and_the_circuit_walk_with_one_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    walk = driver.backward

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0])
        return walk(*args, **kwargs)

    monkeypatch.setattr(driver, "backward", spy)
    graph = case("cnn_residual").graph
    graph.aggregate("counting", theta="one", backend="scipy")
    assert len(calls) == 1
    Circuit(graph).path_counts  # noqa: B018 (evaluates the circuit)
    assert len(calls) == 2 and calls[0] is calls[1] is graph.network.ops


# ------------------------------------------------------------------------------ registry
def test_names_with_a_device() -> None:
    assert isinstance(get_backend("scipy:cpu"), ScipyBackend)
    engine = get_backend("torch:cpu")
    assert isinstance(engine, TorchBackend) and engine.device == torch.device("cpu")
    with pytest.raises(ProvgraphError, match="scipy backend runs on cpu only"):
        get_backend("scipy:cuda")
    with pytest.raises(ProvgraphError, match="unknown backend 'numpy:cpu'"):
        get_backend("numpy:cpu")


def test_auto_chooses_by_capability() -> None:
    graph = case("mlp").graph
    assert get_backend("auto", graph).name == "scipy"
    batch = get_backend("auto", request=Request(batches=True))
    assert batch.name == "numba" and "scipy explains one sample at a time" in batch.selection
    counted = get_backend("auto", graph, counting="log")
    assert counted.name == "numba" and counted.counting == "log"
    assert "scipy: takes no option counting" in counted.selection


def test_a_registered_backend_is_chosen_by_its_capabilities(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Wide(LoopBackend):
        name = "wide"
        capabilities: ClassVar[Capabilities] = Capabilities(batches=True, devices=("cpu",))

    monkeypatch.setattr(
        "provgraph.backends.BACKENDS", {"wide": Wide, **BACKENDS}, raising=True
    )
    engine = get_backend("auto", request=Request(batches=True))
    assert engine.name == "wide"
    monkeypatch.setattr("provgraph.backends.BACKENDS", dict(BACKENDS))
    register(Wide)
    from provgraph import backends

    assert backends.BACKENDS["wide"] is Wide
    assert isinstance(get_backend("wide"), Wide)


def test_no_backend_for_a_request_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("provgraph.backends.BACKENDS", {"scipy": ScipyBackend})
    with pytest.raises(ProvgraphError, match="no backend can run this: scipy explains one"):
        get_backend("auto", request=Request(batches=True))
