"""Small torch classifiers and their ONNX export with either torch exporter.

Every builder returns a model in eval mode with an ``input_shape`` attribute (one sample, no batch
axis). BatchNorm layers get non-trivial running statistics and affine parameters first, so that
folding them is visible in the numbers.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn


def _settle(model: nn.Module, input_shape: tuple[int, ...], seed: int) -> nn.Module:
    """Give every BatchNorm non-trivial statistics and parameters; return the model in eval mode."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = 0.5
            with torch.no_grad():
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=gen))
                m.bias.copy_(0.3 * torch.randn(m.bias.shape, generator=gen))
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(1.5 * torch.randn((8,) + input_shape, generator=gen) + 0.2)
    model.eval()
    model.input_shape = input_shape
    return model


class MLP(nn.Module):
    """20-16-8-5 with ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 5)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class SmallCNN(nn.Module):
    """Conv-BN-ReLU-MaxPool, Flatten, Linear on 1×8×8."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2)
        )
        self.fc = nn.Linear(64, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.features(x), 1))


class ResidualCNN(nn.Module):
    """Stem, one residual block (Conv-BN-ReLU-Conv-BN + skip, ReLU), AvgPool, GlobalAvgPool,
    ``view(batch, -1)``, Linear on 3×8×8."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.block = nn.Sequential(
            nn.Conv2d(4, 4, 3, padding=1, bias=False),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.Conv2d(4, 4, 3, padding=1, bias=False),
            nn.BatchNorm2d(4),
        )
        self.pool = nn.AvgPool2d(2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        h = torch.relu(self.block(h) + h)
        h = self.gap(self.pool(h))
        return self.fc(h.view(h.size(0), -1))


class ConvVariants(nn.Module):
    """Grouped, dilated and strided/padded convolutions with LeakyReLU on 4×9×9."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(4, 6, 3, padding=1, groups=2),
            nn.ReLU(),
            nn.Conv2d(6, 6, 3, padding=2, dilation=2),
            nn.LeakyReLU(0.1),
            nn.Conv2d(6, 4, (3, 2), stride=2, padding=(1, 0)),
            nn.ReLU(),
        )
        self.fc = nn.Linear(4 * 5 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.features(x), 1))


class PoolNet(nn.Module):
    """Average pooling with padding, ``count_include_pad`` on and off, ``ceil_mode``; Tanh,
    Sigmoid; ceil-mode max pooling. On 2×9×9."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(2, 3, 3),
            nn.Tanh(),
            nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False, ceil_mode=True),
            nn.AvgPool2d(2, stride=1, padding=1, count_include_pad=True),
            nn.Sigmoid(),
            nn.MaxPool2d(2, ceil_mode=True),
        )
        self.fc = nn.Linear(3 * 3 * 3, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.features(x), 1))


class SoftmaxMLP(nn.Module):
    """16-10-4 MLP ending in a softmax, which the importer strips."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 10), nn.Sigmoid(), nn.Linear(10, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x), dim=1)


class AffineNet(nn.Module):
    """Input normalisation and BatchNorm where no linear op can absorb it (after the input and
    after max pooling), BatchNorm1d after a Linear, and ``logits * 0.5 + 0.1``. On 3×6×6."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.2, -0.1, 0.4]).reshape(3, 1, 1))
        self.register_buffer("std", torch.tensor([0.5, 2.0, 0.8]).reshape(3, 1, 1))
        self.bn_in = nn.BatchNorm2d(3)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(3)
        self.bn_pool = nn.BatchNorm2d(4)
        self.fc1 = nn.Linear(16, 6)
        self.bn_fc = nn.BatchNorm1d(6)
        self.fc2 = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn_in((x - self.mean) / self.std)
        h = self.bn_pool(self.pool(torch.relu(self.conv(h))))
        h = torch.relu(self.bn_fc(self.fc1(torch.flatten(h, 1))))
        return self.fc2(h) * 0.5 + 0.1


MODELS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "mlp": (MLP, (20,)),
    "small_cnn": (SmallCNN, (1, 8, 8)),
    "residual_cnn": (ResidualCNN, (3, 8, 8)),
    "conv_variants": (ConvVariants, (4, 9, 9)),
    "pool_net": (PoolNet, (2, 9, 9)),
    "softmax_mlp": (SoftmaxMLP, (16,)),
    "affine_net": (AffineNet, (3, 6, 6)),
}
WITH_BATCHNORM = ("small_cnn", "residual_cnn", "affine_net")


def build(name: str, seed: int = 0) -> nn.Module:
    """Model ``name`` of :data:`MODELS` with weights drawn from ``seed``, in eval mode."""
    builder, input_shape = MODELS[name]
    torch.manual_seed(seed)
    return _settle(builder(), input_shape, seed)


def export_onnx(
    model: nn.Module,
    path: str | Path,
    dynamo: bool = False,
    keep_batchnorm: bool = False,
    output_name: str = "logits",
    **kw,
) -> Path:
    """Export ``model`` (which has an ``input_shape``) with a dynamic batch axis named ``batch``.

    ``keep_batchnorm`` keeps BatchNormalization nodes: the TorchScript exporter
    (``dynamo=False``) folds them into the preceding Conv unless ``do_constant_folding=False``;
    the dynamo exporter folds them in its ONNX optimiser unless ``optimize=False``. Extra keyword
    arguments go to :func:`torch.onnx.export`.
    """
    path = Path(path)
    example = (torch.randn((2,) + tuple(model.input_shape)),)
    options: dict = {"input_names": ["input"], "output_names": [output_name], "dynamo": dynamo}
    if dynamo:
        options["dynamic_shapes"] = ({0: torch.export.Dim("batch")},)
        options["external_data"] = False
        options["optimize"] = not keep_batchnorm
    else:
        options["dynamic_axes"] = {"input": {0: "batch"}, output_name: {0: "batch"}}
        options["do_constant_folding"] = not keep_batchnorm
    options.update(kw)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(model, example, str(path), **options)
    return path


def onnx_model(
    nodes: list[onnx.NodeProto],
    inputs: list[tuple[str, list]],
    outputs: list[str],
    weights: dict[str, np.ndarray] | None = None,
    opset: int = 17,
    extra_opsets: dict[str, int] | None = None,
) -> onnx.ModelProto:
    """A small ONNX model from nodes: float inputs ``(name, dims)``, float outputs by name."""
    graph = helper.make_graph(
        nodes,
        "test_graph",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, dims) for n, dims in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in (weights or {}).items()],
    )
    opsets = [helper.make_opsetid("", opset)]
    opsets += [helper.make_opsetid(d, v) for d, v in (extra_opsets or {}).items()]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8 if opset < 19 else 10
    inferred = onnx.shape_inference.infer_shapes(model)
    del model.graph.output[:]
    model.graph.output.extend(inferred.graph.output)
    return model


# --- models in the shapes other exporters and architectures write ----------------------------


class VGGStyle(nn.Module):
    """Conv-BN-ReLU ×2, MaxPool, Conv-BN-ReLU, MaxPool, then Linear-ReLU-Dropout-Linear, on
    3×16×16 (every layer a module of an ``nn.Sequential``, as LRP libraries expect)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(16 * 4 * 4, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 5)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class SqueezeExcite(nn.Module):
    """``x · hardsigmoid(W₂ relu(W₁ mean(x)))``: a per-channel gate computed from ``x``."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.relu = nn.ReLU()
        self.expand = nn.Conv2d(reduced, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.relu(self.reduce(self.pool(x)))))


class InvertedResidual(nn.Module):
    """MobileNetV3 block: 1×1 expansion, depthwise 3×3 (both BN + HardSwish), squeeze-excitation,
    1×1 projection with BN, and the skip connection."""

    def __init__(self, channels: int, hidden: int, reduced: int) -> None:
        super().__init__()
        self.expand = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.Hardswish()
        )
        self.depthwise = nn.Sequential(
            nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.Hardswish(),
        )
        self.se = SqueezeExcite(hidden, reduced)
        self.project = nn.Sequential(
            nn.Conv2d(hidden, channels, 1, bias=False), nn.BatchNorm2d(channels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.project(self.se(self.depthwise(self.expand(x))))


class MobileNetStyle(nn.Module):
    """Strided Conv-BN-HardSwish stem, one inverted residual block with squeeze-excitation, a
    1×1 Conv-BN-HardSwish head, global average pooling and a Linear, on 3×16×16."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.Hardswish()
        )
        self.block = InvertedResidual(8, 16, 4)
        self.head = nn.Sequential(
            nn.Conv2d(8, 24, 1, bias=False), nn.BatchNorm2d(24), nn.Hardswish()
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(24, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(self.block(self.stem(x)))
        return self.fc(torch.flatten(self.pool(h), 1))


class ChannelsLastNet(nn.Module):
    """A channels-last input (8×8×3, the Keras layout) permuted to channels-first, Conv-PReLU,
    the channels split unevenly (SiLU on one part, ELU on the other) and joined in the other
    order, reflect padding then a crop, Conv, global max pooling, Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.prelu = nn.PReLU(6, init=0.1)
        self.conv2 = nn.Conv2d(6, 4, 3)
        self.fc = nn.Linear(4, 5)
        with torch.no_grad():
            self.prelu.weight.copy_(torch.linspace(-0.3, 0.4, 6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.prelu(self.conv(x.permute(0, 3, 1, 2)))
        a, b = torch.split(h, [2, 4], dim=1)
        h = torch.cat([nn.functional.elu(b), nn.functional.silu(a)], dim=1)
        h = nn.functional.pad(h, (1, 1, 2, 0), mode="reflect")[:, :, 1:-1, 1:]
        return self.fc(torch.flatten(nn.functional.adaptive_max_pool2d(self.conv2(h), 1), 1))


class ActivationsNet(nn.Module):
    """Linear layers through GELU, SELU, Hardtanh (Clip) and SiLU (x·sigmoid(x)); a 4×4 view
    summed over one axis (ReduceSum) and averaged over the other (ReduceMean), concatenated,
    LeakyReLU, Linear; on 12 features."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(12, 16), nn.Linear(16, 16), nn.Linear(16, 16)
        self.out = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = nn.functional
        h = f.selu(self.fc2(f.gelu(self.fc1(x))))
        h = f.silu(f.hardtanh(self.fc3(h), -1.5, 2.0))
        g = h.view(-1, 4, 4)
        h = torch.cat([g.sum(dim=2), g.mean(dim=1)], dim=1)
        return self.out(f.leaky_relu(h, 0.2))


MODELS.update(
    {
        "vgg_style": (VGGStyle, (3, 16, 16)),
        "mobilenet_style": (MobileNetStyle, (3, 16, 16)),
        "channels_last": (ChannelsLastNet, (8, 8, 3)),
        "activations_net": (ActivationsNet, (12,)),
    }
)
WITH_BATCHNORM = WITH_BATCHNORM + ("vgg_style", "mobilenet_style")


# --- VGG-16 ------------------------------------------------------------------------------------

VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


class Features(nn.Module):
    """``classifier(flatten(features(x)))``, the layout LRP libraries expect."""

    def __init__(self, features: nn.Sequential, classifier: nn.Sequential) -> None:
        super().__init__()
        self.features, self.classifier = features, classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


def vgg16(width: int = 1, classes: int = 1000, side: int = 224) -> Features:
    """The VGG-16 layer structure (configuration D: 13 convolutions, 5 max poolings, 3 dense
    layers, no adaptive pooling) with every width divided by ``width``, for ``side``×``side``
    RGB inputs; ``model.input_shape`` is set."""
    layers: list[nn.Module] = []
    channels = 3
    for v in VGG16:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(channels, int(v) // width, 3, padding=1), nn.ReLU()]
            channels = int(v) // width
    flat = channels * (side // 32) ** 2
    hidden = 4096 // width
    classifier = nn.Sequential(
        nn.Linear(flat, hidden), nn.ReLU(), nn.Dropout(), nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Dropout(), nn.Linear(hidden, classes),
    )
    model = Features(nn.Sequential(*layers), classifier).eval()
    model.input_shape = (3, side, side)
    return model


def dynamic_image_model() -> onnx.ModelProto:
    """Conv(1→4, 3×3, pad 1) → ReLU → GlobalAveragePool → Flatten → Gemm(4→3) over a
    (N, 1, H, W) input of any size."""
    rng = np.random.default_rng(1)
    w = {
        "k": rng.normal(size=(4, 1, 3, 3)).astype(np.float32),
        "W": rng.normal(size=(4, 3)).astype(np.float32),
        "b": rng.normal(size=3).astype(np.float32),
    }
    nodes = [
        helper.make_node("Conv", ["x", "k"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "W", "b"], ["y"], name="fc"),
    ]
    return onnx_model(nodes, [("x", ["N", 1, "H", "W"])], ["y"], w, opset=13)
