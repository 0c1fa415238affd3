"""Run fuzz cases through the public API and classify each against the contract.

The contract: every case ends in a valid explanation whose values are finite (or the semiring's
own zero, such as the tropical +∞), or in a :class:`~provgraph.errors.ProvgraphError` with a
one-line message; within a time and a memory bound; an explained mutated model computes the
logits onnxruntime computes, whenever onnxruntime accepts it too; and an input that has no
meaningful explanation (complex, text, an empty batch, a tensor without data) is refused.
"""

from __future__ import annotations

import contextlib
import io
import resource
import signal
import tempfile
import traceback
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from mutations import Case, make_case
from seeds import seeds

import provgraph as pg
from provgraph.errors import ProvgraphError

#: outcomes that satisfy the contract
GOOD = ("explained", "refused")
BAD = ("crash", "nonfinite", "mismatch", "accepted", "multiline", "timeout", "memory")


class CaseTimeout(BaseException):
    """Raised by the alarm when a case runs past its time bound (not an Exception: the code
    under test must not be able to swallow it)."""


@dataclass
class Outcome:
    kind: str
    case: Case
    detail: str = ""

    def line(self) -> str:
        return f"{self.kind:9} {self.case.family:12} {self.case.description[:60]!r}: {self.detail}"


@contextlib.contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    def expire(signum: int, frame: Any) -> None:
        raise CaseTimeout()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _nonfinite(rel: Any) -> str | None:
    """Where ``rel`` holds NaN, or ±∞ other than the semiring's zero."""
    zero = rel.semiring.zero
    arrays = [*rel.tensors.items(), *((f"bias {k!r}", v) for k, v in rel.biases.items())]
    for name, value in arrays:
        a = np.asarray(value)
        if a.dtype.kind not in "fc":
            continue
        bad = np.isnan(a) | (np.isinf(a) & (a != zero))
        if bad.any():
            return f"{int(bad.sum())} non-finite values in {name!r} ({rel.semiring.name})"
    return None


def _onnxruntime_mismatch(case: Case, rel: Any) -> str | None:
    """How onnxruntime's logits differ from provgraph's, or ``None`` (agree, or ORT refuses)."""
    import onnxruntime as ort

    net = rel.network
    try:
        session = ort.InferenceSession(
            case.model if isinstance(case.model, bytes) else str(case.model),
            providers=["CPUExecutionProvider"],
        )
        names = [o.name for o in session.get_outputs()]
        if net.output_name not in names:
            return None
        feed = np.asarray(case.x, dtype=np.float32).reshape((1,) + tuple(net.input_shape))
        theirs = session.run([net.output_name], {session.get_inputs()[0].name: feed})[0]
    except Exception:  # onnxruntime refuses the mutated model: nothing to compare with
        return None
    theirs = np.asarray(theirs, dtype=np.float64).reshape(-1)
    ours = np.asarray(rel.logits, dtype=np.float64).reshape(-1)
    if theirs.shape != ours.shape:
        return f"logits of shape {ours.shape}, onnxruntime {theirs.shape}"
    if not np.isfinite(theirs).all():
        return None  # onnxruntime itself overflows: provgraph's refusal would be the answer
    scale = max(1.0, float(np.abs(theirs).max()))
    err = float(np.abs(ours - theirs).max()) / scale
    return None if err <= 1e-4 else f"logits differ from onnxruntime by {err:.2e} (relative)"


def run_case(case: Case, seconds: float = 20.0, memory_mib: float = 2048.0) -> Outcome:
    """Explain ``case`` with the public one-call API and classify the result."""
    before = _peak_rss_mib()
    try:
        with _time_limit(seconds), warnings.catch_warnings(), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            rel = pg.explain(case.model, case.x, **case.options)
            problem = _nonfinite(rel)
            if problem is None and case.compare:
                mismatch = _onnxruntime_mismatch(case, rel)
                if mismatch:
                    return Outcome("mismatch", case, mismatch)
    except CaseTimeout:
        return Outcome("timeout", case, f"over {seconds} s")
    except ProvgraphError as exc:
        message = str(exc)
        kind = "refused" if message and "\n" not in message else "multiline"
        return Outcome(kind, case, message[:160])
    except Exception as exc:
        where = traceback.extract_tb(exc.__traceback__)[-1]
        place = f"{Path(where.filename).name}:{where.lineno}"
        return Outcome("crash", case, f"{type(exc).__name__}: {str(exc)[:100]} @ {place}")
    grown = _peak_rss_mib() - before
    if grown > memory_mib:
        return Outcome("memory", case, f"peak memory grew by {grown:.0f} MiB")
    if problem:
        return Outcome("nonfinite", case, problem)
    if case.must_refuse:
        return Outcome("accepted", case, "explained an input that has no meaningful explanation")
    return Outcome("explained", case)


def run_cases(indices: range, base_seed: int = 0) -> list[Outcome]:
    """Cases ``indices`` of the run seeded ``base_seed``."""
    models = seeds()
    with tempfile.TemporaryDirectory() as folder:
        return [run_case(make_case(models, i, base_seed, Path(folder))) for i in indices]


def outcome_table(outcomes: list[Outcome]) -> str:
    """Counts per family (rows) and outcome (columns), with totals."""
    kinds = list(GOOD + BAD)
    counts = Counter((o.case.family, o.kind) for o in outcomes)
    families = sorted({o.case.family for o in outcomes})
    header = f"| family | cases | {' | '.join(kinds)} |"
    lines = [header, "|" + "---|" * (len(kinds) + 2)]
    for fam in families + ["all"]:
        row = [counts[(fam, k)] if fam != "all" else sum(counts[(f, k)] for f in families)
               for k in kinds]
        lines.append(f"| {fam} | {sum(row)} | {' | '.join(str(v) for v in row)} |")
    return "\n".join(lines)
