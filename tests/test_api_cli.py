"""The public API and the command line on the bundled MNIST classifier."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from models import dynamic_image_model
from PIL import Image

import provgraph as pg
from provgraph.api import annotate, explain, explain_batch, explain_many, load
from provgraph.apps.demo import bundled_model_path, bundled_samples
from provgraph.importers.reference import onnxruntime_outputs

MODEL = bundled_model_path()


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    return bundled_samples()


def _einsum_model():
    """A model with an op provgraph has no provenance semantics for."""
    from models import onnx_model
    from onnx import helper

    node = helper.make_node("Hardmax", ["x"], ["y"], name="mix")
    return onnx_model([node], [("x", ["N", 784])], ["y"], {}, opset=13)


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "provgraph", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def test_bundled_model_classifies_its_samples(digits) -> None:
    x, y = digits
    net = load(MODEL)
    assert net.input_shape == (784,) and net.num_classes == 10
    ort = onnxruntime_outputs(MODEL, x, [net.output_name])[net.output_name]
    assert np.array_equal(np.argmax(ort, axis=1), y)


def test_explain_defaults_to_predicted_class(digits) -> None:
    x, y = digits
    rel = explain(MODEL, x[4])
    assert rel.target == y[4]
    assert rel.input.shape == (784,)
    assert rel.info["backend"] == "scipy"


def test_one_graph_many_semirings(digits) -> None:
    x, y = digits
    graph = annotate(MODEL, x[7])
    results = explain_many(graph, None, ["real", "boolean", "counting", "viterbi", "tropical"])
    assert set(results) == {"real", "boolean", "counting", "viterbi", "tropical"}
    # the rule weights are computed once per (op, rule) and reused by real/boolean/counting
    lrp0_entries = [key for key in graph._weights if key[1] == pg.LRPZero()]
    assert len(lrp0_entries) == 3
    # Boolean says a path exists exactly where Counting counts at least one
    counts = results["counting"].input
    assert np.array_equal(results["boolean"].input, np.array([c > 0 for c in counts]))
    # Viterbi and tropical with −log agree on the best path: exp(−cost) = strength
    np.testing.assert_allclose(
        np.exp(-results["tropical"].input), results["viterbi"].input, rtol=1e-9, atol=1e-300
    )


def test_explain_batch_matches_single_calls(digits) -> None:
    x, _ = digits
    batch = explain_batch(MODEL, x[:3], semiring="real", rule="epsilon:0.01", dtype="float64")
    for i, rel in enumerate(batch):
        single = explain(MODEL, x[i], semiring="real", rule="epsilon:0.01")
        np.testing.assert_allclose(rel.input, single.input, rtol=1e-12)


def test_relevance_save_roundtrip(tmp_path: Path, digits) -> None:
    x, _ = digits
    rel = explain(MODEL, x[0], semiring="counting", theta="one")
    path = tmp_path / "rel.npz"
    rel.save(path)
    with np.load(path) as data:
        assert int(data["input"][0]) == 30_000
        assert data["semiring"] == "counting"
        assert set(data["targets"]) == {rel.target}


@pytest.mark.parametrize(
    ("make_input", "error", "fragment"),
    [
        (lambda x: x[:100], pg.InputError, "shape (100,)"),
        (lambda x: np.where(np.arange(784) == 5, np.nan, x), pg.InputError, "NaN"),
        (lambda x: np.where(np.arange(784) == 5, np.inf, x), pg.InputError, "infinite"),
    ],
)
def test_bad_inputs_raise_typed_errors(digits, make_input, error, fragment) -> None:
    x, _ = digits
    with pytest.raises(error, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        explain(MODEL, make_input(x[0]))


def test_class_out_of_range(digits) -> None:
    x, _ = digits
    with pytest.raises(pg.TargetError, match="class index 10 is out of range"):
        explain(MODEL, x[0], target=10)
    with pytest.raises(pg.TargetError):
        explain(MODEL, x[0], target=-1)


def test_cli_explain_writes_heatmap_and_npz(tmp_path: Path, digits) -> None:
    x, y = digits
    png = tmp_path / "digit.png"
    Image.fromarray((x[2].reshape(28, 28) * 255).round().astype(np.uint8)).save(png)
    out, npz = tmp_path / "map.png", tmp_path / "rel.npz"
    res = run_cli(
        "explain", str(MODEL), str(png), "--semiring", "boolean", "--out", str(out),
        "--save", str(npz), cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert f"explaining class {y[2]} in the boolean semiring" in res.stdout
    with Image.open(out) as img:
        assert img.size[0] > 100 and img.size[1] > 100
    with np.load(npz) as data:
        assert data["input"].dtype == np.bool_ and data["input"].any()


def test_cli_explain_npy_batch(tmp_path: Path, digits) -> None:
    x, _ = digits
    npy = tmp_path / "batch.npy"
    np.save(npy, x[:2])
    res = run_cli(
        "explain", str(MODEL), str(npy), "--rule", "gamma:0.25", "--init", "logit",
        "--save", str(tmp_path / "r.npz"), cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "r_0.npz").exists() and (tmp_path / "r_1.npz").exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["explain", "missing.onnx", "x.npy"], "missing.onnx"),
        (["explain", "MODEL", "nothere.npy"], "nothere.npy: input file not found"),
        (["explain", "MODEL", "wrong.npy"], "does not fit"),
        (["explain", "MODEL", "nan.npy"], "NaN"),
        (["explain", "MODEL", "ok.npy", "--target", "12"], "class index 12 is out of range"),
        (["explain", "MODEL", "ok.npy", "--semiring", "nope"], "unknown semiring 'nope'"),
        (["explain", "MODEL", "ok.npy", "--rule", "nope"], "unknown rule or composite"),
        (["explain", "MODEL", "ok.npy", "--semiring", "boolean", "--init", "logit"], "real"),
        (["inspect", "garbage.onnx"], "garbage.onnx"),
        (["explain", "truncated.onnx", "ok.npy"], "truncated.onnx"),
        (["explain", "unsupported.onnx", "ok.npy"], "Hardmax"),
        (["inspect", "unsupported.onnx"], "Hardmax"),
    ],
)
def test_cli_errors_are_one_line_with_exit_2(tmp_path: Path, args: list[str], fragment) -> None:
    np.save(tmp_path / "wrong.npy", np.zeros(10))
    np.save(tmp_path / "nan.npy", np.full(784, np.nan))
    np.save(tmp_path / "ok.npy", np.zeros(784))
    (tmp_path / "garbage.onnx").write_bytes(b"\x00\x01not a model at all")
    (tmp_path / "truncated.onnx").write_bytes(MODEL.read_bytes()[:400_000])
    (tmp_path / "unsupported.onnx").write_bytes(_einsum_model().SerializeToString())
    args = [str(MODEL) if a == "MODEL" else a for a in args]
    res = run_cli(*args, cwd=tmp_path)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("provgraph: error:")
    assert fragment in lines[0]


def test_cli_inspect_reports_sizes_and_fidelity(tmp_path: Path) -> None:
    res = run_cli("inspect", str(MODEL), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    text = res.stdout
    assert "Gemm" in text and "Relu" in text
    assert "266,200 weighted" in text  # 784·300 + 300·100 + 100·10
    assert "410 bias" in text  # 300 + 100 + 10
    assert "fidelity" in text.lower()




def test_cli_input_shape_for_dynamic_axes(tmp_path: Path) -> None:
    model = tmp_path / "dynamic.onnx"
    model.write_bytes(dynamic_image_model().SerializeToString())
    np.save(tmp_path / "x.npy", np.random.default_rng(2).random((1, 6, 5)))
    refused = run_cli("explain", str(model), "x.npy", cwd=tmp_path)
    assert refused.returncode == 2 and "--input-shape" in refused.stderr
    res = run_cli(
        "explain", str(model), "x.npy", "--input-shape", "1,6,5", "--save", "r.npz", cwd=tmp_path
    )
    assert res.returncode == 0, res.stderr
    with np.load(tmp_path / "r.npz") as data:
        assert data["input"].shape == (1, 6, 5)
    bad = run_cli("explain", str(model), "x.npy", "--input-shape", "1,six,5", cwd=tmp_path)
    assert bad.returncode == 2 and "not a shape" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
