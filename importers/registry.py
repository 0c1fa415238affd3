"""Registry of node converters, keyed by ONNX op type, domain and opset range.

A converter turns one ONNX node into zero or more provgraph ops through a
:class:`~provgraph.importers.context.ConversionContext`. Registering an op type is one decorator::

    @register("Relu")
    def convert_relu(node, ctx): ...

Where an op's semantics changed between opsets (``Unsqueeze`` axes moved from an attribute to an
input in opset 13), each range gets its own converter with ``since`` / ``until``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from provgraph.importers.context import ConversionContext, OnnxNode

Converter = Callable[["OnnxNode", "ConversionContext"], None]

DEFAULT_DOMAINS = ("", "ai.onnx")


@dataclass(frozen=True)
class Registration:
    """One registered converter and the opset versions ``[since, until]`` it handles."""

    op_type: str
    domain: str
    since: int
    until: int | None
    converter: Converter

    def accepts(self, opset: int) -> bool:
        return self.since <= opset and (self.until is None or opset <= self.until)


_REGISTRY: dict[tuple[str, str], list[Registration]] = {}


def _domain_key(domain: str) -> str:
    return "" if domain in DEFAULT_DOMAINS else domain


def register(
    op_type: str, *, domain: str = "", since: int = 1, until: int | None = None
) -> Callable[[Converter], Converter]:
    """Decorator registering ``converter`` for ``op_type`` in opsets ``since..until``."""

    def decorate(converter: Converter) -> Converter:
        key = (op_type, _domain_key(domain))
        entries = _REGISTRY.setdefault(key, [])
        for other in entries:
            overlap = other.since <= (until or 10**9) and since <= (other.until or 10**9)
            if overlap:
                raise ValueError(f"converters for {op_type} overlap in opsets {since}..{until}")
        entries.append(Registration(op_type, key[1], since, until, converter))
        return converter

    return decorate


def lookup(op_type: str, domain: str, opset: int) -> Converter | None:
    """The converter for ``op_type`` of ``domain`` at ``opset``, or ``None`` when there is none."""
    for entry in _REGISTRY.get((op_type, _domain_key(domain)), []):
        if entry.accepts(opset):
            return entry.converter
    return None


def supported_ops() -> list[Registration]:
    """Every registered converter, sorted by op type."""
    return sorted(
        (e for entries in _REGISTRY.values() for e in entries),
        key=lambda e: (e.domain, e.op_type, e.since),
    )
