"""Every model source a user holds: ONNX path, bytes, ModelProto, and a torch module.

Oracles: the relevance of the exported ONNX file (itself held to Captum, Zennit and brute force
elsewhere), the torch module's own logits, and Captum's LRP on the module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from captum.attr import LRP
from models import build, export_onnx
from torch import nn

from provgraph.api import explain, load
from provgraph.engine.explainer import Explainer
from provgraph.errors import ModelLoadError, ProvgraphError


@pytest.fixture(scope="module")
def cnn(tmp_path_factory: pytest.TempPathFactory) -> tuple[nn.Module, Path, np.ndarray]:
    """The BatchNorm CNN, its ONNX file, and three inputs."""
    model = build("small_cnn", seed=4)
    path = export_onnx(model, tmp_path_factory.mktemp("sources") / "cnn.onnx")
    x = np.random.default_rng(5).uniform(0, 1, (3,) + model.input_shape).astype(np.float32)
    return model, path, x


@pytest.mark.parametrize("semiring", ["real", "counting", "viterbi"])
@pytest.mark.parametrize("backend", ["scipy", "torch"])
def test_bytes_proto_and_module_give_the_relevance_of_the_file(cnn, semiring, backend) -> None:
    model, path, x = cnn
    sources = {
        "bytes": path.read_bytes(),
        "bytearray": bytearray(path.read_bytes()),
        "proto": onnx.load(str(path)),
        "module": model,
    }
    options = {"backend": backend, "dtype": "float64"} if backend == "torch" else {}
    reference = explain(path, x[0], target=2, semiring=semiring, **options)
    for name, source in sources.items():
        example = {"example_input": torch.as_tensor(x)} if name == "module" else {}
        rel = explain(source, x[0], target=2, semiring=semiring, **options, **example)
        assert set(rel.tensors) == set(reference.tensors), name
        for tensor, values in reference.tensors.items():
            got = np.asarray(rel.tensors[tensor], dtype=np.float64)
            want = np.asarray(values, dtype=np.float64)
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, err_msg=name)


def test_module_network_computes_the_module_logits(cnn) -> None:
    model, _, x = cnn
    net = load(model, example_input=torch.as_tensor(x))
    rel = Explainer(net, backend="scipy").explain_batch(x)
    with torch.no_grad():
        expected = model(torch.as_tensor(x)).numpy()
    np.testing.assert_allclose(rel.logits, expected, rtol=1e-4, atol=1e-5)
    assert net.name == type(model).__name__
    # exported with a dynamic batch axis: an example of one sample serves batches of any size
    one = Explainer(model, backend="torch", example_input=torch.as_tensor(x[:1]))
    np.testing.assert_allclose(one.explain_batch(x).logits, expected, rtol=1e-4, atol=1e-5)


def test_module_explanation_equals_captum_on_the_module() -> None:
    """LRP-ε through the internal export equals Captum's LRP on the module itself (float64)."""
    model = build("mlp", seed=6)
    x = torch.as_tensor(np.random.default_rng(7).normal(size=(4, 20)))
    explainer = Explainer(model, "real", rule="epsilon:1e-9", init="logit", backend="torch",
                          dtype="float64", example_input=x.float())
    batch = explainer(x.numpy(), target=[0, 1, 2, 3])
    lrp = LRP(model.double())
    reference = lrp.attribute(x.clone().requires_grad_(), target=[0, 1, 2, 3]).detach().numpy()
    scale = float(np.abs(reference).max())
    np.testing.assert_allclose(batch.input, reference, rtol=1e-7, atol=1e-9 * scale)


class Counter(nn.Module):
    """Adds how often it has been called: the TorchScript trace freezes that number."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.linear(x) + float(self.calls)


class Unexportable(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.linear(x)
        return y + torch.histc(y, bins=3)


class TwoOutputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.linear(x), x


@pytest.mark.parametrize(
    ("module", "example", "fragment"),
    [
        (Counter(), torch.randn(2, 4), "differs by up to"),
        (Unexportable(), torch.randn(2, 4), "export failed"),
        (TwoOutputs(), torch.randn(2, 4), "returns a tuple"),
        (nn.Linear(4, 3), None, "needs example_input"),
        (nn.Linear(4, 3), torch.randn(4), "no batch axis"),
        (nn.Linear(4, 3), torch.randn(2, 5), "fails on example_input"),
    ],
)
def test_module_problems_are_one_line_errors(module, example, fragment) -> None:
    with pytest.raises(ModelLoadError, match=fragment) as info:
        load(module, example_input=example)
    assert "\n" not in str(info.value)


def test_module_export_leaves_training_mode_alone() -> None:
    model = build("mlp", seed=1).train()
    load(model, example_input=torch.randn(2, 20))
    assert model.training


@pytest.mark.parametrize("source", [{"a": 1}, 3.5, [1, 2]])
def test_unknown_sources_are_refused(source) -> None:
    with pytest.raises(ProvgraphError, match="cannot load a model from"):
        Explainer(source)
