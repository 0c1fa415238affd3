"""k-best provenance paths against brute-force enumeration of every path of tiny networks.

The reference computes activations and the max-normalised rule weights
``r_jk = |a_j w_jk| / (max(max_j' |a_j' w_j'k|, |b_k|) + 1e-9)`` with loops, enumerates every
path from a source neuron to the class, multiplies its edge weights (activations, max pooling's
winner and flatten contribute edges of weight one) and sorts them.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from provgraph.algebra.kbest import KBestSemiring, TopK
from provgraph.apps.paths import explain_paths
from provgraph.cli.main import main
from provgraph.model.network import Network
from provgraph.model.ops import Activation, Conv, Dense, Flatten, MaxPool


def maxnorm(a: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(n_in, n_out)`` max-normalised rule weights, one output neuron at a time."""
    r = np.zeros(w.shape)
    for k in range(w.shape[1]):
        z = [abs(a[j] * w[j, k]) for j in range(w.shape[0])]
        m = max(z + [abs(b[k])]) + 1e-9
        for j in range(w.shape[0]):
            r[j, k] = z[j] / m
    return r


def tiny_mlp(seed: int) -> tuple[Network, np.ndarray, list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = [5, 4, 3, 3]
    ws = [rng.normal(size=(sizes[i], sizes[i + 1])) for i in range(3)]
    bs = [rng.uniform(0, 0.5, size=sizes[i + 1]) for i in range(3)]
    ops = [
        Dense("d1", ("x",), "z1", weight=ws[0], bias=bs[0]),
        Activation("a1", ("z1",), "h1", function="relu"),
        Dense("d2", ("h1",), "z2", weight=ws[1], bias=bs[1]),
        Activation("a2", ("z2",), "h2", function="relu"),
        Dense("d3", ("h2",), "y", weight=ws[2], bias=bs[2]),
    ]
    net = Network(ops, "x", "y", (5,))
    x = rng.uniform(0, 1, size=5)
    acts = [x]
    rs = []
    for i in range(3):
        rs.append(maxnorm(acts[-1], ws[i], bs[i]))
        z = acts[-1] @ ws[i] + bs[i]
        acts.append(np.maximum(z, 0) if i < 2 else z)
    return net, x, rs, acts[-1]


def brute_force_mlp(rs: list[np.ndarray], source: int, target: int) -> list[tuple[float, tuple]]:
    paths = []
    for a, b in itertools.product(range(rs[0].shape[1]), range(rs[1].shape[1])):
        score = rs[0][source, a] * rs[1][a, b] * rs[2][b, target]
        if score > 0:
            paths.append((score, (target, b, a, source)))
    return sorted(paths, key=lambda p: -p[0])


def linear_neurons(path, net: Network) -> tuple[int, ...]:
    """The neuron indices at the class, after each linear op, and at the source."""
    linear_outputs = {op.output for op in net.linear_ops}
    return tuple(i for t, i in path.neurons if t in linear_outputs or t == net.input_name)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("k", [1, 3, 7])
def test_k_best_paths_of_a_tiny_mlp_equal_brute_force_enumeration(seed, k):
    net, x, rs, logits = tiny_mlp(seed)
    target = int(np.argmax(logits))
    for source in range(5):
        expected = brute_force_mlp(rs, source, target)[:k]
        result = explain_paths(net, x, target=target, k=k, source=source)
        assert result.consistent
        got = [(p.score, linear_neurons(p, net)) for p in result.paths]
        assert len(got) == len(expected)
        np.testing.assert_allclose([s for s, _ in got], [s for s, _ in expected], rtol=1e-9)
        assert [n for _, n in got] == [n for _, n in expected]
        for p in result.paths:  # each weighted edge carries its rule weight r_jk
            weighted = [e for e in p.edges if e.r is not None]
            layer = {"d1": 0, "d2": 1, "d3": 2}
            for e in weighted:
                assert e.annotation == pytest.approx(rs[layer[e.op]][e.source[1], e.target[1]])


def test_k_best_paths_of_a_tiny_cnn_equal_brute_force_enumeration():
    rng = np.random.default_rng(7)
    w_conv, b_conv = rng.normal(size=(2, 1, 3, 3)), rng.uniform(0, 0.3, size=2)
    w_dense, b_dense = rng.normal(size=(8, 3)), rng.uniform(0, 0.3, size=3)
    ops = [
        Conv("c", ("x",), "z", weight=w_conv, bias=b_conv, pads=(1, 1, 1, 1)),
        Activation("a", ("z",), "h", function="relu"),
        MaxPool("p", ("h",), "m", kernel=(2, 2)),
        Flatten("f", ("m",), "v"),
        Dense("d", ("v",), "y", weight=w_dense, bias=b_dense),
    ]
    net = Network(ops, "x", "y", (1, 4, 4))
    x = rng.uniform(0, 1, size=(1, 4, 4))
    # the reference forward pass and edges, with loops
    z = np.zeros((2, 4, 4))
    r_conv = {}  # (input pixel, conv output neuron) -> r
    for c in range(2):
        for oy in range(4):
            for ox in range(4):
                taps = [(iy * 4 + ix, x[0, iy, ix] * w_conv[c, 0, iy - oy + 1, ix - ox + 1])
                        for iy in range(oy - 1, oy + 2) for ix in range(ox - 1, ox + 2)
                        if 0 <= iy < 4 and 0 <= ix < 4]
                z[c, oy, ox] = sum(v for _, v in taps) + b_conv[c]
                m = max([abs(v) for _, v in taps] + [abs(b_conv[c])]) + 1e-9
                for j, v in taps:
                    r_conv[(j, c * 16 + oy * 4 + ox)] = abs(v) / m
    h = np.maximum(z, 0)
    winner = {}  # conv output neuron -> pooled neuron (flattened index)
    for c in range(2):
        for py in range(2):
            for px in range(2):
                window = [(c * 16 + (2 * py + dy) * 4 + 2 * px + dx) for dy in (0, 1)
                          for dx in (0, 1)]
                best = max(window, key=lambda n: (h.reshape(-1)[n], -n))
                winner[best] = c * 4 + py * 2 + px
    pooled = np.array([h.reshape(-1)[n] for n in sorted(winner, key=winner.get)])
    r_dense = maxnorm(pooled, w_dense, b_dense)
    target = int(np.argmax(pooled @ w_dense + b_dense))
    for source in range(16):
        expected = sorted(
            (r * r_dense[winner[n], target], (target, winner[n], n, source))
            for (j, n), r in r_conv.items()
            if j == source and n in winner and r * r_dense[winner[n], target] > 0
        )[::-1]
        result = explain_paths(net, x, target=target, k=4, source=source)
        assert result.consistent
        got = [p.score for p in result.paths]
        np.testing.assert_allclose(got, [s for s, _ in expected[:4]], rtol=1e-9)
        names = [(p.neurons[1][1], p.neurons[-2][1]) for p in result.paths]
        assert names == [(e[1][1], e[1][2]) for e in expected[:4]]


def test_the_k_best_semiring_obeys_the_laws_on_samples():
    k = KBestSemiring(3)
    rng = np.random.default_rng(0)
    values = [TopK(tuple(sorted(rng.uniform(0, 1, n), reverse=True))) for n in (0, 1, 2, 3, 3)]

    def close(a: TopK, b: TopK) -> bool:
        return len(a) == len(b) and np.allclose(a.scores, b.scores, rtol=1e-12, atol=0)

    for a, b, c in itertools.product(values, repeat=3):
        assert close(k.plus(a, b), k.plus(b, a))
        assert close(k.times(a, b), k.times(b, a))
        assert close(k.plus(k.plus(a, b), c), k.plus(a, k.plus(b, c)))
        assert close(k.times(k.times(a, b), c), k.times(a, k.times(b, c)))
        assert close(k.times(a, k.plus(b, c)), k.plus(k.times(a, b), k.times(a, c)))
        assert close(k.plus(a, k.zero), a) and close(k.times(a, k.one), a)
        assert k.times(a, k.zero) == k.zero


def test_paths_cli_runs_with_no_arguments_and_refuses_bad_sources(tmp_path, capsys):
    assert main(["-q", "paths", "--k", "3", "--out", str(tmp_path / "paths")]) == 0
    printed = capsys.readouterr().out
    assert printed.count("score") >= 3
    import hashlib
    import json

    from provgraph.apps.demo import bundled_model_path

    record = json.loads((tmp_path / "paths" / "paths.json").read_text())
    assert record["model_sha256"] == hashlib.sha256(bundled_model_path().read_bytes()).hexdigest()
    assert len(record["paths"]) == 3 and record["consistent_with_semiring"]
    assert (tmp_path / "paths" / "annotated_network.png").stat().st_size > 0
    assert main(["-q", "paths", "--source", "nosuch:3"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no tensor 'nosuch'" in err and len(err.splitlines()) == 1
    assert main(["-q", "paths", "--source", "99999"]) == 2
    assert "is not in" in capsys.readouterr().err
