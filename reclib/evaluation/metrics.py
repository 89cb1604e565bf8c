"""Rating and ranking metrics.

Ranking metrics are computed from a *hit matrix*: ``hits[u, j]`` is true when the item at rank
``j + 1`` of user ``u``'s list is relevant, and ``n_relevant[u]`` is the number of relevant
items of ``u`` (all of the user's test items, including items the model never saw: they can
never be hit, but they count). Every metric below is the mean over users of a per-user value.
Gains are binary and discounts are ``log2(rank + 1)``.

The list-based functions (``precision_at_k(recommended, relevant, k)`` and friends) accept
ranked lists of any ids and a collection of relevant ids per user; they build the hit matrix
and call the same code the fixed protocol uses.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_choice, check_int


# ---------------------------------------------------------------------- rating metrics
def _check_pair(y_true, y_pred):
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {y_true.shape} but y_pred has shape {y_pred.shape}")
    if y_true.size == 0:
        raise ValueError("y_true is empty: there is nothing to score")
    for name, arr in (("y_true", y_true), ("y_pred", y_pred)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} has {int((~np.isfinite(arr)).sum())} NaN or infinite values")
    return y_true, y_pred


def rmse(y_true, y_pred) -> float:
    r"""Root mean squared error, :math:`\sqrt{\frac{1}{n}\sum (r - \hat r)^2}`."""
    y_true, y_pred = _check_pair(y_true, y_pred)
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)))


def mae(y_true, y_pred) -> float:
    r"""Mean absolute error, :math:`\frac{1}{n}\sum |r - \hat r|`."""
    y_true, y_pred = _check_pair(y_true, y_pred)
    return float(np.mean(np.abs(y_true - y_pred)))


# ---------------------------------------------------------------------- per-user ranking values
def _discounts(k: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, k + 2))


def per_user_precision(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    r"""Precision@k: :math:`|\text{top-}k \cap R_u| / k` (the divisor is always ``k``)."""
    return hits.sum(axis=1) / hits.shape[1]


def per_user_recall(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    r"""Recall@k: :math:`|\text{top-}k \cap R_u| / |R_u|`."""
    return hits.sum(axis=1) / n_relevant


def per_user_ndcg(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    r"""nDCG@k with binary gains:
    :math:`\sum_{j \le k} h_j / \log_2(j+1)` over its ideal
    :math:`\sum_{j \le \min(k, |R_u|)} 1 / \log_2(j+1)`.
    """
    k = hits.shape[1]
    disc = _discounts(k)
    dcg = hits @ disc
    ideal = np.cumsum(disc)[np.minimum(n_relevant, k) - 1]
    return dcg / ideal


def per_user_average_precision(hits: np.ndarray, n_relevant: np.ndarray,
                               denominator: str = "min") -> np.ndarray:
    r"""Average precision at k, :math:`\frac{1}{D_u}\sum_{j \le k} P@j \cdot h_j`.

    ``denominator="min"``: :math:`D_u = \min(k, |R_u|)`, so a perfect list scores 1 (the
    usual MAP@k, as in Spark's ``meanAveragePrecisionAt``).
    ``denominator="relevant"``: :math:`D_u = |R_u|`, the older convention (Microsoft
    Recommenders' ``map``); it cannot reach 1 when a user has more than ``k`` relevant items.
    """
    check_choice("denominator", denominator, {"min", "relevant"})
    k = hits.shape[1]
    precision_at_j = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    total = (precision_at_j * hits).sum(axis=1)
    divisor = np.minimum(n_relevant, k) if denominator == "min" else n_relevant
    return total / divisor


def per_user_hit_rate(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Hit rate@k: 1 when at least one relevant item is in the top k."""
    return hits.any(axis=1).astype(np.float64)


def per_user_reciprocal_rank(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Reciprocal rank of the first relevant item within the top k (0 when there is none)."""
    first = np.argmax(hits, axis=1)
    return np.where(hits.any(axis=1), 1.0 / (first + 1), 0.0)


RANKING_METRICS = {
    "precision": per_user_precision,
    "recall": per_user_recall,
    "ndcg": per_user_ndcg,
    "map": lambda h, n: per_user_average_precision(h, n, "min"),
    "map_rel": lambda h, n: per_user_average_precision(h, n, "relevant"),
    "hit_rate": per_user_hit_rate,
    "mrr": per_user_reciprocal_rank,
}
"""Name -> per-user function; the protocol reports each as ``"<name>@<k>"``."""


def check_hits(hits, n_relevant):
    """Validate a hit matrix and its relevant counts; return them as arrays."""
    hits = np.asarray(hits, dtype=bool)
    n_relevant = np.asarray(n_relevant, dtype=np.int64)
    if hits.ndim != 2 or hits.shape[1] < 1:
        raise ValueError(f"hits must be a 2-D (n_users, k) array with k >= 1, got {hits.shape}")
    if n_relevant.shape != (hits.shape[0],):
        raise ValueError(f"n_relevant has shape {n_relevant.shape}, expected ({hits.shape[0]},)")
    if (n_relevant < 1).any():
        raise ValueError(f"{int((n_relevant < 1).sum())} user(s) have no relevant items; their "
                         f"recall and nDCG are undefined, leave them out")
    if (hits.sum(axis=1) > n_relevant).any():
        raise ValueError("some users have more hits than relevant items")
    return hits, n_relevant


def ranking_metrics(hits, n_relevant, metrics=None) -> dict:
    """Mean of each named per-user metric over users; keys look like ``"ndcg@10"``."""
    hits, n_relevant = check_hits(hits, n_relevant)
    names = list(RANKING_METRICS) if metrics is None else list(metrics)
    for name in names:
        check_choice("metrics", name, set(RANKING_METRICS))
    k = hits.shape[1]
    return {f"{name}@{k}": float(np.mean(RANKING_METRICS[name](hits, n_relevant)))
            for name in names}


# ---------------------------------------------------------------------- list interface
def hits_from_lists(recommended, relevant, k: int):
    """Hit matrix and relevant counts from ranked lists and relevant collections.

    Parameters
    ----------
    recommended : sequence of sequences
        ``recommended[u]`` is user ``u``'s ranked list (best first); only the first ``k``
        entries are used; a shorter list counts its missing places as misses.
    relevant : sequence of collections
        ``relevant[u]`` holds the ids relevant to user ``u``; it must not be empty.
    k : int
        The cut-off, ``>= 1``.
    """
    k = check_int("k", k, minimum=1)
    for name, value in (("recommended", recommended), ("relevant", relevant)):
        if isinstance(value, (str, bytes)):
            raise TypeError(f"{name} is a string ({value!r}); it must be a sequence of lists, "
                            f"one per user")
    if len(recommended) != len(relevant):
        raise ValueError(f"recommended has {len(recommended)} users but relevant has "
                         f"{len(relevant)}")
    hits = np.zeros((len(recommended), k), dtype=bool)
    n_relevant = np.empty(len(recommended), dtype=np.int64)
    for u, (ranked, rel) in enumerate(zip(recommended, relevant)):
        for name, value in (("recommended", ranked), ("relevant", rel)):
            if isinstance(value, (str, bytes)):
                raise TypeError(f"{name}[{u}] is the string {value!r}, not a list of ids; wrap "
                                f"a single id in a list ([{value!r}]) instead of letting it be "
                                f"read character by character")
        rel = set(rel)
        ranked = list(ranked)[:k]
        if len(set(ranked)) != len(ranked):
            raise ValueError(f"recommended[{u}] repeats an item: {ranked}")
        hits[u, :len(ranked)] = [item in rel for item in ranked]
        n_relevant[u] = len(rel)
    return hits, n_relevant


def _list_metric(name):
    def metric(recommended, relevant, k: int = 10) -> float:
        hits, n_relevant = hits_from_lists(recommended, relevant, k)
        return ranking_metrics(hits, n_relevant, [name])[f"{name}@{k}"]
    metric.__name__ = f"{name}_at_k"
    metric.__doc__ = (f"Mean {name}@k over users from ranked lists; see "
                      f":func:`{RANKING_METRICS[name].__name__}` for the formula.")
    return metric


precision_at_k = _list_metric("precision")
recall_at_k = _list_metric("recall")
ndcg_at_k = _list_metric("ndcg")
hit_rate_at_k = _list_metric("hit_rate")
mrr_at_k = _list_metric("mrr")


def map_at_k(recommended, relevant, k: int = 10, denominator: str = "min") -> float:
    """Mean average precision at k from ranked lists.

    ``denominator`` picks the convention (see :func:`per_user_average_precision`): ``"min"``
    divides by ``min(k, |R_u|)``, ``"relevant"`` by ``|R_u|``.
    """
    check_choice("denominator", denominator, {"min", "relevant"})
    hits, n_relevant = hits_from_lists(recommended, relevant, k)
    name = "map" if denominator == "min" else "map_rel"
    return ranking_metrics(hits, n_relevant, [name])[f"{name}@{k}"]
