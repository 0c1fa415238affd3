"""The annotated network drawn as the seed's Figure 5: neurons, relevant edges, the top paths.

Columns are the input and the output of every linear op (activations and routing do not get a
column of their own: their neurons are the linear op's). A neuron is filled when the Boolean
semiring finds a relevant path from it to the class; an edge ``j → k`` of a linear op is drawn
dark when it lies on such a path (``Θ(r_jk) = ⊤`` and ``R_k = ⊤``, with the seed's threshold
Θ), light otherwise; the ``k`` best paths are drawn on top, coloured by their score (colour bar).
A network with more than ``max_neurons`` neurons in a column is drawn reduced to the neurons on
the top paths.
"""

from __future__ import annotations

from pathlib import Path as FilePath

from provgraph.apps.paths import PathResult
from provgraph.io.heatmaps import save_figure

MAX_NEURONS = 40


def _columns(result: PathResult) -> tuple[list[str], dict[str, str]]:
    """Column tensors, and every tensor's column (through passthrough and routing ops)."""
    net = result.graph.network
    columns = [net.input_name] + [op.output for op in net.linear_ops]
    alias = {t: t for t in columns}
    for op in net.ops:
        if op.output not in alias and op.inputs and op.inputs[0] in alias \
                and net.size(op.output) == net.size(op.inputs[0]):
            alias[op.output] = alias[op.inputs[0]]
    return columns, alias


def draw_annotated_network(result: PathResult, path: str | FilePath,
                           max_neurons: int = MAX_NEURONS, threshold: float = 1e-9) -> bool:
    """Write the figure to ``path``; return whether every neuron was drawn (else only those on
    the top paths)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import cm, colors

    from provgraph.algebra.rules import get_rule

    graph, net = result.graph, result.graph.network
    columns, alias = _columns(result)
    full = all(net.size(t) <= max_neurons for t in columns)
    on_paths: dict[str, set[int]] = {t: set() for t in columns}
    for p in result.paths:
        for t, i in p.neurons:
            if t in columns:
                on_paths[t].add(i)
    shown = {t: list(range(net.size(t))) if full else sorted(on_paths[t]) for t in columns}
    pos = {}
    for c, t in enumerate(columns):
        n = max(len(shown[t]), 1)
        for r, i in enumerate(shown[t]):
            pos[(t, i)] = (c, (n - 1) / 2 - r)
    boolean = graph.aggregate("boolean", target=result.target, backend="scipy", theta=threshold)
    fig, ax = plt.subplots(figsize=(2.2 * len(columns) + 2, 0.28 * max(map(len, shown.values()))
                                    + 3))
    for op in net.linear_ops:
        (block, *_), _ = graph.blocks(op, get_rule("lrp0"))  # the Boolean default rule
        src = alias.get(block.input)
        if src is None or block.matrix is None:
            continue
        m = block.matrix.tocoo()
        relevant_k = boolean.tensors[op.output][:, 0].astype(bool)
        for j, k, r in zip(m.row, m.col, m.data):
            a, b = pos.get((src, int(j))), pos.get((op.output, int(k)))
            if a is None or b is None:
                continue
            hot = r >= threshold and relevant_k[k]
            ax.plot([a[0], b[0]], [a[1], b[1]], color="0.15" if hot else "0.85",
                    lw=0.9 if hot else 0.4, zorder=1)
    norm = colors.Normalize(0, max([p.score for p in result.paths], default=1.0) or 1.0)
    cmap = matplotlib.colormaps["plasma"]
    for p in reversed(result.paths):
        pts = [pos[(alias[t], i)] for t, i in p.neurons if t in columns and (t, i) in pos]
        ax.plot([q[0] for q in pts], [q[1] for q in pts], color=cmap(norm(p.score)), lw=3,
                alpha=0.85, zorder=3)
    for t in columns:
        rel = boolean.tensors.get(t)
        for i in shown[t]:
            x, y = pos[(t, i)]
            filled = rel is not None and bool(rel[i, 0])
            ax.scatter([x], [y], s=60, zorder=4, edgecolors="k",
                       facecolors="k" if filled else "w")
            if not full:
                ax.annotate(str(i), (x, y), xytext=(5, 3), textcoords="offset points",
                            fontsize=7)
    ax.set_xticks(range(len(columns)))
    ax.set_xticklabels([("input" if t == net.input_name else t) + f"\n({net.size(t)})"
                        for t in columns], fontsize=8)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, fraction=0.04,
                 label=f"path score (top {len(result.paths)}, k-best)")
    what = "all neurons" if full else "neurons on the top paths"
    ax.set_title(f"Annotated network (Boolean, Θ = r ≥ {threshold:g}): class {result.target}, "
                 f"source {result.source[0]}[{result.source[1]}]; {what}", fontsize=9)
    save_figure(fig, path)
    return full
