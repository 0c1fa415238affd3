"""``provgraph explain --layers``: one map per linear layer, channels summed, equal to the kept
relevance of the layer's input tensor."""

from __future__ import annotations

import numpy as np
import pytest

import provgraph as pg
from provgraph.apps.demo import bundled_cnn_path, bundled_model_path
from provgraph.cli.main import main

DIGIT = "provgraph/data/digits/digit_3.png"


@pytest.mark.parametrize("semiring", ["counting", "real", "boolean"])
def test_layer_maps_of_the_cnn_sum_the_kept_relevance_over_channels(semiring, tmp_path, capsys):
    folder = tmp_path / "layers"
    assert main(["-q", "explain", str(bundled_cnn_path()), DIGIT, "--semiring", semiring,
                 "--target", "3", "--layers", str(folder)]) == 0
    net = pg.load(bundled_cnn_path())
    x = np.asarray(pg.io.inputs.read_input(DIGIT, net), dtype=np.float64)
    rel = pg.explain(net, x.reshape(net.input_shape), target=3, semiring=semiring,
                     backend="scipy")
    pngs = sorted(folder.glob("layer*.png"))
    assert [p.name for p in pngs] == ["layer00_0_Conv.png", "layer01_3_Conv.png",
                                      "layer02_7_Gemm.png"]
    with np.load(folder / "layers.npz") as maps:
        assert f'"semiring": "{semiring}"' in str(maps["info"])
        for i, op in enumerate(net.linear_ops):
            assert str(maps[f"layer{i:02d}_tensor"]) == op.inputs[0]
            kept = rel.layer(op.inputs[0])
            got = maps[f"layer{i:02d}"]
            if kept.ndim == 3:  # (C, H, W): one map, the channels ⊕-summed
                expected = kept.astype(np.int64).sum(axis=0) if semiring == "counting" else \
                    kept.any(axis=0) if semiring == "boolean" else kept.sum(axis=0)
            else:
                expected = kept.reshape(1, -1).astype(got.dtype)
            assert got.shape == expected.shape
            if semiring == "real":
                np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
                assert got.sum() == pytest.approx(float(kept.sum()), rel=1e-9, abs=1e-12)
            else:
                assert np.array_equal(got, expected)
    assert "3 layer maps" in capsys.readouterr().out


def test_layer_maps_of_the_mlp_and_a_bad_folder(tmp_path, capsys):
    folder = tmp_path / "mlp"
    assert main(["-q", "explain", str(bundled_model_path()), DIGIT, "--layers",
                 str(folder)]) == 0
    with np.load(folder / "layers.npz") as maps:
        assert [maps[f"layer{i:02d}"].shape for i in range(3)] == [(28, 28), (1, 300), (1, 100)]
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    capsys.readouterr()
    assert main(["-q", "explain", str(bundled_model_path()), DIGIT, "--layers",
                 str(blocker / "sub")]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot write" in err and len(err.splitlines()) == 1
