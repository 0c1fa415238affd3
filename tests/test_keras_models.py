"""Keras classifiers with random weights exported by tf2onnx (NHWC inputs, tf2onnx's transposes,
``SAME`` padding, written-out LayerNorm, MultiHeadAttention's Einsum products).

Oracles: onnxruntime (forward, ≤ 1e-4 relative) and Keras's own output on the same input; every
built-in semiring on the scipy reference and every CPU backend, with finite results that agree.
The models are exported once per session in a child process (:mod:`keras_models`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from backend_lists import check_every_semiring_on_every_backend
from keras_models import BUILDERS, REFUSED, export_in_child

from provgraph.algebra.semirings import BUILTIN_SEMIRINGS
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.errors import UnsupportedOpError
from provgraph.importers import load_onnx
from provgraph.importers.reference import onnxruntime_outputs
from provgraph.model.trace import forward_trace

MODELS = list(BUILDERS)
#: explained in every semiring on the scipy reference only (its every-backend check takes ~40 s)
REFERENCE_ONLY = {"keras_efficientnet_b0"}


@pytest.fixture(scope="session")
def keras_onnx(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return export_in_child(MODELS + list(REFUSED), tmp_path_factory.mktemp("keras"))


def _sample(path: Path) -> tuple[np.ndarray, np.ndarray]:
    saved = np.load(path.with_suffix(".npz"))
    return saved["x"], saved["keras"]


@pytest.mark.parametrize("name", MODELS)
def test_forward_equals_onnxruntime_and_keras(keras_onnx, name: str) -> None:
    path = keras_onnx[name]
    net = load_onnx(path)
    x, keras_logits = _sample(path)
    batch = np.concatenate([x, np.random.default_rng(0).normal(size=x.shape)]).astype(np.float32)
    ours = forward_trace(net, batch).logits
    ref = onnxruntime_outputs(path.read_bytes(), batch, [net.output_name])[net.output_name]
    scale = np.abs(ref).max()
    assert scale > 1e-3  # the random weights give logits of order one, not vanishing ones
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * scale)
    np.testing.assert_allclose(ours[:1], keras_logits, rtol=1e-4, atol=1e-4 * scale)


@pytest.mark.parametrize("name", MODELS)
def test_every_semiring_on_every_backend(keras_onnx, name: str) -> None:
    path = keras_onnx[name]
    net = load_onnx(path)
    x, _ = _sample(path)
    graph = AnnotatedGraph(net, forward_trace(net, x))
    if name in REFERENCE_ONLY:
        for semiring in BUILTIN_SEMIRINGS:
            relevance = graph.aggregate(semiring, target=[0, 3], backend="scipy")
            values = np.asarray(relevance.tensors[net.input_name], dtype=np.float64)
            assert values.shape == (x.size, 2) and not np.isnan(values).any(), semiring
            assert semiring != "real" or (np.isfinite(values).all() and values.any())
        return
    check_every_semiring_on_every_backend(graph, [0, 3], rtol=1e-7, atol=1e-10,
                                          atol_of_largest=True)




def test_written_out_layer_norm_is_one_normalisation(keras_onnx) -> None:
    """Keras's LayerNormalization (``tf.nn.moments`` written out by tf2onnx, 13 nodes) imports
    as one Normalization per layer, and the attention products as MatProducts."""
    net = load_onnx(keras_onnx["keras_transformer_block"])
    sources = [op.source for op in net.ops]
    assert sources.count("LayerNormalization") == 2
    assert "Neg" not in sources and "Reciprocal" not in sources
    assert sum(type(op).__name__ == "MatProduct" for op in net.ops) == 2


@pytest.mark.parametrize("name", list(REFUSED))
def test_refused_exports_say_why_in_one_line(keras_onnx, name: str) -> None:
    with pytest.raises(UnsupportedOpError) as info:
        load_onnx(keras_onnx[name])
    message = str(info.value)
    assert REFUSED[name][1] in message and "Softmax node" in message and "\n" not in message
