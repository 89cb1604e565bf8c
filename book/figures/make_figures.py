"""Draw the book's schematic figures as SVG files next to this script.

Run ``python book/figures/make_figures.py`` after changing a figure; the SVGs are committed
so that the book builds without running this script. The drawings are schematic: the
matrices are small and random, only their shapes and patterns carry meaning.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

HERE = Path(__file__).resolve().parent
plt.rcParams.update({"font.size": 10, "svg.hashsalt": "reclib-figures",
                     "svg.fonttype": "none"})
OBSERVED, MISSING, TRAIN, TEST, FACTOR = "#3b75af", "#f2f2f2", "#3b75af", "#ef8636", "#7a5195"


def grid(ax, colours, x0, y0, title=None, cell=1.0):
    """Draw a matrix of coloured cells with its top-left corner at (x0, y0)."""
    rows, cols = colours.shape
    for r in range(rows):
        for c in range(cols):
            ax.add_patch(Rectangle((x0 + c * cell, y0 - (r + 1) * cell), cell, cell,
                                   facecolor=colours[r, c], edgecolor="white", linewidth=1))
    if title:
        ax.text(x0 + cols * cell / 2, y0 + 0.5, title, ha="center", va="bottom")


def factorisation(path: Path) -> None:
    """R (users x items, mostly missing) approximated by P (users x d) times Q^T (d x items)."""
    rng = np.random.default_rng(0)
    n_users, n_items, d = 8, 12, 3
    observed = rng.random((n_users, n_items)) < 0.3
    colours = np.where(observed, OBSERVED, MISSING)
    fig, ax = plt.subplots(figsize=(7.5, 3.0))
    grid(ax, colours, 0, n_users, "$R$: users $\\times$ items")
    ax.text(n_items + 1.0, n_users / 2, "$\\approx$", fontsize=20, ha="center", va="center")
    grid(ax, np.full((n_users, d), FACTOR, dtype=object), n_items + 2, n_users,
         "$P$: users $\\times$ $d$")
    ax.text(n_items + d + 2.6, n_users / 2, "$\\times$", fontsize=16, ha="center", va="center")
    grid(ax, np.full((d, n_items), FACTOR, dtype=object), n_items + d + 3.2, n_users,
         "$Q^\\top$: $d$ $\\times$ items")
    ax.text(0, -1.2, "blue: observed ratings $r_{ui}$ (the only cells the objective counts); "
            "grey: missing", fontsize=9)
    ax.text(n_items + d + 3.2, n_users - d - 1.0,
            "$\\hat r_{ui} = p_u^\\top q_i$:\nrow $u$ of $P$ times column $i$ of $Q^\\top$",
            fontsize=9, va="top")
    ax.set_xlim(-0.5, 2 * n_items + d + 4)
    ax.set_ylim(-2, n_users + 1.5)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.savefig(path, bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)


def split_protocols(path: Path) -> None:
    """Three ways to hold out interactions: k-fold, per-user ratio, global time cut."""
    rng = np.random.default_rng(1)
    n_users, n_items = 8, 12
    observed = rng.random((n_users, n_items)) < 0.45
    time = rng.random((n_users, n_items))
    fig, axes = plt.subplots(1, 3, figsize=(9.0, 3.2))
    # k-fold: every rating goes to one of five folds at random, whatever its user
    fold = rng.integers(0, 5, (n_users, n_items))
    kfold = np.where(observed, np.where(fold == 0, TEST, TRAIN), MISSING)
    # per-user: a quarter of each user's own interactions
    per_user = np.full((n_users, n_items), MISSING, dtype=object)
    for u in range(n_users):
        items = np.flatnonzero(observed[u])
        held = rng.choice(items, max(1, round(0.25 * len(items))), replace=False)
        per_user[u, items] = TRAIN
        per_user[u, held] = TEST
    # temporal: one cut in time for everyone, so some users are only in the test part
    time[5:] += 0.6
    cut = np.quantile(time[observed], 0.8)
    temporal = np.where(observed, np.where(time > cut, TEST, TRAIN), MISSING)
    titles = ["rating protocol: 5-fold CV\n(each rating in one fold)",
              "top-N protocol: 25% of\neach user's interactions",
              "chronological: the last 20%\nof all interactions"]
    for ax, colours, title in zip(axes, [kfold, per_user, temporal], titles):
        grid(ax, colours, 0, n_users)
        ax.set_title(title, fontsize=10)
        ax.set_xlim(-0.2, n_items + 0.2)
        ax.set_ylim(-0.2, n_users + 0.2)
        ax.set_aspect("equal")
        ax.axis("off")
    axes[0].text(-0.6, n_users / 2, "users", rotation=90, ha="right", va="center")
    axes[1].text(n_items / 2, -0.6, "items", ha="center", va="top")
    handles = [Rectangle((0, 0), 1, 1, facecolor=c) for c in (TRAIN, TEST, MISSING)]
    fig.legend(handles, ["training", "test", "no interaction"], loc="lower center", ncol=3,
               frameon=False)
    fig.subplots_adjust(bottom=0.12, top=0.82)
    fig.savefig(path, bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)


if __name__ == "__main__":
    factorisation(HERE / "factorisation.svg")
    split_protocols(HERE / "split_protocols.svg")
    print("wrote", HERE / "factorisation.svg", HERE / "split_protocols.svg")
