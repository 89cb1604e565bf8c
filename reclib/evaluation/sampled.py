r"""Sampled ranking metrics: each test item is ranked among a few random negatives only.

This protocol was common in papers (for example ranking the held-out item among 100 sampled
items) and it is shown in the book as a pitfall, never used for headline numbers. Krichene and
Rendle showed that sampled metrics are not consistent with the full-ranking metrics they
stand in for: they are much higher, and they can order two models the other way round,
because with 100 negatives an item at rank 50 of 1,000 usually lands in the sampled "top 10".

Reference: W. Krichene, S. Rendle, "On sampled metrics for item recommendation", KDD 2020,
https://doi.org/10.1145/3394486.3403226.
"""

from __future__ import annotations

import numpy as np

import warnings

from .._validation import check_int, check_random_state
from ..core.ranking import default_batch_size
from ..interactions import Interactions
from ..models.base import Recommender
from .protocols import check_split_inputs


class SampledMetricWarning(UserWarning):
    """Issued by every call of :func:`evaluate_sampled_ranking`: its numbers are not full-ranking ones."""


def evaluate_sampled_ranking(model: Recommender, train: Interactions, test: Interactions,
                             k: int = 10, n_negatives: int = 100, random_state=0) -> dict:
    r"""Hit rate and nDCG at ``k`` when each test item competes with ``n_negatives`` samples.

    For every test pair :math:`(u, i)` whose user and item were seen in training,
    ``n_negatives`` items are drawn uniformly (with replacement) from the items that :math:`u`
    has in neither train nor test. The rank of :math:`i` among them is
    :math:`1 + |\{j : s_{uj} \ge s_{ui}\}|` (ties count against :math:`i`, so a constant
    score cannot look good), and with one relevant item per list

    .. math::

        \text{HR@}k = [\text{rank} \le k], \qquad
        \text{nDCG@}k = \frac{[\text{rank} \le k]}{\log_2(\text{rank} + 1)},

    averaged over test pairs (not users, which is how the sampled protocol is usually run).

    Parameters
    ----------
    model : Recommender
        Fitted on ``train``.
    train, test : Interactions
        ``test`` built with ``reference=train``.
    k : int
        Cut-off, ``1 <= k <= n_negatives + 1``.
    n_negatives : int
        Sampled negatives per test pair.
    random_state : int, Generator or None
        Seeds the negative sampling.

    Warns
    -----
    SampledMetricWarning
        Always: sampled hit rates and nDCG are not comparable with full-ranking results
        (filter the warning class where a page shows the pitfall on purpose).

    Returns
    -------
    dict
        ``"hit_rate@k"``, ``"ndcg@k"``, ``"mean_rank"`` (among ``n_negatives + 1``) and
        ``"n_pairs"``.
    """
    check_split_inputs(model, train, test)
    n_negatives = check_int("n_negatives", n_negatives, minimum=1)
    k = check_int("k", k, minimum=1, maximum=n_negatives + 1)
    rng = check_random_state(random_state)
    warnings.warn(f"evaluate_sampled_ranking ranks each test item among {n_negatives} sampled "
                  f"items only; its numbers are inflated and not comparable with full-ranking "
                  f"results (evaluate_ranking), and they can order models differently "
                  f"(Krichene and Rendle, KDD 2020)", SampledMetricWarning, stacklevel=2)
    known = test.subset(~test.unknown_mask)
    if known.n_interactions == 0:
        raise ValueError("test has no pairs whose user and item were seen in training")
    order = np.argsort(known.users, kind="stable")
    users, items = known.users[order], known.items[order]
    n_items = model.n_items
    # keys u * n_items + j of every pair the user has in train or test, sorted for lookup
    taken = np.unique(np.concatenate([train.users * n_items + train.items,
                                      users * n_items + items]))
    per_user = np.bincount(np.concatenate([train.users, users]), minlength=model.n_users)
    if (per_user[users] >= n_items).any():
        raise ValueError("a test user has interacted with every item: there are no negatives")
    negatives = rng.integers(n_items, size=(len(users), n_negatives))
    clash = _is_taken(users[:, None] * n_items + negatives, taken)
    while clash.any():                               # redraw negatives the user already has
        negatives[clash] = rng.integers(n_items, size=int(clash.sum()))
        clash = _is_taken(users[:, None] * n_items + negatives, taken)
    ranks = np.empty(len(users), dtype=np.int64)
    uniq, starts = np.unique(users, return_index=True)
    bounds = np.append(starts, len(users))
    step = default_batch_size(n_items)
    for b in range(0, len(uniq), step):
        scores = model.score_block(uniq[b:b + step], exclude_seen=False)
        if np.isnan(scores).any():
            raise ValueError(f"{type(model).__name__} produced NaN scores; NaN cannot be ranked")
        lo, hi = bounds[b], bounds[min(b + step, len(uniq))]
        row = np.searchsorted(uniq[b:b + step], users[lo:hi])
        positive = scores[row, items[lo:hi]]                        # (pairs,)
        sampled = scores[row[:, None], negatives[lo:hi]]            # (pairs, n_negatives)
        ranks[lo:hi] = 1 + (sampled >= positive[:, None]).sum(axis=1)
    hit = ranks <= k
    return {f"hit_rate@{k}": float(hit.mean()),
            f"ndcg@{k}": float(np.mean(np.where(hit, 1.0 / np.log2(ranks + 1), 0.0))),
            "mean_rank": float(ranks.mean()), "n_pairs": int(len(users))}


def _is_taken(keys: np.ndarray, taken: np.ndarray) -> np.ndarray:
    pos = np.minimum(np.searchsorted(taken, keys), len(taken) - 1)
    return taken[pos] == keys
