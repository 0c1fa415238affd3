"""The torch backend's real semiring against independent LRP implementations (Captum, Zennit).

Networks: the VGG-style CNN with BatchNorm (ONNX exported with BatchNorm kept and folded), a VGG
variant whose BatchNorm after a max pooling cannot be folded (an affine op of its own), the small
residual CNN, and the VGG-16 layer structure at width/8 on 32×32 inputs, all with random weights.
The oracles run in float64 on torch models with the same weights (BatchNorm fused into the
convolution before it where the importer folds it); agreement within 1e-4 relative.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from models import Features, build, export_onnx, vgg16
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from torch_checks import one_thread_per_worker  # noqa: F401 (autouse fixture)
from zennit_import import import_zennit

from provgraph import importers
from provgraph.algebra.composites import Composite, Entry
from provgraph.algebra.rules import LRPZB, LRPEpsilon, LRPGamma
from provgraph.backends import TorchBackend
from provgraph.engine.batch import BatchGraph


def vgg_with_affine() -> Features:
    """Conv-BN-ReLU, MaxPool, a BatchNorm no convolution precedes, Conv-BN-ReLU, MaxPool, Linear."""
    features = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
        nn.BatchNorm2d(6), nn.Conv2d(6, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.MaxPool2d(2),
    )
    classifier = nn.Sequential(nn.Linear(8 * 3 * 3, 12), nn.ReLU(), nn.Linear(12, 4))
    model = Features(features, classifier)
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for m in features:
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.copy_(0.3 * torch.randn(m.num_features, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=gen))
                m.weight.copy_(0.5 + torch.rand(m.num_features, generator=gen))
                m.bias.copy_(0.3 * torch.randn(m.num_features, generator=gen))
    model.eval()
    model.input_shape = (3, 12, 12)
    return model


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A float64 copy with every Conv→BatchNorm pair of a Sequential fused into one Conv."""
    model = copy.deepcopy(model).double().eval()
    for name, child in list(model.named_children()):
        if isinstance(child, nn.Sequential):
            fused: list[nn.Module] = []
            for layer in child:
                if isinstance(layer, nn.BatchNorm2d) and fused and isinstance(fused[-1], nn.Conv2d):
                    fused[-1] = fuse_conv_bn_eval(fused[-1], layer)
                else:
                    fused.append(layer)
            setattr(model, name, nn.Sequential(*fused))
    return model


def provgraph_input_relevance(
    model: nn.Module, path: Path, x: np.ndarray, target: int, rule, init: str, **export
) -> np.ndarray:
    net = importers.load_onnx(export_onnx(model, path, **export))
    graph = BatchGraph.from_inputs(net, x[None])
    rel = graph.aggregate("real", backend=TorchBackend(), rule=rule, target=target, init=init)
    return rel.input[0]


def captum_lrp(model: nn.Module, x: np.ndarray, target: int, gamma_on_conv: float = 0.0):
    from captum.attr import LRP
    from captum.attr._utils.lrp_rules import GammaRule

    model = copy.deepcopy(model).double().eval()
    if gamma_on_conv:
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                m.rule = GammaRule(gamma=gamma_on_conv)
    inputs = torch.as_tensor(x[None], dtype=torch.float64).requires_grad_()
    return LRP(model).attribute(inputs, target=target).detach()[0].numpy()


def assert_close(ours: np.ndarray, oracle: np.ndarray) -> None:
    scale = float(np.max(np.abs(oracle)))
    assert scale > 0
    assert float(np.max(np.abs(ours - oracle))) <= 1e-4 * scale


@pytest.mark.parametrize("keep_batchnorm", [True, False])
def test_vgg_style_with_batchnorm_equals_captum(tmp_path: Path, keep_batchnorm: bool) -> None:
    model = build("vgg_style", seed=11)
    x = np.random.default_rng(0).uniform(0.0, 1.0, size=model.input_shape)
    oracle_model = fold_batchnorm(model)
    for target in (0, 3):
        ours = provgraph_input_relevance(
            model, tmp_path / "vgg_style.onnx", x, target, "epsilon:1e-9", "logit",
            keep_batchnorm=keep_batchnorm,
        )
        assert_close(ours, captum_lrp(oracle_model, x, target))
    gamma = Composite(
        LRPEpsilon(1e-9), [Entry("Conv", LRPGamma(0.25, epsilon=1e-9, modify_bias=False))]
    )
    ours = provgraph_input_relevance(
        model, tmp_path / "vgg_style.onnx", x, 2, gamma, "logit", keep_batchnorm=keep_batchnorm
    )
    assert_close(ours, captum_lrp(oracle_model, x, 2, gamma_on_conv=0.25))


def test_unfoldable_batchnorm_is_an_affine_layer_like_captums(tmp_path: Path) -> None:
    model = vgg_with_affine()
    net = importers.load_onnx(export_onnx(model, tmp_path / "affine.onnx", keep_batchnorm=True))
    assert "Affine" in {type(op).__name__ for op in net.ops}
    x = np.random.default_rng(1).normal(size=model.input_shape)
    ours = provgraph_input_relevance(
        model, tmp_path / "affine.onnx", x, 1, "epsilon:1e-9", "logit", keep_batchnorm=True
    )
    assert_close(ours, captum_lrp(fold_batchnorm(model), x, 1))


class ResidualTwin(nn.Module):
    """The residual CNN with its BatchNorms fused and the skip addition as a Zennit ``Sum``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        zennit = import_zennit()
        model = copy.deepcopy(model).double().eval()
        self.stem = fuse_conv_bn_eval(model.stem[0], model.stem[1])
        self.conv1 = fuse_conv_bn_eval(model.block[0], model.block[1])
        self.conv2 = fuse_conv_bn_eval(model.block[3], model.block[4])
        self.relu0, self.relu1, self.relu2 = nn.ReLU(), nn.ReLU(), nn.ReLU()
        self.add = zennit.layer.Sum()
        self.pool, self.gap, self.fc = model.pool, model.gap, model.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu0(self.stem(x))
        branch = self.conv2(self.relu1(self.conv1(h)))
        h = self.relu2(self.add(torch.stack([branch, h], dim=-1)))
        return self.fc(torch.flatten(self.gap(self.pool(h)), 1))


def zennit_epsilon(model: nn.Module, x: np.ndarray, target: int, epsilon: float, first=None):
    """Zennit's LRP-ε (its ``Norm`` rule on sums and average pools), logit-initialised."""
    zennit = import_zennit()
    from zennit.composites import LayerMapComposite, SpecialFirstLayerMapComposite
    from zennit.rules import Epsilon, Norm, Pass
    from zennit.types import Activation, AvgPool, Convolution

    layer_map = [
        (Activation, Pass()),
        (zennit.layer.Sum, Norm(stabilizer=epsilon)),
        (AvgPool, Norm(stabilizer=epsilon)),
        (Convolution, Epsilon(epsilon=epsilon)),
        (nn.Linear, Epsilon(epsilon=epsilon)),
    ]
    if first is None:
        composite = LayerMapComposite(layer_map=layer_map)
    else:
        composite = SpecialFirstLayerMapComposite(layer_map=layer_map, first_map=first)
    inputs = torch.as_tensor(x[None], dtype=torch.float64).requires_grad_()
    with zennit.attribution.Gradient(model, composite) as attributor:
        one_hot = torch.eye(model(inputs).shape[1], dtype=torch.float64)[[target]]
        _, relevance = attributor(inputs, lambda out: one_hot * out)
    return relevance.detach()[0].numpy()


def test_residual_cnn_equals_zennit(tmp_path: Path) -> None:
    model = build("residual_cnn", seed=7)
    twin = ResidualTwin(model).eval()
    x = np.random.default_rng(2).uniform(0.0, 1.0, size=model.input_shape)
    with torch.no_grad():
        same = twin(torch.as_tensor(x[None])).numpy()
    net = importers.load_onnx(export_onnx(model, tmp_path / "residual.onnx"))
    assert "Add" in {type(op).__name__ for op in net.ops}
    for target in (0, 4):
        ours = provgraph_input_relevance(
            model, tmp_path / "residual.onnx", x, target, "epsilon:1e-6", "logit"
        )
        assert_close(ours, zennit_epsilon(twin, x, target, 1e-6))
    assert same.shape == (1, 5)


def test_vgg16_structure_equals_captum_and_zennit(tmp_path: Path) -> None:
    torch.manual_seed(16)
    model = vgg16(width=8, classes=10, side=32)
    x = np.random.default_rng(3).uniform(0.0, 1.0, size=model.input_shape)
    path = tmp_path / "vgg16.onnx"
    net = importers.load_onnx(export_onnx(model, path))
    assert sum(type(op).__name__ == "Conv" for op in net.ops) == 13
    graph = BatchGraph.from_inputs(net, x[None])
    oracle_model = copy.deepcopy(model).double()

    def ours(rule, target: int) -> np.ndarray:
        rel = graph.aggregate("real", backend="torch", rule=rule, target=target, init="logit")
        return rel.input[0]

    assert_close(ours("epsilon:1e-9", 5), captum_lrp(oracle_model, x, 5))
    gamma = Composite(
        LRPEpsilon(1e-9), [Entry("Conv", LRPGamma(0.25, epsilon=1e-9, modify_bias=False))]
    )
    assert_close(ours(gamma, 5), captum_lrp(oracle_model, x, 5, gamma_on_conv=0.25))

    import_zennit()
    from zennit.rules import ZBox
    from zennit.types import Convolution

    box = Composite(LRPEpsilon(1e-6), [Entry(0, LRPZB(0.0, 1.0))])
    first = [(Convolution, ZBox(low=0.0, high=1.0, stabilizer=1e-6))]
    assert_close(ours(box, 7), zennit_epsilon(oracle_model.eval(), x, 7, 1e-6, first=first))
