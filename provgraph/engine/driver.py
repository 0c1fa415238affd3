"""The aggregation driver: K-LRP backward over the op DAG in reverse topological order.

    R_y = init (K's one on the target by default)
    R_j = ⊕_k Θ(r_jk) ⊗ R_k

Where a tensor fans out (residual connections), the relevance it receives from its consumers is
⊕-accumulated before its producer is visited.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np

from provgraph.algebra.composites import Composite, get_composite
from provgraph.algebra.rules import Rule
from provgraph.algebra.semirings import Semiring, get_semiring
from provgraph.algebra.theta import Theta, get_theta
from provgraph.engine.annotation import AnnotatedGraph
from provgraph.engine.initialisation import InitSpec, check_target
from provgraph.engine.relevance import Relevance
from provgraph.model.ops import LinearOp


def aggregate(
    graph: AnnotatedGraph,
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
        The annotated graph (network + one sample's trace).
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
    """
    from provgraph.backends import get_backend

    engine = get_backend(backend, graph)
    engine.check(graph)
    k = engine.result_semiring(get_semiring(semiring))
    composite = get_composite(rule, k)
    base_theta = get_theta(theta, k)

    net = graph.network
    logits = graph.logits
    targets = _targets(target, graph)
    relevance = {net.output_name: engine.initial(graph, init, k, targets)}
    biases: dict[str, Any] = {}
    kept = None if keep is None else set(keep) | {net.input_name}
    for op in reversed(net.ops):
        r_out = relevance.get(op.output)
        if r_out is None:
            continue
        layer = graph.layers.get(op.name)
        op_rule = composite.rule_for(layer) if isinstance(op, LinearOp) else None
        op_theta = composite.theta_for(layer, base_theta) if layer is not None else None
        sent, absorbed = engine.propagate(graph, op, op_rule, op_theta, layer, k, r_out)
        if kept is not None and op.output not in kept:
            del relevance[op.output]
        for tensor, value in sent:
            previous = relevance.get(tensor)
            relevance[tensor] = value if previous is None else engine.accumulate(k, previous, value)
        if absorbed is not None:
            biases[op.name] = absorbed
    relevance = {t: engine.to_numpy(graph, k, v) for t, v in relevance.items()}
    biases = {n: engine.to_numpy(graph, k, v, bias=True) for n, v in biases.items()}
    info = {
        "rule": repr(composite),
        "theta": repr(base_theta),
        "init": init if isinstance(init, str) else repr(init),
        "backend": engine.name,
        **engine.describe(k),
    }
    if engine.selection:
        info["backend_selection"] = engine.selection
    return Relevance(net, k, targets, relevance, biases, logits, info)


def _targets(target: int | Sequence[int] | None, graph: AnnotatedGraph) -> list[int]:
    n = graph.network.num_classes
    if target is None:
        return [graph.predicted_class]
    if isinstance(target, (list, tuple, np.ndarray)):
        return [check_target(t, n) for t in target]
    return [check_target(target, n)]
