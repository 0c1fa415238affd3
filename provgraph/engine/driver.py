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
    ``counting`` mode is ``"auto"``, the walk switches carrier at the op that overflowed: the
    relevance counted so far is recast into float64 counts (and into log counts should those
    overflow too; :func:`~provgraph.algebra.counting_carriers.wider_counting`,
    :meth:`~provgraph.backends.base.Backend.recast`) and the walk goes on from that op, with a
    :class:`~provgraph.algebra.counting_carriers.CountingFallbackWarning`; a backend that cannot
    recast reruns the explanation in the wider carrier. ``info["counting"]`` names the carrier
    of the result and ``info["counting_reason"]`` where and why it was widened.
    """
    engine: Backend = get_backend(backend, graph)
    engine.check(graph)
    k = engine.result_semiring(get_semiring(semiring))
    options = dict(rule=rule, theta=theta, init=init, target=target, keep=keep)
    reasons: list[str] = []
    while True:
        try:
            return _aggregate_in(graph, k, engine, reasons, **options)
        except _RerunIn as rerun:
            k = rerun.semiring


class _RerunIn(Exception):
    """The backend cannot recast relevance: the explanation is rerun in ``semiring``."""

    def __init__(self, semiring: Semiring) -> None:
        super().__init__(semiring.name)
        self.semiring = semiring


class _Carrier:
    """The semiring a walk computes in, widened where exact counts overflow.

    Relevance travels through :func:`backward` as ``(semiring, value)`` pairs; a value computed
    before a switch is recast into the current carrier when it is next read.
    """

    def __init__(self, engine: Backend, k: Semiring, rule: Any, theta: Any,
                 reasons: list[str]) -> None:
        self.engine, self.k, self.reasons = engine, k, reasons
        self._rule, self._theta = rule, theta
        self._method()

    def _method(self) -> None:
        self.composite = get_composite(self._rule, self.k)
        self.theta = get_theta(self._theta, self.k)

    def read(self, held: tuple[Semiring, Any]) -> Any:
        """A held value in the current carrier."""
        semiring, value = held
        if semiring is self.k:
            return value
        recast = self.engine.recast(semiring, self.k, value)
        if recast is None:
            raise _RerunIn(self.k)
        return recast

    def widen(self, exc: CountOverflowError, where: str) -> None:
        """Switch to the next carrier of :func:`wider_counting`, or re-raise ``exc``."""
        wider = wider_counting(self.k) if self.engine.counting == "auto" else None
        if wider is None:
            raise exc
        reason = (f"{self.k.counting_mode} counts overflowed{where} ({exc}); "
                  f"counted in {wider.mode} from there on")
        warnings.warn(
            f"{reason} (approximate); backend='scipy' counts exactly, "
            "counting='int64' refuses instead",
            CountingFallbackWarning,
            stacklevel=6,
        )
        self.reasons.append(reason)
        self.k = wider
        self._method()


def _aggregate_in(
    graph: ExplainedGraph,
    k: Semiring,
    engine: Backend,
    reasons: list[str],
    *,
    rule: Composite | Rule | str | None,
    theta: Theta | str | float | Callable | None,
    init: InitSpec,
    target: int | Sequence[int] | None,
    keep: Collection[str] | None,
) -> Relevance:
    """:func:`aggregate` from the carrier ``k`` on ``engine`` (``reasons``: its widenings)."""
    carrier = _Carrier(engine, k, rule, theta, reasons)
    net = graph.network
    targets = resolve_targets(target, net.num_classes, graph.predicted_class)

    def step(op: Op, held: tuple[Semiring, Any]) -> tuple[list[tuple[str, Any]], Any]:
        layer = graph.layers.get(op.name)  # linear ops only: the others take no rule nor Θ
        r_out = carrier.read(held)
        while True:
            k, composite = carrier.k, carrier.composite
            op_rule = composite.rule_for(layer) if layer is not None else None
            op_theta = composite.theta_for(layer, carrier.theta) if layer is not None else None
            try:
                sent, bias = engine.step(op, StepContext(graph, k, op_rule, op_theta, layer,
                                                         r_out))
            except CountOverflowError as exc:
                named = op.name in str(exc)  # most steps name their op already
                carrier.widen(exc, "" if named else f" at {op.source or type(op).__name__} "
                                                    f"{op.name!r}")
                r_out = carrier.read((k, r_out))
                continue
            return [(t, (k, v)) for t, v in sent], None if bias is None else (k, bias)

    def accumulate(a: tuple[Semiring, Any], b: tuple[Semiring, Any]) -> tuple[Semiring, Any]:
        while True:
            k = carrier.k
            try:
                return k, engine.accumulate(k, carrier.read(a), carrier.read(b))
            except CountOverflowError as exc:
                carrier.widen(exc, "" if "fans in" in str(exc) else " where relevance fans in")

    seed = engine.seed(graph, k, seed_relevance(init, k, graph.logits, targets))
    relevance, biases = backward(
        net.ops,
        {net.output_name: (k, seed)},
        step,
        accumulate,
        None if keep is None else set(keep) | {net.input_name},
    )
    k = carrier.k
    info = {
        "rule": repr(carrier.composite),
        "theta": repr(carrier.theta),
        "init": init if isinstance(init, str) else repr(init),
        "backend": engine.name,
        **engine.describe(k),
    }
    if engine.selection:
        info["backend_selection"] = engine.selection
    if reasons:
        info["counting"] = k.counting_mode
        info["counting_reason"] = "; ".join(reasons)
    return Relevance(
        net,
        k,
        targets,
        {t: engine.to_numpy(graph, k, carrier.read(v)) for t, v in relevance.items()},
        {n: engine.to_numpy(graph, k, carrier.read(v), bias=True) for n, v in biases.items()},
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
