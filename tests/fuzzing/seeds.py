"""The valid models every fuzz case starts from: real exports of small classifiers."""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np
import onnx


@dataclass(frozen=True)
class Seed:
    """A valid model and one sample shape it takes."""

    name: str
    model: onnx.ModelProto
    sample_shape: tuple[int, ...]
    num_classes: int

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        return rng.random(self.sample_shape).astype(np.float32)


#: torch models of tests/models.py exported with the TorchScript exporter; BatchNorm kept in one
TORCH_SEEDS = (("mlp", False), ("small_cnn", True), ("residual_cnn", False), ("pool_net", False))


@functools.cache
def seeds() -> tuple[Seed, ...]:
    """The seed models: four torch exports and one skl2onnx classifier (built once)."""
    import tempfile
    from pathlib import Path

    from models import MODELS, build, export_onnx

    found = []
    with tempfile.TemporaryDirectory() as folder:
        for name, keep_batchnorm in TORCH_SEEDS:
            path = export_onnx(build(name), Path(folder) / f"{name}.onnx", False, keep_batchnorm)
            model = onnx.load(str(path))
            shape = MODELS[name][1]
            classes = model.graph.output[0].type.tensor_type.shape.dim[-1].dim_value
            found.append(Seed(name, model, shape, int(classes)))
    found.append(_sklearn_seed())
    return tuple(found)


def _sklearn_seed() -> Seed:
    from skl2onnx import to_onnx
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    digits = load_digits()
    x = (digits.data[:300] / 16.0).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier(hidden_layer_sizes=(12,), max_iter=60, random_state=0).fit(
            x, digits.target[:300]
        )
    model = to_onnx(clf, x[:1], target_opset=15)
    return Seed("skl2onnx_mlp", model, (64,), 10)
