"""User-defined semirings on the scipy and torch backends against brute-force path enumeration.

Two user semirings, written as a user would (nothing but a ``Semiring`` subclass):

- Arctic / max-plus (ℝ ∪ {−∞}, max, +, −∞, 0), with ufuncs, exactly the README's example;
- Łukasiewicz ([0, 1], max, max(0, a + b − 1), 0, 1), with a scalar ⊗ for numpy and a torch ⊗.

The oracle reuses the reference neuron graph of ``test_brute_force`` (activations, rule weights
r_e and every path, built with naive loops) and folds each path here with plain Python
arithmetic: ⊗ along the path, ⊕ over the paths.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from test_brute_force import Case, case

import provgraph as pg
from provgraph.algebra.composites import layered
from provgraph.apps.ranking import format_top_inputs, top_inputs
from provgraph.backends.torch_generic import GenericCarrier
from provgraph.errors import ProvgraphError


# --- the README's example, exactly as a user writes it -------------------------------------
class Arctic(pg.Semiring):
    """(ℝ ∪ {−∞}, max, +, −∞, 0): log-strength of the best path."""

    name = "arctic"
    zero, one = -np.inf, 0.0
    dtype = np.float64
    idempotent = True
    add_ufunc, mul_ufunc = np.maximum, np.add
    default_rule, default_theta = "maxnorm", "log"


# --- Łukasiewicz: a scalar ⊗ (numpy falls back to frompyfunc) and the same ⊗ in torch --------
class Lukasiewicz(pg.Semiring):
    """([0, 1], max, max(0, a + b − 1), 0, 1): the Łukasiewicz t-norm semiring."""

    name = "lukasiewicz"
    zero, one = 0.0, 1.0
    dtype = np.float64
    idempotent = absorptive = True
    add_ufunc = np.maximum
    default_rule = "maxnorm"

    def times(self, a: Any, b: Any) -> Any:
        return max(0.0, a + b - 1.0)

    def torch_mul(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a + b - 1.0).clamp(min=0.0)


class LukasiewiczTorchOnly(Lukasiewicz):
    """The same semiring with ⊕ given only as a torch function: the generic carrier then
    reduces by pairwise folds and scatters by levels."""

    add_ufunc = None

    def plus(self, a: Any, b: Any) -> Any:
        return max(a, b)

    def torch_add(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.maximum(a, b)


def _arctic_theta(r: float) -> float:
    return math.log(r) if r > 0 else -math.inf


# name → (semiring, Θ by definition, ⊗ by definition, ⊕ by definition, zero, one)
USER = {
    "arctic": (Arctic, _arctic_theta, lambda a, b: a + b, max, -math.inf, 0.0),
    "lukasiewicz": (Lukasiewicz, lambda r: r, lambda a, b: max(0.0, a + b - 1.0), max, 0.0, 1.0),
    "lukasiewicz-torch-add": (
        LukasiewiczTorchOnly,
        lambda r: r,
        lambda a, b: max(0.0, a + b - 1.0),
        max,
        0.0,
        1.0,
    ),
}
MODELS = ["mlp", "cnn_maxpool", "cnn_residual"]
BACKENDS = ["scipy", "torch"]


def brute_force(c: Case, name: str) -> dict[tuple[Any, int], float]:
    """``⊕_paths ⊗_edges Θ(r_e)`` for every (source neuron, class), from the reference graph."""
    _, theta, times, plus, zero, one = USER[name]
    r = c.r("maxnorm")
    ann = [theta(r[i]) if e.w is not None else one for i, e in enumerate(c.ref.edges)]
    out = {}
    for key, paths in c.paths.items():
        total = zero
        for p in paths:
            value = one
            for e in p:
                value = times(value, ann[e])
            total = plus(total, value)
        out[key] = total
    return out


def _got(rel: pg.Relevance, source: Any, cls: int) -> float:
    if source[0] == "bias":
        return float(rel.biases[source[1]][cls])
    return float(rel.tensors[source[0]][source[1], cls])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("name", list(USER))
def test_user_semiring_equals_brute_force(name: str, model: str, backend: str) -> None:
    c = case(model)
    k = USER[name][0]()
    rel = c.graph.aggregate(k, target=list(range(c.classes)), backend=backend)
    assert rel.info["backend"] == backend
    want = brute_force(c, name)
    for (source, cls), value in want.items():
        got = _got(rel, source, cls)
        assert got == value or abs(got - value) <= 1e-9 * max(1.0, abs(value)), (
            source,
            cls,
            got,
            value,
        )
    for t in rel.tensors.values():
        assert not np.isnan(np.asarray(t, dtype=np.float64)).any()


@pytest.mark.parametrize("backend", BACKENDS)
def test_readme_arctic_example_is_nan_free_and_the_log_of_viterbi(backend: str) -> None:
    g = case("cnn_residual").graph
    rel = g.aggregate(Arctic(), backend=backend)  # the README's call
    assert rel.info["rule"].startswith("uniform[maxnorm]") and rel.info["theta"] == "Log()"
    viterbi = g.aggregate("viterbi", backend=backend)
    for name, value in rel.tensors.items():
        assert not np.isnan(value).any(), name
        assert (value <= 1e-12).all(), name  # log of strengths in [0, 1]
        np.testing.assert_allclose(np.exp(value), viterbi.tensors[name], rtol=1e-12, atol=0)
    # the old example (−log into max-plus: −∞ + ∞ for absent edges) is refused as configured
    with pytest.raises(pg.ProvgraphError, match="needs a semiring whose zero is \\+∞"):
        g.aggregate(Arctic(), rule="lrp0", theta=pg.NegLog(), backend=backend)


@pytest.mark.parametrize("name", list(USER))
def test_user_semiring_backends_agree_on_a_layered_composite(name: str) -> None:
    c = case("cnn_residual")
    k = USER[name][0]()
    rule = layered(low=-1.0, high=1.0)  # weights outside [0, 1], negative ones included
    a = c.graph.aggregate(k, rule=rule, backend="scipy")
    b = c.graph.aggregate(k, rule=rule, backend="torch")
    for t in a.tensors:
        np.testing.assert_allclose(b.tensors[t], a.tensors[t], rtol=1e-12, atol=1e-12)


class ScalarArctic(pg.Semiring):
    """Arctic by its scalar operations only (Python's max and +)."""

    name = "scalar-arctic"
    zero, one = -math.inf, 0.0
    default_rule, default_theta = "maxnorm", "log"

    def plus(self, a: Any, b: Any) -> Any:
        return max(a, b)

    def times(self, a: Any, b: Any) -> Any:
        return a + b


def test_scalar_only_semiring_runs_on_scipy_and_names_what_torch_needs() -> None:
    c = case("mlp")
    rel = c.graph.aggregate(ScalarArctic(), target=list(range(c.classes)), backend="scipy")
    for (source, cls), value in brute_force(c, "arctic").items():
        assert math.isclose(_got(rel, source, cls), value, rel_tol=1e-9, abs_tol=1e-12)
    with pytest.raises(ProvgraphError, match="add_ufunc.*torch_add") as info:
        c.graph.aggregate(ScalarArctic(), backend="torch")
    assert "\n" not in str(info.value)


class BadUfunc(Arctic):
    mul_ufunc = np.arctan2  # a ufunc without a torch counterpart in the table


def test_unknown_ufunc_is_named_on_torch() -> None:
    with pytest.raises(ProvgraphError, match="np.arctan2.*torch_mul"):
        case("mlp").graph.aggregate(BadUfunc(), backend="torch")


@pytest.mark.parametrize("k", [Arctic(), LukasiewiczTorchOnly()], ids=["ufunc", "torch_add"])
def test_generic_scatter_and_reduce_fold_duplicates(k: pg.Semiring) -> None:
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 1, size=(2, 3, 40))
    index = rng.integers(0, 7, size=(1, 1, 40))
    carrier = GenericCarrier(k, torch.float64, torch.device("cpu"))
    got = carrier.scatter(torch.as_tensor(src), torch.as_tensor(index), 9).numpy()
    want = np.full((2, 3, 9), k.zero)
    for n, i in enumerate(index.reshape(-1)):  # ⊕ by the scalar definition, one by one
        want[..., i] = [
            [k.plus(a, b) for a, b in zip(row_w, row_s)]
            for row_w, row_s in zip(want[..., i], src[..., n])
        ]
    np.testing.assert_array_equal(got, want)
    x = rng.uniform(0, 1, size=(3, 5, 7))
    reduced = carrier.reduce(torch.as_tensor(x), (0, 2)).numpy()
    np.testing.assert_array_equal(reduced, x.max(axis=(0, 2)))


# --- ranking: ties in the semiring's order, broken by real LRP-0 relevance ------------------


def test_boolean_top_inputs_rank_ties_by_real_lrp0_relevance() -> None:
    c = case("cnn_residual")
    rel = c.graph.aggregate("boolean", target=0)
    # real LRP-0 relevance by brute force: a_y · Σ_paths Π r_e (classic LRP, logit initial)
    r = c.r("lrp0")
    logit = float(c.ref.values["y"].reshape(-1)[0])
    n_in = c.ref.values["x"].size
    lrp = np.zeros(n_in)
    for j in range(n_in):
        lrp[j] = logit * sum(math.prod(r[e] for e in p) for p in c.paths[(("x", j), 0)])
    relevant = np.asarray(rel.input).reshape(-1)
    want = sorted(range(n_in), key=lambda j: (not relevant[j], -lrp[j]))
    line = format_top_inputs(rel, 5, c.graph)
    shape = c.net.input_shape
    cells = [f"{tuple(int(i) for i in np.unravel_index(j, shape))}=True" for j in want[:5]]
    assert line.startswith(f"{int(relevant.sum())} of {n_in} relevant; top 5: ")
    assert ", ".join(cells) in line and "ties ranked by real LRP-0 relevance" in line
    assert 0 < relevant.sum() < n_in


def test_tropical_ranks_cheapest_first_like_viterbi_strongest() -> None:
    c = case("cnn_maxpool")
    tropical = top_inputs(c.graph.aggregate("tropical"), 6)
    viterbi = top_inputs(c.graph.aggregate("viterbi"), 6)
    assert [i for i, _ in tropical] == [i for i, _ in viterbi]
    costs = [v for _, v in tropical]
    assert costs == sorted(costs)
    assert all(len(i) == 3 for i, _ in tropical)  # (channel, row, col)


# --- display and printout --------------------------------------------------------------------


def test_display_is_read_from_the_semiring() -> None:
    counts, label = pg.CountingSemiring().display(np.array([[0, 2**200]], dtype=object))
    assert counts[0, 1] == pytest.approx(200 * math.log10(2)) and label.startswith("log₁₀")
    small, label = pg.CountingSemiring().display(np.array([[0, 7]], dtype=object))
    assert small.tolist() == [[0.0, 7.0]] and label == "relevant paths"
    strength, _ = pg.TropicalSemiring().display(np.array([0.0, np.inf]))
    assert strength.tolist() == [1.0, 0.0]
    arctic, label = Arctic().display(np.array([-1.0]))
    assert arctic.tolist() == [-1.0] and label == "arctic"
    assert pg.RealSemiring().symmetric_colors and not Arctic().symmetric_colors


def test_composite_printout_is_readable() -> None:
    text = repr(layered())
    assert "<function" not in text and "lambda" not in text
    assert "layer 0 → LRPZB" in text and "lower third → LRPGamma" in text
    assert "middle third → LRPEpsilon" in text and text.endswith("otherwise LRPZero()")


@pytest.mark.parametrize("semiring", ["real", "boolean", "counting", "tropical", "arctic"])
def test_heatmap_uses_the_semirings_colours(semiring: str, tmp_path: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from provgraph.io.heatmaps import draw, save_heatmap

    c = case("cnn_maxpool")
    k = Arctic() if semiring == "arctic" else pg.get_semiring(semiring)
    rel = c.graph.aggregate(k)
    fig, ax = plt.subplots()
    im = draw(ax, rel)
    assert im.get_cmap().name == k.colormap
    assert fig.axes[-1].get_ylabel() == (k.colorbar_label or k.name)
    low, high = im.get_clim()
    if k.symmetric_colors:
        lim = float(np.abs(np.asarray(rel.input, dtype=np.float64)).max())
        assert (low, high) == pytest.approx((-lim, lim))
    else:
        shown = np.asarray(im.get_array())
        assert (low, high) == pytest.approx((shown.min(), shown.max()))
    plt.close(fig)
    save_heatmap(rel, tmp_path / "map.png", sample=c.ref.values["x"])
    assert (tmp_path / "map.png").stat().st_size > 0
