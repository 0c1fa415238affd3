"""The one backward driver: K-LRP over the op DAG in reverse topological order.

    R_y = init (K's one on the target by default)
    R_j = ⊕_k Θ(r_jk) ⊗ R_k

:func:`backward` is the walk itself, independent of how a step is computed: where a tensor fans
out (residual connections) the relevance it receives from its consumers is ⊕-accumulated before
its producer is visited, and tensors that are not kept are dropped once consumed.
:func:`aggregate` runs it with a backend's per-role steps
(:mod:`provgraph.backends.base`); the provenance circuit
(:meth:`provgraph.symbolic.circuit.Circuit.evaluate`) runs it with the circuit's own wires.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np

from provgraph.algebra.composites import Composite, get_composite
from provgraph.algebra.counting_carriers import (
    CountingFallbackWarning,
    CountOverflowError,
    wider_counting,
)
from provgraph.algebra.rules import Rule
from provgraph.algebra.semirings import Semiring, get_semiring
from provgraph.algebra.theta import Layer, Theta, get_theta
from provgraph.backends import get_backend
from provgraph.backends.base import Backend, ExplainedGraph, StepContext
from provgraph.engine.initialisation import InitSpec, initial_relevance, resolve_targets
from provgraph.engine.relevance import Relevance
from provgraph.model.ops import Op

#: one op's step: ``(op, relevance of its output) → ([(input tensor, sent)…], absorbed or None)``
OpStep = Callable[[Op, Any], tuple[list[tuple[str, Any]], Any]]


def backward(
    ops: Sequence[Op],
    seeds: dict[str, Any],
    step: OpStep,
    accumulate: Callable[[Any, Any], Any],
    keep: Collection[str] | None = None,
    settle: Callable[[Op, Any], Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Walk ``ops`` (topologically sorted) backwards from ``seeds``.

    Parameters
    ----------
    ops
        The network's ops in topological order.
    seeds
        Initial relevance per tensor (usually the logits tensor only).
    step
        Computes one op's contribution to its inputs; ops whose output holds no relevance are
        skipped.
    accumulate
        ``a ⊕ b`` for two relevance values of one tensor.
    keep
        Tensors to keep in the result; ``None`` keeps all. The others are dropped as soon as
        their producer has consumed them.
    settle
        Applied to an op's output relevance once every consumer has sent to it, before the op's
        step; the result is what the tensor keeps (the circuit multiplies by neuron variables).

    Returns
    -------
    relevance, absorbed
        Relevance per tensor, and per op name what its bias source absorbed.
    """
    relevance = dict(seeds)
    absorbed: dict[str, Any] = {}
    for op in reversed(ops):
        r_out = relevance.get(op.output)
        if r_out is None:
            continue
        if settle is not None:
            r_out = relevance[op.output] = settle(op, r_out)
        sent, bias = step(op, r_out)
        if keep is not None and op.output not in keep:
            del relevance[op.output]
        for tensor, value in sent:
            previous = relevance.get(tensor)
            relevance[tensor] = value if previous is None else accumulate(previous, value)
        if bias is not None:
            absorbed[op.name] = bias
    return relevance, absorbed


def aggregate(
    graph: ExplainedGraph,
    semiring: str | Semiring = "real",
    *,
    rule: Composite | Rule | str | None = None,
    theta: Theta | str | float | Callable | None = None,
    init: InitSpec = "one",
    target: int | Sequence[int] | None = None,
    backend: Any = "auto",
    keep: Collection[str] | None = None,
) -> Relevance:
    """Relevance of every tensor of ``graph`` for ``target`` in ``semiring``.

    Parameters
    ----------
    graph
        The annotated graph (network + one sample's trace), or a batch of them.
    semiring
        A semiring object or name (``real``, ``boolean``, ``counting``, ``viterbi``, …).
    rule
        A rule, a composite, or a name of either; ``None`` takes the semiring's default.
    theta
        Θ, or a number (threshold), or ``None`` for the semiring's default.
    init
        ``"one"`` (K-LRP), ``"logit"`` (classic LRP), a
        :class:`~provgraph.engine.initialisation.Contrastive`,
        or a vector over the classes.
    target
        Class index, a list of them (one column each), or ``None`` for the predicted class.
    backend
        ``"scipy"``, ``"torch"`` (``"torch:cuda"``), a backend object, or ``"auto"``: scipy
        within its edge budget, torch above it; ``info["backend"]`` says which ran.
    keep
        Tensors whose relevance the result keeps (the input's always); ``None`` keeps all.
        Dropping the others as soon as they are consumed bounds memory on large networks.

    Notes
    -----
    Counting never fails by default: when exact int64 counts overflow
    (:class:`~provgraph.algebra.counting_carriers.CountOverflowError`) on any backend whose
    ``counting`` mode is ``"auto"``, the explanation is rerun in float64 counts, and in log
    counts should those overflow too
    (:func:`~provgraph.algebra.counting_carriers.wider_counting`), with a
    :class:`~provgraph.algebra.counting_carriers.CountingFallbackWarning`;
    ``info["counting"]`` names the carrier and ``info["counting_reason"]`` why.
    """
    engine: Backend = get_backend(backend, graph)
    engine.check(graph)
    k = engine.result_semiring(get_semiring(semiring))
    options = dict(rule=rule, theta=theta, init=init, target=target, keep=keep)
    reason = None
    while True:
        try:
            result = _aggregate_in(graph, k, engine, **options)
        except CountOverflowError as exc:
            wider = wider_counting(k) if engine.counting == "auto" else None
            if wider is None:
                raise
            reason = f"{k.counting_mode} counts overflowed ({exc}); counted in {wider.mode}"
            warnings.warn(
                f"{reason} (approximate); backend='scipy' counts exactly, "
                "counting='int64' refuses instead",
                CountingFallbackWarning,
                stacklevel=2,
            )
            k = wider
            continue
        if reason is not None:
            result.info["counting"] = k.counting_mode
            result.info["counting_reason"] = reason
        return result


def _aggregate_in(
    graph: ExplainedGraph,
    k: Semiring,
    engine: Backend,
    *,
    rule: Composite | Rule | str | None,
    theta: Theta | str | float | Callable | None,
    init: InitSpec,
    target: int | Sequence[int] | None,
    keep: Collection[str] | None,
) -> Relevance:
    """:func:`aggregate` in the carrier ``k`` on ``engine``, without any fallback."""
    composite = get_composite(rule, k)
    base_theta = get_theta(theta, k)
    net = graph.network
    targets = resolve_targets(target, net.num_classes, graph.predicted_class)

    def step(op: Op, r_out: Any) -> tuple[list[tuple[str, Any]], Any]:
        layer = graph.layers.get(op.name)  # linear ops only: the others take no rule nor Θ
        op_rule = composite.rule_for(layer) if layer is not None else None
        op_theta = composite.theta_for(layer, base_theta) if layer is not None else None
        return engine.step(op, StepContext(graph, k, op_rule, op_theta, layer, r_out))

    seed = engine.seed(graph, k, seed_relevance(init, k, graph.logits, targets))
    relevance, biases = backward(
        net.ops,
        {net.output_name: seed},
        step,
        lambda a, b: engine.accumulate(k, a, b),
        None if keep is None else set(keep) | {net.input_name},
    )
    info = {
        "rule": repr(composite),
        "theta": repr(base_theta),
        "init": init if isinstance(init, str) else repr(init),
        "backend": engine.name,
        **engine.describe(k),
    }
    if engine.selection:
        info["backend_selection"] = engine.selection
    return Relevance(
        net,
        k,
        targets,
        {t: engine.to_numpy(graph, k, v) for t, v in relevance.items()},
        {n: engine.to_numpy(graph, k, v, bias=True) for n, v in biases.items()},
        graph.logits,
        info,
    )


def seed_relevance(
    init: InitSpec, semiring: Semiring, logits: np.ndarray, targets: Sequence[Any]
) -> np.ndarray:
    """``(B, num_classes, T)`` initial relevance in K for one or a batch of samples.

    ``logits`` is ``(num_classes,)`` or ``(B, num_classes)``; a target is a class index or one
    index per sample.
    """
    logits = np.atleast_2d(logits)
    n_b = len(logits)
    per_sample = [np.broadcast_to(np.asarray(t), (n_b,)) for t in targets]
    rows = [
        initial_relevance(init, semiring, logits[b], [int(t[b]) for t in per_sample])
        for b in range(n_b)
    ]
    out = semiring.zeros((n_b,) + rows[0].shape)
    for b, row in enumerate(rows):
        out[b] = row
    return out


def check_method(
    network: Any,
    semiring: Semiring,
    rule: Composite | Rule | str | None,
    theta: Theta | str | float | Callable | None,
    init: InitSpec,
) -> None:
    """Refuse, before any input is seen, a rule, Θ or initialisation that cannot give a
    meaningful result in ``semiring`` (invalid rule parameters, a Θ that does not map into K, an
    initial vector with NaN): what :func:`aggregate` would refuse on its first call."""
    composite = get_composite(rule, semiring)
    base_theta = get_theta(theta, semiring)
    count = len(network.linear_ops)
    for index, op in enumerate(network.linear_ops):
        layer = Layer(op, index, count)
        getattr(composite.rule_for(layer), "form", None)  # a declared form validates itself
        composite.theta_for(layer, base_theta)(np.zeros(0), semiring, layer)
    if not isinstance(init, str):
        initial_relevance(init, semiring, np.zeros(network.num_classes), [0])
