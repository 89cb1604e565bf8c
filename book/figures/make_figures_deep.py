"""Draw the schematic figures of chapters 5, 5b and 6 into book/figures/.

Run from anywhere: ``python book/figures/make_figures_deep.py``. Each figure is drawn by
matplotlib from the description below, so changing a figure means changing this script.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

HERE = Path(__file__).resolve().parent
plt.rcParams.update({"font.size": 10, "savefig.dpi": 150})
COLOURS = {"input": "#dde6f2", "embed": "#cfe8cf", "op": "#fbe3c2", "out": "#f4cccc",
           "layer": "#e6dcf0"}


def box(ax, x, y, text, kind="op", w=1.6, h=0.5):
    """A rounded box centred at (x, y); returns its centre for arrows."""
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.04",
                                fc=COLOURS[kind], ec="0.3", lw=0.8))
    ax.text(x, y, text, ha="center", va="center", fontsize=9)
    return x, y, w, h


def arrow(ax, a, b):
    """An arrow from the top of box a to the bottom of box b."""
    (xa, ya, _, ha), (xb, yb, _, hb) = a, b
    ax.add_patch(FancyArrowPatch((xa, ya + ha / 2), (xb, yb - hb / 2), arrowstyle="-|>",
                                 mutation_scale=9, lw=0.8, color="0.25"))


def canvas(width, height, xlim, ylim):
    fig, ax = plt.subplots(figsize=(width, height))
    ax.set(xlim=xlim, ylim=ylim)
    ax.axis("off")
    return fig, ax


def save(fig, name):
    fig.savefig(HERE / name, bbox_inches="tight")
    plt.close(fig)


def neumf():
    fig, ax = canvas(6.4, 4.4, (-0.2, 8.2), (-0.4, 6.4))
    user = box(ax, 2, 0, "user id $u$", "input", w=1.8)
    item = box(ax, 6, 0, "item id $i$", "input", w=1.8)
    pg = box(ax, 0.9, 1.3, "GMF $p_u$", "embed", w=1.5)
    qg = box(ax, 2.7, 1.3, "GMF $q_i$", "embed", w=1.5)
    pm = box(ax, 5.3, 1.3, "MLP $p_u$", "embed", w=1.5)
    qm = box(ax, 7.1, 1.3, "MLP $q_i$", "embed", w=1.5)
    for src, dst in ((user, pg), (item, qg), (user, pm), (item, qm)):
        arrow(ax, src, dst)
    prod = box(ax, 1.8, 2.8, r"$p_u \odot q_i$", "op")
    cat = box(ax, 6.2, 2.6, "concatenate", "op")
    arrow(ax, pg, prod), arrow(ax, qg, prod), arrow(ax, pm, cat), arrow(ax, qm, cat)
    layer = cat
    for n, y in enumerate((3.4, 4.2), start=1):
        nxt = box(ax, 6.2, y, rf"$\phi(W_{n} \cdot + \mathbf{{b}}_{n})$", "layer", w=1.9, h=0.45)
        arrow(ax, layer, nxt)
        layer = nxt
    join = box(ax, 4, 5.1, "concatenate, weight by $h$", "op", w=2.8)
    arrow(ax, prod, join), arrow(ax, layer, join)
    out = box(ax, 4, 6.0, r"$\hat x_{ui} = \sigma(\cdot)$", "out", w=2.0)
    arrow(ax, join, out)
    ax.text(0.0, 4.3, "GMF branch:\nelement-wise\nproduct", fontsize=8, color="0.3")
    ax.text(7.5, 3.2, "MLP\nbranch", fontsize=8, color="0.3")
    save(fig, "neumf.png")


def deepfm():
    fig, ax = canvas(6.4, 4.0, (-0.2, 8.2), (-0.4, 5.6))
    names = ["user id", "age, job", "item id", "genres"]
    fields = [box(ax, 1 + 2 * n, 0, name, "input", w=1.6) for n, name in enumerate(names)]
    embeds = [box(ax, 1 + 2 * n, 1.3, f"$e_{n}$", "embed", w=1.0) for n in range(4)]
    for f, e in zip(fields, embeds):
        arrow(ax, f, e)
    ax.text(8.0, 0.65, r"$e = \sum_a v_a \mathbf{x}_a$ over the field", fontsize=8,
            ha="right", va="center", color="0.3")
    fm = box(ax, 2, 2.9, "FM: $w_0 + \\sum_a w_a \\mathbf{x}_a$\n+ all pairs $v_a^\\top v_{a'}$",
             "op", w=3.2, h=0.8)
    deep = box(ax, 6, 2.7, "concatenate\n$\\to$ MLP layers", "layer", w=2.4, h=0.8)
    for e in embeds:
        arrow(ax, e, fm), arrow(ax, e, deep)
    out = box(ax, 4, 4.6, "$\\hat x_{ui}$ = FM part + deep part", "out", w=3.4)
    arrow(ax, fm, out), arrow(ax, deep, out)
    ax.text(4, 5.25, "one set of feature factors $v_a$ feeds both parts", ha="center",
            fontsize=8, color="0.3")
    save(fig, "deepfm.png")


def two_tower():
    fig, ax = canvas(6.4, 4.0, (-0.2, 8.2), (-0.4, 5.6))
    uf = box(ax, 1.8, 0, "user features\n(id, age, job)", "input", w=2.4, h=0.7)
    itf = box(ax, 6.2, 0, "item features\n(id, genres, decade)", "input", w=2.6, h=0.7)
    ut = box(ax, 1.8, 1.5, "user tower $g$\n(embeddings, MLP)", "layer", w=2.4, h=0.7)
    it = box(ax, 6.2, 1.5, "item tower $g$\n(embeddings, MLP)", "layer", w=2.4, h=0.7)
    uv = box(ax, 1.8, 2.9, "unit vector in $\\mathbb{R}^d$", "embed", w=2.4)
    iv = box(ax, 6.2, 2.9, "unit vector in $\\mathbb{R}^d$", "embed", w=2.4)
    for a, b in ((uf, ut), (ut, uv), (itf, it), (it, iv)):
        arrow(ax, a, b)
    score = box(ax, 4, 4.1, "score = cosine / $\\tau$", "op", w=2.4)
    arrow(ax, uv, score), arrow(ax, iv, score)
    loss = box(ax, 4, 5.1, "in-batch softmax, minus $\\log \\pi_i$", "out", w=3.4)
    arrow(ax, score, loss)
    ax.text(7.2, 3.75, "computed once per item,\nstored in a search index", ha="center",
            fontsize=8, color="0.3")
    save(fig, "two_tower.png")


def bipartite():
    """A small user-item graph with its edge weights, and three layers of propagation."""
    R = np.array([[1, 1, 0, 0], [1, 0, 1, 0], [0, 1, 1, 1]])
    du, di = R.sum(1), R.sum(0)
    fig, (a, b) = plt.subplots(1, 2, figsize=(8.0, 3.2), gridspec_kw={"width_ratios": [1, 1.3]})
    ux, ix = np.linspace(0.5, 3.5, R.shape[0]), np.linspace(0, 4, R.shape[1])
    for u, i in zip(*np.nonzero(R)):
        a.plot([ux[u], ix[i]], [1, 0], color="0.6", lw=1, zorder=1)
        xm, ym = 0.7 * ux[u] + 0.3 * ix[i], 0.7
        a.text(xm, ym, f"{1 / np.sqrt(du[u] * di[i]):.2f}", fontsize=7, ha="center",
               bbox={"fc": "white", "ec": "none", "pad": 0.5})
    a.scatter(ux, np.ones_like(ux), s=380, c=COLOURS["input"], edgecolors="0.3", zorder=2)
    a.scatter(ix, np.zeros_like(ix), s=380, c=COLOURS["embed"], edgecolors="0.3", zorder=2)
    for u, x in enumerate(ux):
        a.text(x, 1, f"u{u}", ha="center", va="center", fontsize=8, zorder=3)
    for i, x in enumerate(ix):
        a.text(x, 0, f"i{i}", ha="center", va="center", fontsize=8, zorder=3)
    a.set(xlim=(-0.5, 4.5), ylim=(-0.35, 1.35),
          title="edge weight $1/\\sqrt{|\\mathcal{R}(u)|\\,|\\mathcal{R}(i)|}$")
    a.axis("off")
    b.axis("off")
    b.set(xlim=(-0.3, 8.3), ylim=(-0.6, 2.0), title="layers $E^{(l+1)} = \\tilde A E^{(l)}$")
    layers = [box(b, 0.8 + 2.1 * n, 0.2, f"$E^{{({n})}}$", "embed", w=1.2) for n in range(4)]
    for n in range(3):
        (x0, y0, w0, _), (x1, _, w1, _) = layers[n], layers[n + 1]
        b.add_patch(FancyArrowPatch((x0 + w0 / 2, y0), (x1 - w1 / 2, y0), arrowstyle="-|>",
                                    mutation_scale=9, lw=0.8, color="0.25"))
        b.text((x0 + x1) / 2, y0 + 0.3, "$\\tilde A$", ha="center", fontsize=9)
    mean = box(b, 4.0, 1.5, "mean of the $L + 1$ layers: final $E$", "out", w=4.2)
    for layer in layers:
        arrow(b, layer, mean)
    fig.tight_layout()
    save(fig, "bipartite_propagation.png")


if __name__ == "__main__":
    neumf()
    deepfm()
    two_tower()
    bipartite()
