"""Every op of the ONNX schemas, decided: supported, folded when its inputs are constant, or
refused, and the README section generated from that decision.

The decision comes from the registry of converters (:mod:`~provgraph.importers.registry`: an op
with a converter is *supported*, with the provenance semantics of its converter family), from
constant folding (:mod:`~provgraph.importers.folding`: any other op whose inputs are all
constants is *folded*, unless it has subgraphs, samples random numbers or trains), and from the
recorded reasons of :mod:`~provgraph.importers.op_decisions`. Regenerate the README section
after registering converters::

    python -m provgraph.importers.op_table --readme README.md

``--check`` exits with status 1 when the README disagrees with the registry.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import onnx

from provgraph.importers import node_converters  # noqa: F401  (registers every converter)
from provgraph.importers.op_decisions import NOT_FOLDED, OP_SEMANTICS, REASONS
from provgraph.importers.registry import Registration, supported_ops

BEGIN = "<!-- op-table:begin (python -m provgraph.importers.op_table --readme README.md) -->"
END = "<!-- op-table:end -->"
#: schema domains whose ops can appear in a classifier's graph
DOMAINS = ("", "ai.onnx.ml", "ai.onnx.preview", "ai.onnx.preview.training")
NO_REASON = "no converter, and no reason recorded"


@dataclass(frozen=True)
class OpDecision:
    """One op: ``status`` is ``supported``, ``folded`` or ``refused``; ``text`` the provenance
    semantics (supported) or why it is not imported when the graph computes its inputs."""

    op_type: str
    domain: str
    status: str
    text: str
    opsets: str = ""

    @property
    def label(self) -> str:
        return self.op_type if self.domain in ("", "ai.onnx") else f"{self.domain}:{self.op_type}"


def schema_ops() -> dict[tuple[str, str], int]:
    """``(domain, op type) →`` newest opset version, over every schema ONNX knows."""
    newest: dict[tuple[str, str], int] = {}
    for schema in onnx.defs.get_all_schemas_with_history():
        if schema.domain in DOMAINS:
            key = (schema.domain, schema.name)
            newest[key] = max(newest.get(key, 0), schema.since_version)
    return newest


def _semantics(op_type: str, entries: list[Registration]) -> str:
    """The recorded semantics of ``op_type``, else the first paragraph of its converter's
    module docstring."""
    if op_type in OP_SEMANTICS:
        return OP_SEMANTICS[op_type]
    docs = [(sys.modules[e.converter.__module__].__doc__ or "").strip() for e in entries]
    return " ".join(next((d for d in docs if d), "").split("\n\n")[0].split())


def _opsets(entries: list[Registration]) -> str:
    ranges = sorted({(e.since, e.until) for e in entries})
    low, high = min(s for s, _ in ranges), max((u or 0) for _, u in ranges)
    open_ended = any(u is None for _, u in ranges)
    return f"{low}+" if open_ended else f"{low}–{high}"


def _reason(op_type: str, table: dict[str, tuple[str, ...]]) -> str | None:
    return next((reason for reason, ops in table.items() if op_type in ops), None)


def decide() -> list[OpDecision]:
    """The decision for every op of the schemas and every registered converter, sorted."""
    registered: dict[tuple[str, str], list[Registration]] = {}
    for entry in supported_ops():
        registered.setdefault((entry.domain, entry.op_type), []).append(entry)
    keys = set(schema_ops()) | set(registered)
    decisions = []
    for domain, op_type in sorted(keys, key=lambda k: (k[0] != "", k[0], k[1])):
        entries = registered.get((domain, op_type))
        if entries:
            decisions.append(OpDecision(op_type, domain, "supported", _semantics(op_type, entries),
                                        _opsets(entries)))
            continue
        refused = _reason(op_type, NOT_FOLDED)
        if refused is not None:
            decisions.append(OpDecision(op_type, domain, "refused", refused))
            continue
        decisions.append(OpDecision(op_type, domain, "folded",
                                    _reason(op_type, REASONS) or NO_REASON))
    return decisions


def counts(decisions: Iterable[OpDecision]) -> dict[str, int]:
    out = {"supported": 0, "folded": 0, "refused": 0}
    for d in decisions:
        out[d.status] += 1
    return out


def _grouped(decisions: list[OpDecision], status: str) -> list[str]:
    by_reason: dict[str, list[str]] = {}
    for d in decisions:
        if d.status == status:
            by_reason.setdefault(d.text, []).append(d.label)
    return [f"- {reason}: {', '.join(ops)}" for reason, ops in by_reason.items()]


def render(decisions: list[OpDecision] | None = None) -> str:
    """The README section (between :data:`BEGIN` and :data:`END`, markers included)."""
    decisions = decide() if decisions is None else decisions
    n = counts(decisions)
    lines = [
        BEGIN,
        "",
        f"{len(decisions)} ops (the ONNX schemas of domains ai.onnx, ai.onnx.ml and the preview "
        f"domains, and onnxruntime's): **{n['supported']} supported**, {n['folded']} folded when "
        f"their inputs are constants, {n['refused']} refused.",
        "",
        "| op | opsets | provenance semantics |",
        "|---|---|---|",
        *(f"| {d.label} | {d.opsets} | {d.text} |" for d in decisions if d.status == "supported"),
        "",
        "Folded when every input is a constant (weights, shape computations); refused when the "
        "graph computes an input, because:",
        "",
        *_grouped(decisions, "folded"),
        "",
        "Refused even on constant inputs:",
        "",
        *_grouped(decisions, "refused"),
        "",
        END,
    ]
    return "\n".join(lines)


def readme_section(text: str) -> str | None:
    """The generated section of a README's text, or ``None`` when it has none."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        return None
    return text[start : end + len(END)]


def write_readme(path: Path) -> bool:
    """Replace (or append) the section in ``path``; ``True`` when the file changed."""
    from provgraph.io.atomic import atomic_write

    text = path.read_text(encoding="utf-8")
    old, new = readme_section(text), render()
    updated = text.replace(old, new) if old is not None else text.rstrip("\n") + "\n\n" + new + "\n"
    if updated != text:
        atomic_write(path, lambda f: f.write(updated.encode("utf-8")))
    return updated != text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m provgraph.importers.op_table",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--readme", type=Path, help="rewrite the op-table section of this file")
    parser.add_argument("--check", action="store_true",
                        help="with --readme: only check, exit 1 when the section is out of date")
    args = parser.parse_args(argv)
    if args.readme is None:
        print(render())
        return 0
    if not args.readme.is_file():
        print(f"{args.readme}: no such file", file=sys.stderr)
        return 2
    if args.check:
        current = readme_section(args.readme.read_text(encoding="utf-8"))
        if current != render():
            print(f"{args.readme}: the op table is out of date; run "
                  "python -m provgraph.importers.op_table --readme README.md", file=sys.stderr)
            return 1
        return 0
    changed = write_readme(args.readme)
    n = counts(decide())
    print(f"{args.readme}: {'updated' if changed else 'up to date'} ({n['supported']} supported, "
          f"{n['folded']} folded, {n['refused']} refused)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
