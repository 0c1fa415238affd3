"""The bundled CNN: its recorded test accuracy, re-measured with onnxruntime."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort

from provgraph.apps.demo import bundled_cnn_path
from provgraph.apps.sources import bundled_mnist


def test_recorded_accuracy_equals_onnxruntime_on_the_bundled_test_digits():
    data = bundled_mnist("test")
    x = data.read().reshape(-1, 1, 28, 28).astype(np.float32)
    session = ort.InferenceSession(str(bundled_cnn_path()), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"input": x})[0]
    accuracy = float((logits.argmax(axis=1) == data.targets()).mean())
    recorded = json.loads(bundled_cnn_path().with_suffix(".json").read_text())
    assert len(x) == recorded["test_size"] == 1000
    assert accuracy == recorded["test_accuracy"]
    assert accuracy > 0.9
