"""Synthetic implicit-feedback data with power-law popularity, for scale experiments.

Real logs have a long tail: a few items take most interactions. Here item ``j`` (after a
random relabelling) is drawn with probability proportional to ``(rank_j)^(-alpha)`` (a Zipf
law) and users with probability proportional to ``(rank_u)^(-user_alpha)``. The data are
honest about what they are: they exercise speed and memory, not model quality.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._validation import check_float, check_int, check_random_state


def _zipf_probabilities(n: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    weights = np.arange(1, n + 1, dtype=np.float64) ** -alpha
    return rng.permutation(weights / weights.sum())


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    # a plain sort: numpy's hash-based np.unique is several times slower on 10^7 int64 keys
    values = np.sort(values)
    return values[np.r_[True, values[1:] != values[:-1]]]


def synthetic_interactions(n_users: int, n_items: int, n_interactions: int, alpha: float = 1.0,
                           seed: int | None = 0, user_alpha: float = 0.5) -> pd.DataFrame:
    """Distinct (user, item) pairs with Zipf-distributed item popularity.

    Parameters
    ----------
    n_users, n_items : int
        Sizes of the id spaces (ids are ``0 .. n - 1``; a user or item may get no interaction).
    n_interactions : int
        Number of distinct pairs, at most half the matrix so that sampling stays cheap.
    alpha : float
        Zipf exponent of item popularity (0 = uniform; about 1 looks like MovieLens).
    seed : int, optional
    user_alpha : float
        Zipf exponent of user activity.

    Returns
    -------
    DataFrame
        ``user_id`` and ``item_id`` (int32), ``rating`` (float32, all 1.0) and ``timestamp``
        (int32, seconds): 16 bytes per interaction, 160 MB for 10 million.
    """
    n_users = check_int("n_users", n_users, minimum=1)
    n_items = check_int("n_items", n_items, minimum=1)
    n_interactions = check_int("n_interactions", n_interactions, minimum=1)
    if n_interactions > n_users * n_items // 2:
        raise ValueError(f"n_interactions == {n_interactions}, must be <= n_users * n_items / 2 "
                         f"= {n_users * n_items // 2} for a sparse sample")
    alpha = check_float("alpha", alpha, minimum=0.0)
    user_alpha = check_float("user_alpha", user_alpha, minimum=0.0)
    rng = check_random_state(seed)
    # inverse-CDF sampling: much faster than rng.choice(p=...) for tens of millions of draws
    cdf_user = np.cumsum(_zipf_probabilities(n_users, user_alpha, rng))
    cdf_item = np.cumsum(_zipf_probabilities(n_items, alpha, rng))
    keys = np.empty(0, dtype=np.int64)
    acceptance = 1.0  # share of fresh draws that turn out to be new pairs, learnt as we go
    for _ in range(50):
        missing = n_interactions - len(keys)
        if missing <= 0:
            break
        draw = int(missing / max(acceptance, 0.05) * 1.1) + 16
        users = np.minimum(np.searchsorted(cdf_user, rng.random(draw)), n_users - 1)
        items = np.minimum(np.searchsorted(cdf_item, rng.random(draw)), n_items - 1)
        before = len(keys)
        keys = _sorted_unique(np.concatenate([keys, users.astype(np.int64) * n_items + items]))
        acceptance = (len(keys) - before) / draw
    if len(keys) < n_interactions:
        raise ValueError(f"could not draw {n_interactions} distinct pairs: popularity is too "
                         f"concentrated (alpha == {alpha}) for this matrix; lower alpha")
    if len(keys) > n_interactions:
        keep = np.zeros(len(keys), dtype=bool)
        keep[rng.permutation(len(keys))[:n_interactions]] = True
        keys = keys[keep]
    return pd.DataFrame({
        "user_id": (keys // n_items).astype(np.int32),
        "item_id": (keys % n_items).astype(np.int32),
        "rating": np.ones(n_interactions, dtype=np.float32),
        "timestamp": rng.integers(0, 10**9, size=n_interactions, dtype=np.int32),
    })
