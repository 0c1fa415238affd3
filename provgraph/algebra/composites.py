"""Composites: which rule and which Θ apply to which layer.

A composite is an ordered list of entries ``(selector, rule, theta)``; the first entry whose
selector matches a layer decides, and the composite's default applies otherwise. Selectors match
a layer by index among the linear ops (negative from the output), by op type (``"Conv"``,
``"Gemm"``, the class name ``"Dense"``, …), by name (shell pattern), or by a predicate.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass, field

from provgraph.algebra.rules import LRPZB, LRPEpsilon, LRPGamma, LRPZero, Rule, get_rule
from provgraph.algebra.semirings import Semiring
from provgraph.algebra.theta import Layer, Theta
from provgraph.errors import ProvgraphError

Selector = int | str | Callable[[Layer], bool]


@dataclass(frozen=True)
class DepthThird:
    """Selects the linear layers in one third of the network by depth (0: input side).

    Layer ``i`` of ``n`` lies in third ``min(⌊3i / n⌋, 2)``.
    """

    which: int

    def __call__(self, layer: Layer) -> bool:
        return min(3 * layer.index // max(layer.count, 1), 2) == self.which

    def __repr__(self) -> str:
        return ("lower", "middle", "upper")[self.which] + " third"


def describe_selector(selector: Selector) -> str:
    """A selector as a user reads it: ``layer 0``, ``Conv``, ``fc*``, ``predicate is_late``."""
    if isinstance(selector, int):
        return f"layer {selector}"
    if isinstance(selector, str):
        return selector
    name = getattr(selector, "__name__", None)
    if name is None:  # a callable object: its own repr
        return repr(selector)
    return "a predicate" if name == "<lambda>" else f"predicate {name}"


def _matches(selector: Selector, layer: Layer) -> bool:
    if callable(selector):
        return bool(selector(layer))
    if isinstance(selector, int):
        return selector % layer.count == layer.index
    op = layer.op
    if selector in (op.source, type(op).__name__):
        return True
    return fnmatch.fnmatchcase(op.name, selector)


@dataclass
class Entry:
    selector: Selector
    rule: Rule | None = None
    theta: Theta | None = None


@dataclass
class Composite:
    """Rule and Θ per layer.

    Examples
    --------
    >>> Composite(default="epsilon", entries=[Entry(0, LRPZB(0, 1))])  # doctest: +SKIP
    """

    default: Rule | str = "lrp0"
    entries: list[Entry] = field(default_factory=list)
    name: str = "composite"

    def __post_init__(self) -> None:
        self.default = get_rule(self.default)
        for e in self.entries:
            if e.rule is not None:
                e.rule = get_rule(e.rule)

    def rule_for(self, layer: Layer) -> Rule:
        for e in self.entries:
            if e.rule is not None and _matches(e.selector, layer):
                return e.rule
        return self.default  # type: ignore[return-value]

    def theta_for(self, layer: Layer, fallback: Theta) -> Theta:
        for e in self.entries:
            if e.theta is not None and _matches(e.selector, layer):
                return e.theta
        return fallback

    def with_rule(self, selector: Selector, rule: Rule | str) -> Composite:
        return Composite(self.default, self.entries + [Entry(selector, get_rule(rule))], self.name)

    def describe(self) -> str:
        """One line: each entry as ``selector → rule [Θ]`` in matching order, then the default.

        Example: ``layered: layer 0 → LRPZB(low=0.0, high=1.0); lower third → LRPGamma(…);
        otherwise LRPZero()``.
        """
        parts = []
        for e in self.entries:
            what = [repr(x) for x in (e.rule, e.theta) if x is not None]
            parts.append(f"{describe_selector(e.selector)} → {', Θ '.join(what)}")
        parts.append(f"otherwise {self.default!r}" if parts else repr(self.default))
        return f"{self.name}: {'; '.join(parts)}"

    def __repr__(self) -> str:
        return self.describe()


def uniform(rule: Rule | str) -> Composite:
    """The same rule on every layer."""
    r = get_rule(rule)
    return Composite(default=r, name=f"uniform[{r.name}]")


def layered(
    epsilon: float = 0.25,
    gamma: float = 0.25,
    low: float = 0.0,
    high: float = 1.0,
    input_rule: bool = True,
) -> Composite:
    """LRP-0 upper layers, LRP-ε middle, LRP-γ lower, z^B at the input (Montavon et al. 2019).

    The linear layers are split into thirds by depth; the first linear layer gets z^B (or γ when
    ``input_rule`` is false).
    """

    entries = [Entry(DepthThird(0), LRPGamma(gamma)), Entry(DepthThird(1), LRPEpsilon(epsilon))]
    if input_rule:
        entries.insert(0, Entry(0, LRPZB(low, high)))
    return Composite(default=LRPZero(), entries=entries, name="layered")


def epsilon_gamma_box(
    epsilon: float = 0.25, gamma: float = 0.25, low: float = 0.0, high: float = 1.0
) -> Composite:
    """z^B at the input, γ on convolutions, ε on dense layers (Zennit's EpsilonGammaBox)."""
    return Composite(
        default=LRPEpsilon(epsilon),
        entries=[Entry(0, LRPZB(low, high)), Entry("Conv", LRPGamma(gamma))],
        name="epsilon_gamma_box",
    )


COMPOSITES: dict[str, Callable[[], Composite]] = {
    "layered": layered,
    "epsilon_gamma_box": epsilon_gamma_box,
}


def get_composite(spec: Composite | Rule | str | None, semiring: Semiring) -> Composite:
    """A composite from a composite, a rule, a rule or composite name, or ``None`` (default)."""
    if spec is None:
        return default_composite(semiring)
    if isinstance(spec, Composite):
        return spec
    if isinstance(spec, str) and spec.lower() in COMPOSITES:
        return COMPOSITES[spec.lower()]()
    try:
        return uniform(get_rule(spec))
    except ProvgraphError:
        known = ", ".join(COMPOSITES)
        raise ProvgraphError(
            f"unknown rule or composite {spec!r}; composites: {known}; "
            "rules: lrp0, epsilon, gamma, zb, maxnorm, flat, wsquare, cp, attnlrp"
        ) from None


def default_composite(semiring: Semiring) -> Composite:
    """The semiring's own default rule on every layer
    (:attr:`~provgraph.algebra.semirings.Semiring.default_rule`; seed-faithful for the
    built-ins: max-normalised magnitudes for Viterbi/fuzzy/tropical, LRP-0 otherwise)."""
    spec = semiring.default_rule
    if isinstance(spec, Composite):
        return spec
    return uniform(get_rule(spec))
