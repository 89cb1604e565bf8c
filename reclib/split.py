"""Train/test splits for the book's fixed evaluation protocols.

Every split returns :class:`~reclib.Interactions` objects: the training part gets its own id
maps, built from its rows only, and every held-out part is built with ``reference=train``, so
it shares those maps and keeps (and counts) the rows whose user or item training never saw.

========================  =====================================  ===========================
protocol                  split                                  defaults
========================  =====================================  ===========================
rating (RMSE, MAE)        :func:`kfold`                          5 folds, shuffled, seed 0
top-N (precision, nDCG)   :func:`stratified_split`               75/25 per user, seed 42
sequential (HR, NDCG)     :func:`leave_last_out`                 last item per user
========================  =====================================  ===========================
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from ._validation import check_bool, check_float, check_int, check_random_state
from .interactions import Interactions


def _as_interactions(data) -> Interactions:
    if isinstance(data, Interactions):
        if data.unknown_mask.any():
            raise ValueError("data has rows with unknown ids; split the full data set, "
                             "not a test set built against a reference")
        return data
    if isinstance(data, pd.DataFrame):
        return Interactions.from_dataframe(data)
    raise TypeError(f"data must be a DataFrame or an Interactions, got {type(data).__name__}")


def _pair(full: Interactions, train_rows: np.ndarray, *held_out_rows: np.ndarray):
    """Rebuild the training rows with their own maps, and the held-out rows against them."""
    if full.unknown_mask.any():
        raise ValueError("data has rows with unknown ids; split the full data set, "
                         "not a test set built against a reference")
    if len(train_rows) == 0 or any(len(rows) == 0 for rows in held_out_rows):
        raise ValueError(f"this split of {full.n_interactions} interactions leaves a part empty "
                         f"(train {len(train_rows)}, held out "
                         f"{[len(rows) for rows in held_out_rows]}); the data are too small")
    # The training part gets its own maps (the ids its rows use, in the old order) by index
    # arithmetic: no raw id is looked up again. Held-out rows whose user or item training
    # never saw get index -1, and their raw ids are kept for the unknown-id counts.
    users, items = full.users[train_rows], full.items[train_rows]
    user_map, user_new = full.user_map.compact(users)
    item_map, item_new = full.item_map.compact(items)

    def table(features, used):
        return None if features is None else features.iloc[used].reset_index(drop=True)

    train = Interactions(user_new[users], item_new[items], full.ratings[train_rows],
                         None if full.timestamps is None else full.timestamps[train_rows],
                         user_map, item_map,
                         user_features=table(full.user_features, np.unique(users)),
                         item_features=table(full.item_features, np.unique(items)))
    held = []
    for rows in held_out_rows:
        old_u, old_i = full.users[rows], full.items[rows]
        u, i = user_new[old_u], item_new[old_i]
        held.append(Interactions(
            u, i, full.ratings[rows], None if full.timestamps is None else full.timestamps[rows],
            user_map, item_map, raw_unknown_users=full.user_map.ids[old_u[u < 0]],
            raw_unknown_items=full.item_map.ids[old_i[i < 0]],
            user_features=train.user_features, item_features=train.item_features))
    return (train, *held)


def kfold(data, n_splits: int = 5, seed: int | None = 0) -> Iterator[tuple[Interactions, Interactions]]:
    """K-fold cross-validation over interactions (the rating protocol).

    The rows are shuffled once with ``seed`` and cut into ``n_splits`` folds of (almost)
    equal size; fold ``f`` is the test set of split ``f``. Users and items that appear only in
    the test fold stay in it, with index ``-1``; rating models fall back to the parts of the
    prediction they know (for example ``mu + b_i`` for an unknown user), as Surprise does.

    Yields
    ------
    (train, test) : tuple of Interactions
    """
    full = _as_interactions(data)
    n_splits = check_int("n_splits", n_splits, minimum=2, maximum=full.n_interactions)
    order = check_random_state(seed, "seed").permutation(full.n_interactions)
    for test_rows in np.array_split(order, n_splits):
        train_mask = np.ones(full.n_interactions, dtype=bool)
        train_mask[test_rows] = False
        yield _pair(full, np.flatnonzero(train_mask), np.sort(test_rows))


def stratified_split(data, ratio: float = 0.75, seed: int | None = 42) -> tuple[Interactions, Interactions]:
    """Per-user random split (the top-N protocol).

    Each user's interactions are shuffled and the first ``round(ratio * n_u)`` go to training
    (rounding half up), so every user keeps about ``ratio`` of their history in training and is
    evaluated on the rest. A user with a single interaction keeps it in training.
    """
    full = _as_interactions(data)
    ratio = check_float("ratio", ratio, minimum=0.0, maximum=1.0)
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"ratio == {ratio}, must be strictly between 0 and 1")
    key = check_random_state(seed, "seed").random(full.n_interactions)
    order = np.lexsort((key, full.users))
    rank = _rank_within_user(full.users[order])
    counts = np.bincount(full.users, minlength=full.n_users)[full.users[order]]
    n_train = np.maximum(np.floor(ratio * counts + 0.5), 1)
    train_rows = np.sort(order[rank < n_train])
    test_rows = np.sort(order[rank >= n_train])
    return _pair(full, train_rows, test_rows)


def leave_last_out(data, validation: bool = False):
    """Per-user split by time (the sequential protocol).

    Each user's last interaction (by timestamp; ties keep the data's row order) is the test
    item; with ``validation=True`` the second-to-last is the validation item. Users with too
    few interactions to give one to every part keep them all in training.

    Returns
    -------
    (train, test) or (train, validation, test) : tuple of Interactions
    """
    full = _as_interactions(data)
    validation = check_bool("validation", validation)
    if full.timestamps is None:
        raise ValueError("leave_last_out needs timestamps, and data has none")
    order = np.lexsort((np.arange(full.n_interactions), full.timestamps, full.users))
    users_sorted = full.users[order]
    counts = np.bincount(full.users, minlength=full.n_users)[users_sorted]
    from_end = counts - 1 - _rank_within_user(users_sorted)  # 0 = the user's last interaction
    n_held = 2 if validation else 1
    eligible = counts > n_held
    test_rows = np.sort(order[eligible & (from_end == 0)])
    if validation:
        valid_rows = np.sort(order[eligible & (from_end == 1)])
        train_rows = np.sort(order[~eligible | (from_end >= 2)])
        return _pair(full, train_rows, valid_rows, test_rows)
    train_rows = np.sort(order[~eligible | (from_end >= 1)])
    return _pair(full, train_rows, test_rows)


def temporal_split(data, ratio: float = 0.8) -> tuple[Interactions, Interactions]:
    """Global time cut: the earliest ``ratio`` of all interactions train, the rest test."""
    full = _as_interactions(data)
    ratio = check_float("ratio", ratio, minimum=0.0, maximum=1.0)
    if full.timestamps is None:
        raise ValueError("temporal_split needs timestamps, and data has none")
    order = np.argsort(full.timestamps, kind="stable")
    n_train = int(round(ratio * full.n_interactions))
    if not 0 < n_train < full.n_interactions:
        raise ValueError(f"ratio == {ratio} leaves one side empty")
    return _pair(full, np.sort(order[:n_train]), np.sort(order[n_train:]))


def per_user_holdout(data: Interactions, fraction: float, random_state=None):
    """Hold out ``fraction`` of each user's rows at random (every user keeps at least one).

    Used to carve a validation set out of a training set for early stopping; both parts keep
    ``data``'s id maps. Each user with ``n`` rows gives ``min(round(fraction * n), n - 1)``
    of them (rounding half up).

    Returns
    -------
    (kept, held_out) : tuple of Interactions
    """
    fraction = check_float("fraction", fraction, minimum=0.0, maximum=1.0)
    rng = check_random_state(random_state)
    key = rng.random(data.n_interactions)
    order = np.lexsort((key, data.users))
    counts = np.bincount(data.users, minlength=data.n_users)
    rank = _rank_within_user(data.users[order])
    n_held = np.minimum(np.floor(fraction * counts + 0.5).astype(np.int64), counts - 1)
    held = np.zeros(data.n_interactions, dtype=bool)
    held[order[rank < n_held[data.users[order]]]] = True
    if not held.any():
        raise ValueError(f"validation_fraction == {fraction} holds out no interaction of "
                         f"this data; raise it or set it to 0")
    return data.subset(~held), data.subset(held)


def _rank_within_user(users_sorted: np.ndarray) -> np.ndarray:
    """Position of each row inside its run of equal user indices (input sorted by user)."""
    n = len(users_sorted)
    starts = np.r_[0, np.flatnonzero(np.diff(users_sorted)) + 1]
    run_start = np.repeat(starts, np.diff(np.r_[starts, n]))
    return np.arange(n) - run_start
