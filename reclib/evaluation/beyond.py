"""Beyond-accuracy metrics of recommendation lists: catalogue coverage and novelty."""

from __future__ import annotations

import numpy as np


def catalogue_coverage(recommended_items: np.ndarray, n_items: int) -> float:
    """Share of the catalogue that appears in at least one list.

    Parameters
    ----------
    recommended_items : ndarray of item indices, shape (n_users, k)
    n_items : int
        Size of the catalogue.
    """
    if n_items < 1:
        raise ValueError(f"n_items == {n_items}, must be >= 1")
    return len(np.unique(recommended_items)) / n_items


def novelty(recommended_items: np.ndarray, item_counts: np.ndarray, n_users: int) -> float:
    r"""Mean self-information of the recommended items, in bits.

    .. math:: \text{novelty} = \frac{1}{|L|} \sum_{i \in L} -\log_2 p_i,
              \qquad p_i = \frac{\max(n_i, 1)}{|U|},

    where :math:`n_i` is the number of training users of item :math:`i` and :math:`L` all
    recommended slots. Items no training user saw count as seen once, so the value stays
    finite (Vargas and Castells, RecSys 2011, use the same popularity-based definition).
    """
    counts = np.maximum(np.asarray(item_counts, dtype=np.float64), 1.0)
    return float(np.mean(-np.log2(counts[recommended_items] / n_users)))
