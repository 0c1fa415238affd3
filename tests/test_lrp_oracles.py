"""The real semiring equals Captum's and Zennit's LRP under the same rules.

provgraph's relevance of the input (``init="logit"`` for Captum, ``"one"`` or ``"logit"`` for
Zennit) is compared with each library's attribution on the same float64 torch model, for a batch
of inputs with one target each, within ``TOLERANCE`` relative to the largest attribution.

What the oracles compute (Captum 0.9, Zennit 0.5), and how provgraph is configured to match:

* Captum seeds the target output with 1 and multiplies the result by the target's logit, which
  is classic LRP: provgraph's ``init="logit"``. Zennit seeds with the given output gradient: a
  one-hot vector is ``init="one"``, the one-hot vector times the logits ``init="logit"``.
* Both stabilise a denominator ``z`` as ``z + ε·sign(z)`` with ``sign(0) = +1``, like
  :class:`~provgraph.algebra.rules.LRPEpsilon`; Captum's default ε is 1e-9 (its
  ``STABILITY_FACTOR``,
  also used by its γ rule), Zennit's 1e-6. Both include the bias in ``z``.
* Captum's γ rule adds ``γ w⁺`` to ``weight`` only: ``LRPGamma(modify_bias=False)``. It runs a
  second forward pass with the modified weights, but restores every ruled layer's input to the
  first pass's activation, so γ on inner layers is the textbook rule too. Zennit's γ is the
  generalised rule: for positive ``z_k`` it equals ``LRPGamma(modify_bias=True)`` when the
  layer's inputs are non-negative, for negative ``z_k`` it amplifies the negative part instead.
  Zennit cases with γ therefore use inputs in [0, 1], γ only on layers followed by ReLU, and, for
  γ on the logits, targets whose logit is positive.
* Max pooling: Zennit uses the plain gradient (winner takes all, as provgraph). Captum applies
  its ε rule, ``R_j = R_k a_j / (a_j + ε)`` for the winner, which differs from winner-takes-all
  by a relative ``ε / a_j``; its default ε = 1e-9 is kept on pooling layers.
* BatchNorm: Captum applies ε to the BN as an affine map with a bias; its identity rule passes
  relevance through unchanged, which is :class:`~provgraph.algebra.rules.Flat` on provgraph's
  :class:`~provgraph.model.ops.Affine` op (one edge per output). Zennit does the same with
  ``Epsilon``
  and ``Pass``, or merges BN into the preceding convolution with a canonizer. The ONNX importer
  folds a BN into the preceding Conv, so through ONNX the oracle is the BN-fused model; a BN
  kept as an affine op is compared on a network built from the torch modules. (Captum's γ on a
  BN modifies the BN weight, which also changes the BN's effective shift ``β − μ·scale``: that
  matches neither ``modify_bias`` choice and is not compared.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from captum.attr import LRP
from captum.attr._utils.lrp_rules import EpsilonRule, GammaRule, IdentityRule, PropagationRule
from lrp_reference import fuse_batchnorm
from models import build, export_onnx
from torch import nn
from zennit_import import import_zennit

from provgraph.algebra.composites import Composite, Entry
from provgraph.algebra.rules import Flat, LRPEpsilon, LRPGamma, LRPZero, Rule
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.importers import load_onnx
from provgraph.model.network import Network
from provgraph.model.ops import Activation, Affine, Conv, Dense, Flatten, MaxPool, Op
from provgraph.model.trace import forward_trace

import_zennit()
from zennit.attribution import Gradient  # noqa: E402
from zennit.canonizers import SequentialMergeBatchNorm  # noqa: E402
from zennit.core import Composite as ZennitComposite  # noqa: E402
from zennit.rules import Epsilon, Gamma, Pass  # noqa: E402

TOLERANCE = 1e-4
EPSILON = 0.01
GAMMA = 0.25
TINY = 1e-12  # LRP-0 up to a stabiliser far below the activations
CAPTUM_STABILIZER = 1e-9
ZENNIT_STABILIZER = 1e-6
BATCH = 4

RuleFactory = Callable[[], object]


def relative_difference(ours: np.ndarray, reference: np.ndarray) -> float:
    """Max absolute difference over the max absolute value of the reference."""
    return float(np.abs(ours - reference).max() / np.abs(reference).max())


def leaves(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if not list(m.children())]


# --- provgraph side -------------------------------------------------------------------------


def provgraph_lrp(
    net: Network, x: torch.Tensor, targets: list[int], composite: Composite, init: str
) -> np.ndarray:
    """Input relevance of every sample of ``x``, one annotated graph per sample."""
    out = []
    for sample, target in zip(x.numpy(), targets):
        graph = AnnotatedGraph(net, forward_trace(net, sample))
        rel = graph.aggregate("real", rule=composite, init=init, target=target)
        out.append(rel.input)
    return np.stack(out)


def _numpy(p: torch.Tensor) -> np.ndarray:
    return p.detach().double().numpy()


def op_from_module(m: nn.Module, name: str, x: str, y: str) -> Op:
    """The provgraph op computing torch module ``m`` from tensor ``x`` into ``y``."""
    if isinstance(m, nn.Linear):
        return Dense(name, (x,), y, weight=_numpy(m.weight).T.copy(), bias=_numpy(m.bias))
    if isinstance(m, nn.Conv2d):
        return Conv(
            name,
            (x,),
            y,
            weight=_numpy(m.weight),
            bias=_numpy(m.bias),
            strides=m.stride,
            pads=tuple(m.padding) * 2,
            dilations=m.dilation,
            groups=m.groups,
        )
    if isinstance(m, nn.BatchNorm2d):
        scale = _numpy(m.weight) / np.sqrt(_numpy(m.running_var) + m.eps)
        shift = _numpy(m.bias) - _numpy(m.running_mean) * scale
        return Affine(name, (x,), y, scale=scale.reshape(-1, 1, 1), shift=shift.reshape(-1, 1, 1))
    if isinstance(m, nn.ReLU):
        return Activation(name, (x,), y, function="relu")
    if isinstance(m, nn.MaxPool2d):
        return MaxPool(name, (x,), y, kernel=(m.kernel_size,) * 2, strides=(m.stride,) * 2)
    raise TypeError(f"no direct construction for {type(m).__name__}")


def network_from_modules(model: nn.Module) -> Network:
    """A provgraph network built op by op from a chain of torch modules, BatchNorm kept as an
    affine op (a Flatten goes before the first Linear of an image model)."""
    ops: list[Op] = []
    flat = len(model.input_shape) == 1
    for i, m in enumerate(leaves(model)):
        if isinstance(m, nn.Linear) and not flat:
            ops.append(Flatten("flatten", (f"t{len(ops) - 1}",), f"t{len(ops)}"))
            flat = True
        source = f"t{len(ops) - 1}" if ops else "input"
        ops.append(op_from_module(m, f"{type(m).__name__}_{i}", source, f"t{len(ops)}"))
    return Network(
        ops, "input", ops[-1].output, tuple(model.input_shape), name=type(model).__name__
    )


# --- torch models ---------------------------------------------------------------------------




@dataclass
class Models:
    """One architecture: the float64 torch model, its BN-fused copy, and provgraph networks."""

    torch: nn.Module
    fused: nn.Module
    onnx: Network
    onnx_dynamo: Network
    direct: Network


def make_models(name: str, folder: Path) -> Models:
    model = build(name, seed=1)
    nets = [
        load_onnx(
            export_onnx(model, folder / f"{name}_{dynamo}.onnx", dynamo=dynamo, keep_batchnorm=True)
        )
        for dynamo in (False, True)
    ]
    model = model.double()
    fused = fuse_batchnorm(model)
    return Models(model, fused, nets[0], nets[1], network_from_modules(model))


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> Models:
    return make_models("mlp", tmp_path_factory.mktemp("mlp"))


@pytest.fixture(scope="module")
def cnn(tmp_path_factory: pytest.TempPathFactory) -> Models:
    return make_models("small_cnn", tmp_path_factory.mktemp("cnn"))


def inputs(model: nn.Module, seed: int, positive: bool = False) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    shape = (BATCH,) + tuple(model.input_shape)
    if positive:
        return torch.rand(shape, generator=gen, dtype=torch.float64)
    return torch.randn(shape, generator=gen, dtype=torch.float64)


def random_targets(model: nn.Module, seed: int) -> list[int]:
    classes = leaves(model)[-1].out_features
    return np.random.default_rng(seed).integers(0, classes, BATCH).tolist()


# --- the rules, per library -----------------------------------------------------------------


@dataclass
class Rules:
    """Which rule each kind of layer gets: ``layer`` for Linear and Conv2d, ``last`` for the
    last Linear (default ``layer``), ``batchnorm`` for BatchNorm2d (``None``: no rule)."""

    layer: RuleFactory
    last: RuleFactory | None = None
    batchnorm: RuleFactory | None = None

    def for_module(self, m: nn.Module, last: nn.Module) -> object | None:
        if m is last and self.last is not None:
            return self.last()
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            return self.layer()
        if isinstance(m, nn.BatchNorm2d) and self.batchnorm is not None:
            return self.batchnorm()
        return None


def last_linear(model: nn.Module) -> nn.Module:
    return [m for m in leaves(model) if isinstance(m, nn.Linear)][-1]


def captum_lrp(model: nn.Module, x: torch.Tensor, targets: list[int], rules: Rules) -> np.ndarray:
    """Captum's LRP of a batch; rules are set as ``module.rule`` (Captum removes them after)."""
    last = last_linear(model)
    for m in leaves(model):
        rule = rules.for_module(m, last)
        if rule is not None:
            assert isinstance(rule, PropagationRule)
            m.rule = rule
    return LRP(model).attribute(x.clone().requires_grad_(True), target=targets).detach().numpy()


def zennit_lrp(
    model: nn.Module,
    x: torch.Tensor,
    targets: list[int],
    rules: Rules,
    init: str,
    canonizers: list | None = None,
) -> np.ndarray:
    """Zennit's LRP of a batch, seeded with the one-hot target (times the logit for "logit")."""
    last = last_linear(model)

    def module_map(ctx: dict, name: str, module: nn.Module) -> object | None:
        return rules.for_module(module, last)

    composite = ZennitComposite(module_map=module_map, canonizers=canonizers)
    with Gradient(model, composite) as attributor:
        logits = model(x).detach()
        seed = torch.zeros_like(logits)
        seed[range(len(targets)), targets] = 1.0
        if init == "logit":
            seed = seed * logits
        _, relevance = attributor(x.clone(), seed)
    return relevance.detach().numpy()


def gamma(modify_bias: bool, epsilon: float) -> Rule:
    return LRPGamma(GAMMA, epsilon=epsilon, modify_bias=modify_bias)


CAPTUM_CASES: dict[str, tuple[Rules, Composite]] = {
    "epsilon": (
        Rules(lambda: EpsilonRule(EPSILON), batchnorm=lambda: EpsilonRule(EPSILON)),
        Composite(LRPEpsilon(EPSILON)),
    ),
    "epsilon+gamma_last": (
        Rules(
            lambda: EpsilonRule(EPSILON),
            last=lambda: GammaRule(GAMMA),
            batchnorm=lambda: EpsilonRule(EPSILON),
        ),
        Composite(LRPEpsilon(EPSILON), [Entry(-1, gamma(False, CAPTUM_STABILIZER))]),
    ),
    "gamma_all": (
        Rules(lambda: GammaRule(GAMMA), batchnorm=lambda: EpsilonRule(EPSILON)),
        Composite(
            LRPEpsilon(EPSILON),
            [
                Entry("Dense", gamma(False, CAPTUM_STABILIZER)),
                Entry("Conv", gamma(False, CAPTUM_STABILIZER)),
            ],
        ),
    ),
    "lrp0": (
        Rules(lambda: EpsilonRule(TINY), batchnorm=lambda: EpsilonRule(TINY)),
        Composite(LRPEpsilon(TINY)),
    ),
    "lrp0_exact": (
        Rules(lambda: EpsilonRule(TINY), batchnorm=lambda: EpsilonRule(TINY)),
        Composite(LRPZero()),
    ),
}

ZENNIT_CASES: dict[str, tuple[Rules, Composite]] = {
    "epsilon": (
        Rules(lambda: Epsilon(EPSILON), batchnorm=lambda: Epsilon(EPSILON)),
        Composite(LRPEpsilon(EPSILON)),
    ),
    "gamma_all": (
        Rules(lambda: Gamma(GAMMA, stabilizer=ZENNIT_STABILIZER)),
        Composite(
            LRPEpsilon(EPSILON),
            [
                Entry("Dense", gamma(True, ZENNIT_STABILIZER)),
                Entry("Conv", gamma(True, ZENNIT_STABILIZER)),
            ],
        ),
    ),
}


def positive_targets(model: nn.Module, x: torch.Tensor) -> list[int]:
    """The predicted classes, checked to have a positive logit (Zennit's γ premise)."""
    with torch.no_grad():
        logits = model(x)
    targets = logits.argmax(dim=1).tolist()
    assert bool((logits.max(dim=1).values > 0).all())
    return targets


# --- the networks compute what the torch models compute -------------------------------------


@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_networks_compute_the_torch_logits(arch: str, request: pytest.FixtureRequest) -> None:
    models: Models = request.getfixturevalue(arch)
    x = inputs(models.torch, seed=0)
    with torch.no_grad():
        expected = models.torch(x).numpy()
        np.testing.assert_allclose(models.fused(x).numpy(), expected, rtol=1e-10, atol=1e-12)
    for net in (models.onnx, models.onnx_dynamo, models.direct):
        got = forward_trace(net, x.numpy()).logits
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


# --- Captum -----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(CAPTUM_CASES))
@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_captum_through_onnx(
    arch: str, exporter: str, case: str, request: pytest.FixtureRequest
) -> None:
    """The CNN's ONNX file keeps BatchNormalization and the importer folds it into the Conv, so
    the oracle is Captum on torch's own Conv+BN fusion of the model."""
    models: Models = request.getfixturevalue(arch)
    rules, composite = CAPTUM_CASES[case]
    net = models.onnx if exporter == "torchscript" else models.onnx_dynamo
    assert not any(isinstance(op, Affine) for op in net.ops)
    for seed in (0, 1):
        x, targets = inputs(models.torch, seed), random_targets(models.torch, seed)
        expected = captum_lrp(models.fused, x, targets, rules)
        got = provgraph_lrp(net, x, targets, composite, init="logit")
        assert relative_difference(got, expected) < TOLERANCE


@pytest.mark.parametrize("stabilizer", [TINY, CAPTUM_STABILIZER])
def test_captum_lrp0_on_the_model_with_batchnorm_equals_the_folded_import(
    cnn: Models, stabilizer: float
) -> None:
    """Under LRP-0 (and Captum's default ε) folding BN into the Conv leaves the input relevance
    unchanged, so the imported network also matches Captum on the model that keeps BN."""
    rules = Rules(lambda: EpsilonRule(stabilizer), batchnorm=lambda: EpsilonRule(stabilizer))
    x, targets = inputs(cnn.torch, 2), random_targets(cnn.torch, 2)
    expected = captum_lrp(cnn.torch, x, targets, rules)
    got = provgraph_lrp(cnn.onnx, x, targets, Composite(LRPEpsilon(stabilizer)), init="logit")
    assert relative_difference(got, expected) < TOLERANCE


CAPTUM_AFFINE_CASES = dict(CAPTUM_CASES)
CAPTUM_AFFINE_CASES["epsilon+identity_bn"] = (
    Rules(lambda: EpsilonRule(EPSILON), batchnorm=IdentityRule),
    Composite(LRPEpsilon(EPSILON), [Entry("Affine", Flat())]),
)


@pytest.mark.parametrize("case", list(CAPTUM_AFFINE_CASES))
@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_captum_on_networks_built_from_the_modules(
    arch: str, case: str, request: pytest.FixtureRequest
) -> None:
    """BatchNorm kept as provgraph's affine op, against Captum's rule on the BN module."""
    models: Models = request.getfixturevalue(arch)
    rules, composite = CAPTUM_AFFINE_CASES[case]
    x, targets = inputs(models.torch, 3), random_targets(models.torch, 3)
    expected = captum_lrp(models.torch, x, targets, rules)
    got = provgraph_lrp(models.direct, x, targets, composite, init="logit")
    assert relative_difference(got, expected) < TOLERANCE


def test_captum_epsilon_on_batchnorm_is_not_the_folded_rule(cnn: Models) -> None:
    """With a large ε, LRP of the BN-kept model and of the folded model differ, which is why
    the ONNX comparisons use the fused model as their oracle."""
    x, targets = inputs(cnn.torch, 4), random_targets(cnn.torch, 4)
    rules = Rules(lambda: EpsilonRule(1.0), batchnorm=lambda: EpsilonRule(1.0))
    kept = captum_lrp(cnn.torch, x, targets, rules)
    folded = provgraph_lrp(cnn.onnx, x, targets, Composite(LRPEpsilon(1.0)), init="logit")
    direct = provgraph_lrp(cnn.direct, x, targets, Composite(LRPEpsilon(1.0)), init="logit")
    assert relative_difference(direct, kept) < TOLERANCE
    assert relative_difference(folded, kept) > 100 * TOLERANCE


# --- Zennit -----------------------------------------------------------------------------------


@pytest.mark.parametrize("init", ["one", "logit"])
@pytest.mark.parametrize("case", list(ZENNIT_CASES))
@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_zennit_through_onnx(
    arch: str, case: str, init: str, request: pytest.FixtureRequest
) -> None:
    """Zennit's own canonizer merges each BN into its Conv, as the importer folds it. The merged
    BN still divides by ``sqrt(1 + eps)``, a relative 5e-6 that shows in the CNN's figures."""
    models: Models = request.getfixturevalue(arch)
    rules, composite = ZENNIT_CASES[case]
    rules = Rules(rules.layer)  # the merged BN computes the identity and gets no rule
    x = inputs(models.torch, 5, positive=True)
    targets = positive_targets(models.torch, x)
    merge = [SequentialMergeBatchNorm()]
    expected = zennit_lrp(models.torch, x, targets, rules, init, merge)
    got = provgraph_lrp(models.onnx, x, targets, composite, init=init)
    assert relative_difference(got, expected) < TOLERANCE


# Zennit's γ is not compared here: a Conv followed by a BN with a shift can have z_k < 0 and
# still pass relevance, where Zennit's generalised γ and the textbook γ part ways.
ZENNIT_AFFINE_CASES = {
    "epsilon": ZENNIT_CASES["epsilon"],
    "epsilon+pass_bn": (
        Rules(lambda: Epsilon(EPSILON), batchnorm=Pass),
        Composite(LRPEpsilon(EPSILON), [Entry("Affine", Flat())]),
    ),
}


@pytest.mark.parametrize("case", list(ZENNIT_AFFINE_CASES))
def test_zennit_cnn_built_from_the_modules(cnn: Models, case: str) -> None:
    rules, composite = ZENNIT_AFFINE_CASES[case]
    x = inputs(cnn.torch, 7, positive=True)
    targets = positive_targets(cnn.torch, x)
    expected = zennit_lrp(cnn.torch, x, targets, rules, "logit")
    got = provgraph_lrp(cnn.direct, x, targets, composite, init="logit")
    assert relative_difference(got, expected) < TOLERANCE
