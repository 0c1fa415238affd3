"""Options shared by several commands, each declared once, and how the handlers read them.

A command names the shared options it takes (``options=("target", "rule", …)`` in its entry of
:data:`provgraph.cli.main.COMMANDS`); :func:`add_shared_options` adds them to its parser. The
readers (:func:`rule_of`, :func:`init_of`, :func:`backend_of`) turn parsed values into what the
API takes. Nothing here imports torch, sympy or matplotlib at module level.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from typing import Any

from provgraph.algebra.semirings import BUILTIN_SEMIRINGS
from provgraph.errors import ProvgraphError

AddOption = Callable[[argparse.ArgumentParser], None]


def parse_shape(text: str) -> tuple[int, ...]:
    """``"3,48,192"`` → ``(3, 48, 192)``; anything else is a one-line usage error."""
    try:
        shape = tuple(int(d) for d in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a shape like 3,48,192") from None
    if not shape or any(d < 1 for d in shape):
        raise argparse.ArgumentTypeError(f"{text!r} is not a shape like 3,48,192")
    return shape


def count_at_least(low: int) -> Callable[[str], int]:
    """An ``argparse`` type: an integer ``>= low``, else a one-line usage error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is below the smallest allowed, {low}")
        return value

    return parse


def parse_semiring(text: str) -> str:
    """A built-in semiring's name (case-insensitive), or a one-line usage error listing them."""
    key = text.strip().lower()
    if key not in BUILTIN_SEMIRINGS:
        raise argparse.ArgumentTypeError(
            f"unknown semiring {text!r}; choose from {', '.join(BUILTIN_SEMIRINGS)}"
        )
    return key


def _target(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", type=int, default=None, help="class index (default: predicted)")


def _semiring(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--semiring",
        type=parse_semiring,
        default="real",
        metavar="{" + ",".join(BUILTIN_SEMIRINGS) + "}",
        help="semiring of the explanation (default: real)",
    )


def _rule(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--rule",
        default=None,
        help="lrp0, epsilon[:ε], gamma[:γ], zb, maxnorm, flat, wsquare, cp, attnlrp (default: "
        "per semiring)",
    )
    group.add_argument("--composite", default=None, help="layered or epsilon_gamma_box")


def _theta(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--theta",
        default=None,
        help="Θ: a threshold number, 'identity', 'one' or 'neglog' (default: per semiring)",
    )


def _init(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--init", default="one", help="output initialisation: one (K-LRP) or logit (classic)"
    )
    p.add_argument("--contrast", type=int, default=None, help="explain target against this class")


def _backend(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend",
        default="auto",
        help="scipy, torch or auto (default: scipy within its edge budget, torch above)",
    )
    p.add_argument(
        "--device", default=None, help="torch device: cpu or cuda (selects the torch backend)"
    )
    p.add_argument(
        "--counting",
        default=None,
        choices=("auto", "int64", "float64", "log"),
        help="torch backend's path counts: auto (default: exact int64, float64 then log where "
        "counts outgrow it, with a warning), strict int64, float64 or log-domain",
    )


def _input_shape(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--input-shape",
        default=None,
        type=parse_shape,
        help="one sample's shape, e.g. 3,48,192 (needed when the model's is dynamic)",
    )


def _max_memory(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--max-memory",
        default=None,
        metavar="SIZE",
        help="most memory one sample's tensors may take, e.g. 4G (default: half the machine's "
        "memory); larger models are refused before anything is allocated",
    )


def _output_name(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output-name", default=None, help="logits tensor (default: found)")


def parse_cluster(text: str) -> str:
    """``local:N`` or a scheduler address (checked), else a one-line usage error."""
    from provgraph.apps.cluster import check_cluster

    try:
        return check_cluster(text)
    except ProvgraphError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _cluster(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--cluster",
        nargs="?",
        const=None,
        default=None,
        type=parse_cluster,
        metavar="local:N|tcp://HOST:PORT",
        help="run the dataset job on N local worker processes or on the Dask scheduler at "
        "this address (no value: in this process); needs provgraph[distributed]",
    )
    p.add_argument(
        "--resume", default=None, metavar="FOLDER",
        help="keep each completed partition in FOLDER; a rerun recomputes only the rest",
    )
    p.add_argument(
        "--strict", action="store_true",
        help="stop at the first unreadable sample (default: report it and go on)",
    )


SHARED_OPTIONS: dict[str, AddOption] = {
    "target": _target,
    "semiring": _semiring,
    "rule": _rule,
    "theta": _theta,
    "init": _init,
    "backend": _backend,
    "input_shape": _input_shape,
    "max_memory": _max_memory,
    "output_name": _output_name,
    "cluster": _cluster,
}


def add_shared_options(p: argparse.ArgumentParser, names: Iterable[str]) -> None:
    """Add the shared options ``names`` (keys of :data:`SHARED_OPTIONS`) to ``p``."""
    for name in names:
        SHARED_OPTIONS[name](p)


def add_verbosity_options(p: argparse.ArgumentParser, suppress: bool = False) -> None:
    """``-q`` / ``-v``; with ``suppress`` a subcommand's copy leaves the top level's value alone."""
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "-q", "--quiet", dest="quiet", action="store_true",
        default=argparse.SUPPRESS if suppress else False,
        help="print results only: no notices, no progress bars",
    )
    group.add_argument(
        "-v", "--verbose", dest="verbose", action="count",
        default=argparse.SUPPRESS if suppress else 0,
        help="also print debug messages (backend selection, inputs read)",
    )


def rule_of(args: argparse.Namespace) -> str | None:
    """The rule or composite name the command line asks for (``None``: the semiring's default)."""
    return getattr(args, "composite", None) or getattr(args, "rule", None)


def init_of(args: argparse.Namespace) -> Any:
    """The output initialisation: ``"one"``, ``"logit"`` or a contrastive one (``--contrast``)."""
    if getattr(args, "contrast", None) is None:
        return args.init
    from provgraph.engine.initialisation import Contrastive

    return Contrastive(args.contrast, scale=args.init if args.init == "logit" else "one")


def backend_of(args: argparse.Namespace) -> Any:
    """The backend ``--backend``, ``--device``, ``--counting`` and ``--batch`` ask for."""
    batch = getattr(args, "batch", None)
    torch_wanted = args.device is not None or args.counting is not None or batch is not None
    if not torch_wanted:
        return args.backend
    if args.backend not in ("auto", "torch"):
        raise ProvgraphError(
            f"--device, --counting and --batch need the torch backend, not {args.backend!r}"
        )
    from provgraph.backends import get_backend

    options: dict[str, Any] = {"device": args.device or "cpu"}
    if args.counting:
        options["counting"] = args.counting
    return get_backend("torch", **options)


def job_options_of(args: argparse.Namespace) -> dict[str, Any]:
    """``cluster``, ``resume`` and ``strict`` of a dataset job, as
    :func:`provgraph.apps.distributed.run_job` takes them."""
    return {"cluster": getattr(args, "cluster", None), "resume": getattr(args, "resume", None),
            "strict": bool(getattr(args, "strict", False))}


def show_progress(args: argparse.Namespace) -> bool:
    """Progress bars are shown unless ``-q`` was given."""
    return not getattr(args, "quiet", False)
