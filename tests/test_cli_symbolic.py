"""The ``polynomial`` and ``specialize`` commands on the bundled MNIST MLP and a small ONNX MLP."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from provgraph.algebra.semirings import get_semiring
from provgraph.api import annotate
from provgraph.apps.demo import bundled_model_path, bundled_samples
from provgraph.cli.main import dispatch
from provgraph.errors import BudgetError, ProvgraphError

MODEL = str(bundled_model_path())


def run(*argv: str) -> int:
    """The command line without its error handler, so that provgraph errors propagate."""
    return dispatch(list(argv))


@pytest.fixture(scope="module")
def digit(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, np.ndarray, int]:
    x, y = bundled_samples()
    path = tmp_path_factory.mktemp("inputs") / "digit.npy"
    np.save(path, x[4])
    return str(path), x[4], int(y[4])


def test_specialize_prints_one_table_and_writes_one_npz_per_semiring(
    digit, tmp_path: Path, capsys
) -> None:
    path, x, label = digit
    names = ["real", "boolean", "counting", "viterbi", "tropical"]
    assert run("specialize", MODEL, path, "--semirings", ",".join(names),
               "--out", str(tmp_path)) == 0
    out = capsys.readouterr().out
    rows = [line.split()[0] for line in out.splitlines()[2:] if line and line.split()[0] in names]
    assert rows == names
    graph = annotate(MODEL, x)
    for name in names:
        with np.load(tmp_path / f"{name}.npz") as data:
            expected = graph.aggregate(name).input
            stored = data["input"]
            assert int(data["targets"][0]) == label
        k = get_semiring(name)
        if name in ("boolean", "counting"):
            assert np.array_equal(stored, np.asarray(expected).astype(stored.dtype))
        else:
            assert np.all(k.isclose(stored, expected))


def test_polynomial_expands_hidden_neurons_and_prints_the_variable_table(digit, capsys) -> None:
    path, _, label = digit
    assert run("polynomial", MODEL, path, "--layer", "/1/Relu",
               "--neuron", "0,7", "--expand", "--table") == 0
    out = capsys.readouterr().out
    # a first-hidden-layer neuron has 100 paths (one per second-layer neuron) to the class
    assert re.findall(r"% \S+\[(\d+)\]: (\d+) monomials", out) == [("0", "100"), ("7", "100")]
    assert f"x1_7_99*x2_99_{label}" in out
    assert re.search(rf"x2_99_{label}\s+edge\s+/4/Gemm\s+\S+\s+99\s+\S+\s+{label}", out)


def test_polynomial_circuit_form_in_latex_with_neuron_variables(digit, capsys) -> None:
    path, _, _ = digit
    assert run("polynomial", MODEL, path, "--vars", "neurons", "--neuron", "3", "--latex") == 0
    out = capsys.readouterr().out
    assert "\\begin{aligned}" in out and "R^{[0]}_{3} &=" in out
    assert "n^{(0)}_{" in out and "n^{(1)}_{" in out


def test_polynomial_expansion_of_every_pixel_is_refused(digit) -> None:
    path, _, _ = digit
    with pytest.raises(BudgetError, match="23,520,000 monomials.*circuit form"):
        run("polynomial", MODEL, path, "--expand")


def test_specialize_with_provenance_semirings_on_a_small_onnx_mlp(
    torch_onnx, tmp_path: Path, capsys
) -> None:
    model = torch_onnx("mlp")
    x = np.random.default_rng(0).uniform(size=20)
    np.save(tmp_path / "x.npy", x)
    assert run("specialize", str(model), str(tmp_path / "x.npy"), "--semirings",
               "why,posbool,lineage,counting", "--out", str(tmp_path / "out")) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()[2:6]] == [
        "why", "posbool", "lineage", "counting"]
    for name in ("why", "posbool", "lineage"):
        assert (tmp_path / "out" / f"{name}.npz").is_file()


def test_user_mistakes_raise_provgraph_errors(digit, tmp_path: Path) -> None:
    path, _, _ = digit
    with pytest.raises(ProvgraphError, match="unknown semiring"):
        run("specialize", MODEL, path, "--semirings", "real,nope", "--no-save")
    with pytest.raises(ProvgraphError, match="no tensor or op named"):
        run("polynomial", MODEL, path, "--layer", "nowhere")
    with pytest.raises(ProvgraphError, match="out of range"):
        run("polynomial", MODEL, path, "--neuron", "784")
    with pytest.raises(BudgetError, match="circuit"):
        run("specialize", MODEL, path, "--semirings", "why", "--no-save")
