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


# --------------------------------------------------------------------------- printing
@pytest.fixture(scope="module")
def mlp_circuit(torch_onnx):
    from provgraph.symbolic import build_circuit

    x = np.random.default_rng(0).uniform(size=20)
    return build_circuit(annotate(str(torch_onnx("mlp")), x))


def _sympy_symbols(poly) -> dict:
    import sympy

    var = poly.circuit.variables
    return {var.name(v): sympy.Symbol(var.name(v)) for v in poly.variable_ids}


def _coefficients(expr, symbols: dict) -> dict:
    """Monomial exponents → coefficient, read by sympy (the oracle) from an expression."""
    import sympy

    gens = list(symbols.values())
    return {m: complex(c) for m, c in sympy.Poly(sympy.expand(expr), *gens).as_dict().items()}


def _assert_same_coefficients(got: dict, expected: dict, rtol: float) -> None:
    assert got.keys() == expected.keys()
    for m, c in expected.items():
        assert abs(got[m] - c) <= rtol * abs(c), (m, got[m], c)


def _latex_to_text(latex: str, poly) -> str:
    """Undo the LaTeX notation with the variables' own tables (independent of the printer)."""
    var = poly.circuit.variables
    text = latex
    for v in sorted(poly.variable_ids, key=lambda v: -len(var.latex(v))):
        text = text.replace(var.latex(v), var.name(v))
    text = re.sub(r"\\cdot 10\^\{(-?\d+)\}", r"*10**(\1)", text)
    text = re.sub(r"\\left\((\w+)\\right\)\^\{(\d+)\}", r"\1**\2", text)
    return re.sub(r"(?<=[\w.)]) (?=[\w(])", "*", text)


@pytest.mark.parametrize("form", ["natural", "real", "neurons"])
def test_printed_polynomials_parse_back_to_the_sympy_route(mlp_circuit, form) -> None:
    import sympy

    from provgraph.symbolic import expand

    polys = expand(mlp_circuit, neurons=[0, 3, 19], form=form)
    assert sum(len(p) for p in polys) > 0
    for p in polys:
        symbols = _sympy_symbols(p)
        if not p.terms:
            assert p.text() == "0" and p.latex() == "0"
            continue
        exact = _coefficients(p.to_sympy(), symbols)
        _assert_same_coefficients(
            _coefficients(sympy.sympify(p.text(), locals=symbols), symbols), exact, 1e-12
        )
        _assert_same_coefficients(
            _coefficients(sympy.sympify(str(p), locals=symbols), symbols), exact, 1e-12
        )
        rounded = _coefficients(p.to_sympy(4), symbols)
        for text in (p.text(4), _latex_to_text(p.latex(4), p)):
            _assert_same_coefficients(
                _coefficients(sympy.sympify(text, locals=symbols), symbols), rounded, 1e-3
            )


def test_natural_polynomial_latex_has_the_terms_sympy_prints(mlp_circuit) -> None:
    from provgraph.symbolic import expand
    from provgraph.symbolic.sympy_forms import to_latex

    [p] = expand(mlp_circuit, neurons=[5])
    ours = set(p.latex().split(" + "))
    theirs = set(to_latex(p.to_sympy(), mlp_circuit.variables).split(" + "))
    assert len(ours) == len(p) and ours == theirs


def test_printer_writes_signs_powers_constants_and_scientific_coefficients() -> None:
    import sympy

    from provgraph.symbolic.printing import polynomial_latex, polynomial_text

    names = {0: "a", 1: "b"}
    terms = {(0, 0, 1): 2, (1,): -0.5, (): 3, (0,): -1, (0, 1): 1.5e-7, (1, 1): 0}
    text = polynomial_text(terms, names.__getitem__)
    a, b = sympy.symbols("a b")
    expected = 2 * a**2 * b - 0.5 * b + 3 - a + 1.5e-7 * a * b
    assert sympy.expand(sympy.sympify(text) - expected) == 0
    latex = polynomial_latex(terms, names.__getitem__, digits=3)
    assert "\\left(a\\right)^{2} b" in latex and "1.5 \\cdot 10^{-7} a b" in latex
    assert latex.startswith("3 ") and "- 0.5 b" in latex and "- a" in latex
    assert polynomial_text({}, names.__getitem__) == "0"
    assert polynomial_text({(1,): 0.0}, names.__getitem__) == "0"
