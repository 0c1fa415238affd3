"""Why(X), PosBool(X), Lineage, B[X], Trio(X), ℕ[X]: laws, homomorphisms, brute-force paths."""

from __future__ import annotations

import itertools
import random

import networkx as nx
import numpy as np
import pytest
from symbolic_nets import MODELS, mlp

from provgraph.errors import ProvgraphError
from provgraph.io.exports import to_networkx
from provgraph.symbolic import (
    PROVENANCE_SEMIRINGS,
    NaturalPolynomials,
    build_circuit,
    get_provenance_semiring,
    homomorphism,
    map_values,
    specialize,
)

NAMES = list(PROVENANCE_SEMIRINGS)
TARGETS = ["bx", "trio", "why", "posbool", "lineage"]


def random_values(k, seed: int, n: int = 6) -> list:
    """Values of ``k`` built from three variables with ⊕ and ⊗ (and the constants)."""
    rng = random.Random(seed)
    atoms = [k.zero, k.one] + [k.variable(v) for v in "abc"]
    values = list(atoms)
    while len(values) < len(atoms) + n:
        a, b = rng.choice(values), rng.choice(values)
        values.append(k.plus(a, b) if rng.random() < 0.5 else k.times(a, b))
    return values


@pytest.mark.parametrize("name", NAMES)
def test_semiring_laws(name: str) -> None:
    k = get_provenance_semiring(name)
    vals = random_values(k, seed=1)
    for a, b, c in itertools.product(vals[:7], repeat=3):
        assert k.plus(a, b) == k.plus(b, a) and k.times(a, b) == k.times(b, a)
        assert k.plus(k.plus(a, b), c) == k.plus(a, k.plus(b, c))
        assert k.times(k.times(a, b), c) == k.times(a, k.times(b, c))
        assert k.times(a, k.plus(b, c)) == k.plus(k.times(a, b), k.times(a, c))
    for a in vals:
        assert k.plus(a, k.zero) == a and k.times(a, k.one) == a
        assert k.times(a, k.zero) == k.zero
        if k.idempotent:
            assert k.plus(a, a) == a


@pytest.mark.parametrize("target", TARGETS)
def test_hierarchy_maps_are_homomorphisms(target: str) -> None:
    nx_k, dst = NaturalPolynomials(), get_provenance_semiring(target)
    h = homomorphism("nx", target)
    vals = random_values(nx_k, seed=2, n=10)
    assert h(nx_k.zero) == dst.zero and h(nx_k.one) == dst.one
    assert h(nx_k.variable("a")) == dst.variable("a")
    for a, b in itertools.product(vals, repeat=2):
        assert h(nx_k.plus(a, b)) == dst.plus(h(a), h(b))
        assert h(nx_k.times(a, b)) == dst.times(h(a), h(b))


def test_posbool_does_not_map_to_lineage() -> None:
    with pytest.raises(ProvgraphError, match="no homomorphism"):
        homomorphism("posbool", "lineage")


@pytest.mark.parametrize("model", list(MODELS))
@pytest.mark.parametrize("target", TARGETS)
def test_nx_specialised_then_mapped_equals_computing_in_the_smaller_semiring(
    model: str, target: str
) -> None:
    graph = MODELS[model]()
    circuit = build_circuit(graph)
    h = homomorphism("nx", target)
    for theta in ("one", None):  # every edge, or the edges Θ keeps (default threshold)
        universal = specialize(circuit, "nx", theta=theta)
        direct = specialize(circuit, target, theta=theta)
        for t, values in universal.tensors.items():
            assert np.array_equal(map_values(h, values), direct.tensors[t])
        for op, values in universal.biases.items():
            assert np.array_equal(map_values(h, values), direct.biases[op])


def test_coarse_valuation_gives_coefficients_and_exponents() -> None:
    """One variable ``w`` for every edge: each of the N paths of a 3-layer MLP is ``w³``."""
    graph = mlp([5, 4, 3, 3], seed=7)
    circuit = build_circuit(graph)
    results = {}
    for name in ["nx", *TARGETS]:
        k = get_provenance_semiring(name)
        values = np.empty(circuit.variables.n_edges, dtype=object)
        values[:] = [k.variable("w")] * len(values)
        results[name] = specialize(circuit, k, valuation=values).tensors["x"][:, 0]
    for j in range(5):
        assert results["nx"][j] == frozenset({((("w", 3),), 4 * 3)})
        assert results["bx"][j] == frozenset({(("w", 3),)})
        assert results["trio"][j] == frozenset({(frozenset({"w"}), 12)})
        assert results["why"][j] == results["posbool"][j] == frozenset({frozenset({"w"})})
        assert results["lineage"][j] == frozenset({"w"})
        for name in TARGETS:
            assert homomorphism("nx", name)(results["nx"][j]) == results[name][j]


@pytest.mark.parametrize("model", ["mlp-5-4-3-3", "cnn-maxpool"])
def test_witnesses_are_the_relevant_paths(model: str) -> None:
    """Why(X) by brute force: the edge sets of the paths whose every rule weight passes Θ."""
    graph = MODELS[model]()
    circuit = build_circuit(graph)
    var = circuit.variables
    net = graph.network
    g = to_networkx(graph, rule="lrp0")
    target = (net.output_name, circuit.targets[0])
    why = specialize(circuit, "why").tensors[net.input_name][:, 0]
    posbool = specialize(circuit, "posbool").tensors[net.input_name][:, 0]
    lineage = specialize(circuit, "lineage").tensors[net.input_name][:, 0]
    for j in range(net.size(net.input_name)):
        witnesses = set()
        for path in nx.all_simple_paths(g, (net.input_name, j), target):
            edges = [(u, v, g.edges[u, v]) for u, v in zip(path, path[1:])]
            if any(a["w"] is not None and a["r"] < 1e-9 for _, _, a in edges):
                continue
            names = frozenset(
                var.name(var.edge_id(a["op"], net.op(a["op"]).inputs.index(u[0]), u[1], v[1]))
                for u, v, a in edges if a["w"] is not None
            )
            witnesses.add(names)
        assert why[j] == frozenset(witnesses)
        minimal = {w for w in witnesses if not any(o < w for o in witnesses)}
        assert posbool[j] == frozenset(minimal)
        assert lineage[j] == (frozenset().union(*witnesses) if witnesses else None)


def test_values_print_readably() -> None:
    graph = mlp([3, 2, 2], seed=8)
    circuit = build_circuit(graph, target=0)
    for name in NAMES:
        k = get_provenance_semiring(name)
        value = specialize(circuit, k, theta="one").tensors["x"][0, 0]
        text = k.format(value)
        assert "x0_0_0" in text and "x1_0_0" in text and "x1_1_0" in text, (name, text)
    assert get_provenance_semiring("PosBool").format(get_provenance_semiring("posbool").one) == \
        "true"
