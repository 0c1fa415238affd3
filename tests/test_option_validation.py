"""Options and inputs that cannot give a meaningful explanation are refused with one line;
the usual spellings of a class index are accepted."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import provgraph as pg
from provgraph.apps.demo import bundled_model_path, bundled_samples
from provgraph.cli import main
from provgraph.errors import InputError, ProvgraphError

MODEL = bundled_model_path()
DIGITS, LABELS = bundled_samples()


def refused(match: str, *args, **kwargs) -> str:
    with pytest.raises(ProvgraphError, match=match) as exc:
        pg.explain(MODEL, *args, **kwargs)
    assert "\n" not in str(exc.value)
    return str(exc.value)


@pytest.mark.parametrize("target", [np.array(3), torch.tensor(3), np.int64(3), 3])
def test_zero_dimensional_targets_are_class_indices(target) -> None:
    expected = pg.explain(MODEL, DIGITS[0], target=3)
    rel = pg.explain(MODEL, DIGITS[0], target=target)
    assert rel.targets == [3]
    np.testing.assert_array_equal(rel.input, expected.input)


def test_argmax_of_a_torch_output_is_a_target() -> None:
    logits = torch.as_tensor(pg.explain(MODEL, DIGITS[5]).logits)
    rel = pg.explain(MODEL, DIGITS[5], target=torch.argmax(logits).numpy())
    assert rel.targets == [int(np.argmax(rel.logits))]


@pytest.mark.parametrize(("semiring", "theta"), [("viterbi", "neglog"), ("real", "neglog"),
                                                 ("fuzzy", "neglog"), ("tropical", "log")])
def test_log_thetas_need_the_matching_zero(semiring: str, theta: str) -> None:
    refused("needs a semiring whose zero is", DIGITS[0], semiring=semiring, theta=theta)


def test_log_thetas_with_their_semirings() -> None:
    tropical = pg.explain(MODEL, DIGITS[0], semiring="tropical", theta="neglog")
    viterbi = pg.explain(MODEL, DIGITS[0], semiring="viterbi")
    # min Σ −log r = −log max Π r: the tropical cost is −log of the Viterbi strength
    with np.errstate(divide="ignore"):
        np.testing.assert_allclose(tropical.input, -np.log(viterbi.input), rtol=1e-7)


@pytest.mark.parametrize("theta", [float("nan"), float("inf"), "abc"])
def test_thresholds_must_be_finite_numbers(theta) -> None:
    refused("threshold|unknown Θ", DIGITS[0], semiring="boolean", theta=theta)


@pytest.mark.parametrize("rule", ["epsilon:nan", "epsilon:-0.5", "gamma:nan", "zb:nan",
                                  "epsilon:inf"])
def test_rule_parameters_must_be_finite(rule: str) -> None:
    refused("finite", DIGITS[0], rule=rule)


@pytest.mark.parametrize(
    ("init", "match"),
    [([float("nan")] * 10, "class 0 is nan"), (["a"] * 10, "values of the real semiring"),
     (np.full(10, np.inf), "finite number"), (np.ones(11), "11 entries")],
)
def test_initial_vectors(init, match: str) -> None:
    refused(match, DIGITS[0], init=init)


def test_tropical_zero_is_a_valid_initial_value() -> None:
    init = np.full(10, np.inf)
    init[4] = 0.0  # tropical one on class 4, zero elsewhere: the K-LRP initialisation
    a = pg.explain(MODEL, DIGITS[4], semiring="tropical", init=init)
    b = pg.explain(MODEL, DIGITS[4], semiring="tropical", target=4)
    np.testing.assert_array_equal(a.input, b.input)


@pytest.mark.parametrize(
    ("x", "match"),
    [(torch.empty(784, device="meta"), "meta tensor"), ("a digit", "text"),
     (DIGITS[0].astype(np.complex128) + 1j, "complex")],
    ids=["meta", "text", "complex"],
)
def test_inputs_without_values(x, match: str) -> None:
    with pytest.raises(InputError, match=match):
        pg.explain(MODEL, x)


def test_sparse_tensor_input_is_densified() -> None:
    sparse = torch.as_tensor(DIGITS[2]).reshape(1, -1).to_sparse()
    dense = pg.explain(MODEL, DIGITS[2]).input
    np.testing.assert_array_equal(pg.explain(MODEL, sparse).input.reshape(-1), dense)


def test_overflowing_activation_is_refused_naming_the_op() -> None:
    message = refused("is not finite for sample 0", DIGITS[0] * 1e308)
    assert "Gemm" in message


def test_cli_max_memory(tmp_path, capsys) -> None:
    path = tmp_path / "digit.npy"
    np.save(path, DIGITS[0])
    assert main(["explain", str(MODEL), str(path), "--max-memory", "1K"]) == 2
    assert "over the memory budget of 1.0 KiB" in capsys.readouterr().err
    assert main(["explain", str(MODEL), str(path), "--max-memory", "lots"]) == 2
    assert "not a number of bytes" in capsys.readouterr().err
    assert main(["explain", str(MODEL), str(path), "--max-memory", "64M"]) == 0


def test_counting_initial_vector_of_text() -> None:
    refused("values of the counting semiring", DIGITS[0], semiring="counting", init=["a"] * 10)


def test_output_folders(tmp_path, monkeypatch, capsys) -> None:
    from provgraph.io.atomic import atomic_save_npz

    monkeypatch.chdir(tmp_path)
    atomic_save_npz("maps/run1/rel.npz", {"a": np.ones(2)})  # missing folders are created
    assert (tmp_path / "maps" / "run1" / "rel.npz").is_file()
    atomic_save_npz(tmp_path / "other" / "rel.npz", {"a": np.ones(2)})
    assert (tmp_path / "other" / "rel.npz").is_file()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ProvgraphError, match="is a file, not a folder"):
        atomic_save_npz(tmp_path / "afile" / "rel.npz", {"a": np.ones(2)})
    typo = Path("/provgraph-no-such-folder") / "sub" / "m.png"  # never created at the root
    path = tmp_path / "digit.npy"
    np.save(path, DIGITS[0])
    assert main(["explain", str(MODEL), str(path), "--out", str(typo)]) == 2
    assert "does not create folders in /" in capsys.readouterr().err
    assert not typo.parent.parent.exists()


@pytest.mark.parametrize(
    ("options", "match"),
    [({"semiring": "viterbi", "theta": "neglog"}, "zero is"), ({"rule": "epsilon:nan"}, "finite"),
     ({"semiring": "boolean", "theta": float("nan")}, "finite"),
     ({"init": [float("nan")] * 10}, "nan")],
)
def test_explainer_refuses_a_bad_method_when_configured(options: dict, match: str) -> None:
    with pytest.raises(ProvgraphError, match=match):
        pg.Explainer(MODEL, **options)
