r"""The cold-item protocol (see the book's *Evaluation protocols* appendix): items held out of training entirely.

A random ``fraction`` of the items is *cold*: every interaction with them goes to the test
set and none to training, while both sets keep the whole catalogue in their id maps (so a
model knows the cold items exist, and whatever side information they carry, but has no
interaction with them). Each user's test items are then ranked among the cold items only:

.. math::

    \text{HR@}k = \big[\,\text{top-}k_u \cap T_u \neq \emptyset\,\big], \qquad
    \text{nDCG@}k = \frac{\sum_{j \le k} [\pi_u(j) \in T_u] / \log_2(j + 1)}
                       {\sum_{j \le \min(k, |T_u|)} 1 / \log_2(j + 1)},

with :math:`T_u` the user's cold test items and :math:`\pi_u` the model's order of the cold
items. A collaborative model learns nothing about a cold item, so it gives them all the
same score. Ties among the cold items are broken in a seeded random order, not by item
index: MovieLens numbers its items roughly by popularity, so the index order would smuggle
popularity into a model that knows nothing.
"""

from __future__ import annotations

import numpy as np

from ..core.ranking import topk
from .._validation import check_float, check_int, check_random_state
from ..evaluation.metrics import per_user_hit_rate, per_user_ndcg
from ..interactions import Interactions


def cold_item_split(data: Interactions, fraction: float = 0.15, random_state=0):
    """``(train, test, cold_items)``: the interactions of a random ``fraction`` of items are test.

    ``cold_items`` are item *indices* (shared by ``train`` and ``test``).
    """
    if not isinstance(data, Interactions):
        raise TypeError(f"data must be an Interactions, got {type(data).__name__}")
    fraction = check_float("fraction", fraction, minimum=0.0, maximum=1.0)
    n_cold = int(round(fraction * data.n_items))
    if not 1 <= n_cold < data.n_items:
        raise ValueError(f"fraction == {fraction} holds out {n_cold} of {data.n_items} items; "
                         f"it must leave at least one item on each side")
    rng = check_random_state(random_state)
    cold = np.sort(rng.choice(data.n_items, size=n_cold, replace=False))
    is_cold = np.zeros(data.n_items, dtype=bool)
    is_cold[cold] = True
    rows = is_cold[data.items]
    return data.subset(~rows), data.subset(rows), cold


def evaluate_cold_items(model, train: Interactions, test: Interactions, cold_items,
                        k: int = 10, random_state=0) -> dict:
    """HR@k and nDCG@k of ranking the cold items for each test user with training history.

    ``model`` is fitted on ``train`` (its catalogue includes the cold items). Also returns
    ``"cold_share@k"``: the share of cold items in the full-catalogue top-k lists (training
    items excluded), which is zero for a model that cannot score them.
    """
    # a seeded shuffle: top_k breaks ties by position, which is now random, not the item index
    cold_items = check_random_state(random_state).permutation(np.asarray(cold_items,
                                                                         dtype=np.int64))
    k = check_int("k", k, minimum=1, maximum=len(cold_items))
    has_train = np.bincount(train.users, minlength=train.n_users) > 0
    relevant = test.to_csr(binary=True)
    n_relevant = np.diff(relevant.indptr)
    users = np.flatnonzero(has_train & (n_relevant > 0))
    if len(users) == 0:
        raise ValueError("no test user has training interactions")
    scores = model.score_block(users, exclude_seen=False)
    idx, _ = topk(scores[:, cold_items], k, source=type(model).__name__)
    hits = np.take_along_axis(relevant[users][:, cold_items].toarray() > 0, idx, axis=1)
    full_idx, _ = model._rank(users, k, exclude_seen=True)
    is_cold = np.zeros(train.n_items, dtype=bool)
    is_cold[cold_items] = True
    return {f"hit_rate@{k}": float(per_user_hit_rate(hits, n_relevant[users]).mean()),
            f"ndcg@{k}": float(per_user_ndcg(hits, n_relevant[users]).mean()),
            f"cold_share@{k}": float(is_cold[full_idx].mean()), "n_users": int(len(users))}
