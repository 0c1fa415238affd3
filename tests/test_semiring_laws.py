"""Semiring laws, property-based, for every built-in semiring and four user-defined ones.

Values are drawn so that floating-point arithmetic is exact on them (integer-valued floats,
dyadic rationals), hence every law is checked with exact equality. The torch carrier of every
semiring that has one is checked against the numpy operations on the same values.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import find, given, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample
from test_user_semirings import Arctic, Lukasiewicz

from provgraph.algebra.composites import get_composite
from provgraph.algebra.semirings import (
    BUILTIN_SEMIRINGS,
    CountingSemiring,
    Semiring,
    get_semiring,
)
from provgraph.algebra.theta import IdentityTheta, NegLog, Threshold, get_theta
from provgraph.backends.torch_carriers import torch_semiring
from provgraph.errors import ProvgraphError

SETTINGS = settings(max_examples=60, deadline=None)


class ArcticSemiring(Semiring):
    """(ℝ ∪ {−∞}, max, +, −∞, 0), defined by its scalar operations only."""

    name = "arctic"
    zero, one = -math.inf, 0.0
    idempotent = True
    absorptive = False

    def plus(self, a: Any, b: Any) -> Any:
        return max(a, b)

    def times(self, a: Any, b: Any) -> Any:
        return a + b


class DivisibilitySemiring(Semiring):
    """(ℕ, gcd, lcm, 0, 1): the divisibility lattice, with 0 divisible by everything."""

    name = "divisibility"
    zero, one = 0, 1
    idempotent = True
    absorptive = True

    def plus(self, a: Any, b: Any) -> Any:
        return math.gcd(int(a), int(b))

    def times(self, a: Any, b: Any) -> Any:
        return math.lcm(int(a), int(b))


def _dyadic(low: int, high: int, bits: int) -> st.SearchStrategy[float]:
    """Multiples of 2**-bits in [low, high]: sums and short products of them are exact."""
    return st.integers(low * 2**bits, high * 2**bits).map(lambda n: n / 2**bits)


VALUES: dict[str, st.SearchStrategy[Any]] = {
    "real": st.integers(-1000, 1000).map(float) | _dyadic(-4, 4, 6),
    "boolean": st.booleans(),
    "counting": st.integers(0, 20) | st.integers(0, 2**200) | st.just(2**64 + 1),
    "viterbi": _dyadic(0, 1, 8),
    "tropical": st.integers(-1000, 1000).map(float) | _dyadic(-4, 4, 6) | st.just(math.inf),
    "fuzzy": _dyadic(0, 1, 8),
    "arctic": st.integers(-1000, 1000).map(float) | st.just(-math.inf),
    "divisibility": st.integers(0, 10**6),
    "arctic-readme": st.integers(-1000, 1000).map(float) | st.just(-math.inf),
    "lukasiewicz": _dyadic(0, 1, 8),
}

SEMIRINGS: dict[str, Semiring] = {name: get_semiring(name) for name in BUILTIN_SEMIRINGS}
SEMIRINGS["arctic"] = ArcticSemiring()
SEMIRINGS["divisibility"] = DivisibilitySemiring()
SEMIRINGS["arctic-readme"] = Arctic()
SEMIRINGS["lukasiewicz"] = Lukasiewicz()
NAMES = sorted(SEMIRINGS)


def test_every_builtin_has_a_value_strategy() -> None:
    assert set(BUILTIN_SEMIRINGS) <= set(VALUES)


def _same(a: Any, b: Any) -> bool:
    return bool(a == b) and type(a == b) is not np.ndarray


def triples(name: str) -> st.SearchStrategy[tuple[Any, Any, Any]]:
    v = VALUES[name]
    return st.tuples(v, v, v)


@pytest.mark.parametrize("name", NAMES)
def test_laws(name: str) -> None:
    k = SEMIRINGS[name]

    @SETTINGS
    @given(triples(name))
    def check(abc: tuple[Any, Any, Any]) -> None:
        a, b, c = abc
        p, t = k.plus, k.times
        assert _same(p(p(a, b), c), p(a, p(b, c))), "⊕ associative"
        assert _same(t(t(a, b), c), t(a, t(b, c))), "⊗ associative"
        assert _same(p(a, b), p(b, a)), "⊕ commutative"
        assert _same(t(a, b), t(b, a)), "⊗ commutative"
        assert _same(p(a, k.zero), a), "0 is the ⊕ identity"
        assert _same(t(a, k.one), a), "1 is the ⊗ identity"
        assert _same(t(a, k.zero), k.zero), "0 annihilates"
        assert _same(t(a, p(b, c)), p(t(a, b), t(a, c))), "⊗ distributes over ⊕"
        if k.idempotent:
            assert _same(p(a, a), a)
        if k.absorptive:
            assert _same(p(k.one, a), k.one)

    check()


IDEMPOTENT = {
    "boolean",
    "viterbi",
    "tropical",
    "fuzzy",
    "arctic",
    "divisibility",
    "arctic-readme",
    "lukasiewicz",
}
ABSORPTIVE = {"boolean", "viterbi", "fuzzy", "divisibility", "lukasiewicz"}


@pytest.mark.parametrize("name", NAMES)
def test_flags_are_set_exactly_where_the_laws_hold(name: str) -> None:
    k = SEMIRINGS[name]
    assert k.idempotent == (name in IDEMPOTENT)
    assert k.absorptive == (name in ABSORPTIVE)


@pytest.mark.parametrize("name", sorted(set(NAMES) - IDEMPOTENT))
def test_not_idempotent_has_a_witness(name: str) -> None:
    k = SEMIRINGS[name]
    witness = _find(VALUES[name], lambda a: not _same(k.plus(a, a), a))
    assert not _same(k.plus(witness, witness), witness)


@pytest.mark.parametrize("name", sorted(set(NAMES) - ABSORPTIVE))
def test_not_absorptive_has_a_witness(name: str) -> None:
    k = SEMIRINGS[name]
    witness = _find(VALUES[name], lambda a: not _same(k.plus(k.one, a), k.one))
    assert not _same(k.plus(k.one, witness), k.one)


def _find(strategy: st.SearchStrategy[Any], predicate: Any) -> Any:
    try:
        return find(strategy, predicate, settings=settings(max_examples=500, deadline=None))
    except NoSuchExample:
        pytest.fail("no witness found although the flag says the law does not hold")


def _fold(k: Semiring, values: list[Any]) -> Any:
    return functools.reduce(k.plus, values, k.zero)


def _array(k: Semiring, values: list[Any], shape: tuple[int, ...]) -> np.ndarray:
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return k.asarray(arr.reshape(shape))


@st.composite
def matrices(draw: Any, name: str) -> tuple[list[Any], list[Any], tuple[int, int]]:
    rows, cols = draw(st.integers(1, 5)), draw(st.integers(1, 3))
    n = rows * cols
    v = VALUES[name]
    a = draw(st.lists(v, min_size=n, max_size=n))
    b = draw(st.lists(v, min_size=n, max_size=n))
    return a, b, (rows, cols)


@pytest.mark.parametrize("name", NAMES)
def test_elementwise_and_reductions_fold_the_scalar_operations(name: str) -> None:
    k = SEMIRINGS[name]

    @SETTINGS
    @given(matrices(name))
    def check(data: tuple[list[Any], list[Any], tuple[int, int]]) -> None:
        a_list, b_list, shape = data
        a, b = _array(k, a_list, shape), _array(k, b_list, shape)
        added, multiplied = k.add(a, b), k.mul(a, b)
        assert added.shape == multiplied.shape == shape
        for idx in np.ndindex(*shape):
            assert _same(added[idx], k.plus(a[idx], b[idx]))
            assert _same(multiplied[idx], k.times(a[idx], b[idx]))
        for axis in (0, 1):
            reduced = k.sum(a, axis=axis)
            for idx in np.ndindex(*reduced.shape):
                line = np.take(a, idx[0], axis=1 - axis)
                assert _same(reduced[idx], _fold(k, list(line)))

    check()


@st.composite
def segments(draw: Any, name: str) -> tuple[list[Any], np.ndarray, int]:
    lengths = draw(st.lists(st.integers(0, 3), min_size=0, max_size=6))
    cols = draw(st.integers(1, 3))
    n = sum(lengths) * cols
    values = draw(st.lists(VALUES[name], min_size=n, max_size=n))
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    return values, indptr, cols


@pytest.mark.parametrize("name", NAMES)
def test_segment_sum_folds_each_segment(name: str) -> None:
    k = SEMIRINGS[name]

    @SETTINGS
    @given(segments(name))
    def check(data: tuple[list[Any], np.ndarray, int]) -> None:
        values_list, indptr, cols = data
        values = _array(k, values_list, (int(indptr[-1]), cols))
        out = k.segment_sum(values, indptr)
        assert out.shape == (len(indptr) - 1, cols)
        for i in range(len(indptr) - 1):
            for c in range(cols):
                expected = _fold(k, list(values[indptr[i] : indptr[i + 1], c]))
                assert _same(out[i, c], expected)

    check()


@pytest.mark.parametrize("name", NAMES)
def test_empty_reductions_give_zero(name: str) -> None:
    k = SEMIRINGS[name]
    empty = k.zeros((0, 2))
    assert all(_same(v, k.zero) for v in k.sum(empty, axis=0))
    out = k.segment_sum(empty, np.array([0, 0, 0]))
    assert out.shape == (2, 2)
    assert all(_same(v, k.zero) for v in out.reshape(-1))


def test_segment_sum_with_one_dimensional_values() -> None:
    k = SEMIRINGS["counting"]
    values = k.asarray(np.array([2**70, 3, 5, 7], dtype=object))
    out = k.segment_sum(values, np.array([0, 2, 2, 4]))
    assert out.tolist() == [2**70 + 3, 0, 12]


def test_counting_is_exact_beyond_64_bits() -> None:
    k = CountingSemiring()
    big = 2**64 + 1
    assert k.times(big, big) == big * big
    assert k.times(2**40, 2**40) == 2**80
    assert k.plus(2**63, 2**63) == 2**64
    assert k.power(3, 100) == 3**100
    assert k.multiple(2**70, 5) == 5 * 2**70
    a = np.array([2**62, 2**40, 7], dtype=np.int64)
    assert k.mul(a, a).tolist() == [2**124, 2**80, 49]
    assert k.add(a, a).tolist() == [2**63, 2**41, 14]
    chain = k.asarray(np.array([2**64 + 1] * 8, dtype=object))
    assert k.sum(chain).tolist() == 8 * (2**64 + 1)
    product = functools.reduce(k.times, [2**64 + 1] * 8, k.one)
    assert product == (2**64 + 1) ** 8


# --- what each semiring carries: defaults, and its torch carrier -------------------------------

SEED_DEFAULTS = {  # DESIGN.md §2: (rule name, Θ)
    "real": ("lrp0", IdentityTheta()),
    "boolean": ("lrp0", Threshold(1e-9)),
    "counting": ("lrp0", Threshold(1e-9)),
    "viterbi": ("maxnorm", IdentityTheta()),
    "tropical": ("maxnorm", NegLog()),
    "fuzzy": ("maxnorm", IdentityTheta()),
}


@pytest.mark.parametrize("name", sorted(BUILTIN_SEMIRINGS))
def test_builtin_defaults_are_the_seed_defaults(name: str) -> None:
    k = get_semiring(name)
    rule, theta = SEED_DEFAULTS[name]
    assert get_composite(None, k).default.name == rule
    assert repr(get_theta(None, k)) == repr(theta)


SCALAR_ONLY = {"arctic", "divisibility"}  # ⊕/⊗ as Python scalar methods only
CARRIER_VALUES = {**VALUES, "counting": st.integers(0, 1000)}  # the int64 carrier's range


@pytest.mark.parametrize("name", sorted(SCALAR_ONLY))
def test_scalar_only_semirings_have_no_torch_carrier(name: str) -> None:
    with pytest.raises(ProvgraphError, match="torch_add"):
        torch_semiring(SEMIRINGS[name], torch.float64, torch.device("cpu"))


@st.composite
def carrier_data(draw: Any, name: str) -> tuple[list[Any], list[Any], list[int]]:
    v = CARRIER_VALUES[name]
    a = draw(st.lists(v, min_size=12, max_size=12))
    b = draw(st.lists(v, min_size=12, max_size=12))
    index = draw(st.lists(st.integers(0, 4), min_size=4, max_size=4))
    return a, b, index


def _numpy(k: Semiring, t: torch.Tensor, carrier: Any) -> list[Any]:
    return carrier.decode(t).reshape(-1).tolist()


def _all_same(got: list[Any], want: list[Any]) -> bool:
    return len(got) == len(want) and all(map(_same, got, want))


@pytest.mark.parametrize("name", sorted(set(NAMES) - SCALAR_ONLY))
def test_torch_carrier_computes_the_semiring(name: str) -> None:
    """⊕, ⊗, ⊕-reduction, contraction and scatter of the torch carrier equal the scalar folds."""
    k = SEMIRINGS[name]
    carrier = torch_semiring(k, torch.float64, torch.device("cpu"))

    @settings(max_examples=25, deadline=None)
    @given(carrier_data(name))
    def check(data: tuple[list[Any], list[Any], list[int]]) -> None:
        a_list, b_list, index = data
        a = carrier.encode(_array(k, a_list, (1, 3, 4)))
        b = carrier.encode(_array(k, b_list, (1, 3, 4)))
        want_add = [k.plus(x, y) for x, y in zip(a_list, b_list)]
        want_mul = [k.times(x, y) for x, y in zip(a_list, b_list)]
        assert _all_same(_numpy(k, carrier.add(a, b), carrier), want_add)
        assert _all_same(_numpy(k, carrier.mul(a, b), carrier), want_mul)
        rows = [a_list[4 * i : 4 * i + 4] for i in range(3)]
        want_sum = [_fold(k, r) for r in rows]
        assert _all_same(_numpy(k, carrier.reduce(a, (-1,)), carrier), want_sum)
        # contraction out[t, j] = ⊕_k m[j, k] ⊗ r[t, k]: m is a (3, 4), r is b's first row
        r_row = b_list[:4]
        want = [_fold(k, [k.times(m, x) for m, x in zip(row, r_row)]) for row in rows]
        got = carrier.contract(a, b[:, :1, :])
        assert _all_same(_numpy(k, got, carrier), want)
        # scatter: out[i] = ⊕ of the row's entries whose index is i
        idx = torch.as_tensor(index).reshape(1, 1, 4)
        scattered = carrier.settle(carrier.scatter(a[:, :1, :], idx, 5))
        want = [_fold(k, [x for x, j in zip(rows[0], index) if j == i]) for i in range(5)]
        assert _all_same(_numpy(k, scattered, carrier), want)

    check()
