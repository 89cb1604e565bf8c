"""The fixed evaluation protocols of the book (see the book's *Evaluation protocols* appendix).

Top-N: every user with test interactions gets a full ranking of all items except the ones they
had in training; relevant items are *all* of the user's test items, including items that the
model never saw in training (they can never be recommended, and still count as missed). The
lists come from the model's own ranking path (the one ``recommend`` uses, through
:func:`reclib.core.topk`), so the protocol never re-implements masking or top-k.

Both protocols refuse inputs that would give a number without meaning: a test set that shares
interactions with training, a model fitted on other data, a test set built against other id
maps, and (for RMSE) a model that does not predict ratings.
"""

from __future__ import annotations

import warnings

import numpy as np

from .._validation import check_bool, check_int
from ..interactions import Interactions
from ..models.base import Recommender
from .beyond import catalogue_coverage, novelty
from .metrics import RANKING_METRICS, mae, ranking_metrics, rmse


class RatingResult(dict):
    """``{"rmse": ..., "mae": ...}``, plus what happened to the pairs with unknown ids.

    Attributes
    ----------
    n_pairs : int
        Test pairs scored.
    n_unknown_pairs : int
        Pairs whose user or item training never saw.
    fallback : str or None
        How the model predicted those pairs (``None`` when there were none).
    """

    n_pairs: int = 0
    n_unknown_pairs: int = 0
    fallback: str | None = None

    def __repr__(self) -> str:
        note = f"; {self.fallback}" if self.fallback else ""
        return f"{dict.__repr__(self)} ({self.n_pairs} pairs{note})"


def evaluate_ratings(model: Recommender, test: Interactions, clip: bool = True,
                     allow_unknown: bool = True, allow_non_rating: bool = False) -> RatingResult:
    """RMSE and MAE of a fitted rating model on a test set built with ``reference=train``.

    Parameters
    ----------
    model : Recommender
        Fitted; it must predict ratings (``model.predicts_ratings()``) unless
        ``allow_non_rating``.
    test : Interactions
        Built with ``reference=train``, so it shares the model's id maps.
    clip : bool
        Clip predictions to the training rating range (as Surprise does).
    allow_unknown : bool
        Pairs whose user or item training never saw are predicted from what the model knows
        (for example ``mu + b_i`` for a new user), as Surprise does; with ``False`` such pairs
        are an error.
    allow_non_rating : bool
        Score a model whose predictions are not ratings (popularity counts, EASE or iALS
        scores): the numbers then measure nothing useful, so this must be asked for.

    Returns
    -------
    RatingResult
        ``{"rmse", "mae"}``; its attributes ``n_pairs``, ``n_unknown_pairs`` and ``fallback``
        say how many pairs had unknown ids and how they were predicted.
    """
    _check_model(model)
    if not isinstance(test, Interactions):
        raise TypeError(f"test must be an Interactions, got {type(test).__name__}")
    allow_unknown = check_bool("allow_unknown", allow_unknown)
    if not check_bool("allow_non_rating", allow_non_rating) and not model.predicts_ratings():
        raise ValueError(f"{type(model).__name__} does not predict ratings (its scores only "
                         f"rank items), so its RMSE would mean nothing; evaluate it with "
                         f"evaluate_ranking, or pass allow_non_rating=True")
    if not (model.user_map_.same_as(test.user_map) and model.item_map_.same_as(test.item_map)):
        raise ValueError("test does not share the model's id maps; build it with "
                         "Interactions.from_dataframe(test_df, reference=train) from the "
                         "training set the model was fitted on")
    unknown = test.unknown_mask
    n_unknown = int(unknown.sum())
    if n_unknown and not allow_unknown:
        raise ValueError(f"test has {n_unknown} pairs with ids unknown to the model "
                         f"({test.n_unknown_users} users, {test.n_unknown_items} items); pass "
                         f"allow_unknown=True to predict them from what the model knows, or "
                         f"evaluate test.known()")
    y_hat = model.predict_indices(test.users, test.items, clip=clip)
    result = RatingResult(rmse=rmse(test.ratings, y_hat), mae=mae(test.ratings, y_hat))
    result.n_pairs, result.n_unknown_pairs = int(test.n_interactions), n_unknown
    if n_unknown:
        result.fallback = (f"{n_unknown} of {test.n_interactions} pairs have a user or item "
                           f"unknown to training ({test.n_unknown_users} users, "
                           f"{test.n_unknown_items} items); {type(model).__name__} predicted "
                           f"them with {model.unknown_fallback()}")
    return result


def evaluate_ranking(model: Recommender, train: Interactions, test: Interactions, k: int = 10,
                     metrics=None, batch_size: int | None = None) -> dict:
    """Top-N metrics at ``k`` with a full ranking over all items the user has not seen.

    Parameters
    ----------
    model : Recommender
        Fitted on ``train``.
    train, test : Interactions
        ``test`` built with ``reference=train``; it must not share a (user, item) pair with
        ``train``.
    k : int
        Cut-off, ``>= 1``.
    metrics : list of str, optional
        Names from :data:`~reclib.evaluation.metrics.RANKING_METRICS`; default all.
    batch_size : int, optional
        Users scored at once, which bounds memory at ``batch_size * n_items`` scores.

    Returns
    -------
    dict
        ``"precision@k"``, ``"recall@k"``, ``"ndcg@k"``, ``"map@k"``, ``"map_rel@k"``,
        ``"hit_rate@k"``, ``"mrr@k"``, plus ``"coverage@k"`` and ``"novelty@k"`` of the lists
        and ``"n_users"``, the number of users evaluated.
    """
    check_split_inputs(model, train, test)
    k = check_int("k", k, minimum=1, maximum=model.n_items)
    known_user = test.users >= 0
    if not known_user.all():
        warnings.warn(f"{test.n_unknown_users} test users never appear in train and cannot be "
                      f"ranked for; they are left out of the ranking metrics", stacklevel=2)
    n_relevant_all = np.bincount(test.users[known_user], minlength=train.n_users)
    users = np.flatnonzero(n_relevant_all)
    if len(users) == 0:
        raise ValueError("test has no interactions of users seen in training")
    top, _ = model._rank(users, k, exclude_seen=True, batch_size=batch_size)
    known = known_user & (test.items >= 0)
    relevant_keys = np.unique(test.users[known] * np.int64(train.n_items) + test.items[known])
    hits = _is_in(users[:, None] * np.int64(train.n_items) + top, relevant_keys)
    results = ranking_metrics(hits, n_relevant_all[users], metrics or list(RANKING_METRICS))
    item_counts = np.bincount(train.items, minlength=train.n_items)
    results[f"coverage@{k}"] = catalogue_coverage(top, model.n_items)
    results[f"novelty@{k}"] = novelty(top, item_counts, train.n_users)
    results["n_users"] = int(len(users))
    return results


def check_split_inputs(model, train, test) -> None:
    """Raise unless ``model`` was fitted on ``train`` and ``test`` is a held-out set of it.

    The checks, each with its own message: both are :class:`~reclib.Interactions`; ``test``
    is not ``train``; ``test`` shares train's id maps; the model's id maps and seen-item
    matrix are those of ``train``; no (user, item) pair is in both.
    """
    _check_model(model)
    for name, obj in (("train", train), ("test", test)):
        if not isinstance(obj, Interactions):
            raise TypeError(f"{name} must be an Interactions, got {type(obj).__name__}")
    if test is train:
        raise ValueError("test is train: the same object was passed twice; evaluate on the "
                         "held-out part of a split")
    if not test.shares_index_with(train):
        raise ValueError("test does not share train's id maps; build it with "
                         "Interactions.from_dataframe(test_df, reference=train)")
    if not (model.user_map_.same_as(train.user_map) and model.item_map_.same_as(train.item_map)):
        raise ValueError("model was not fitted on train (their id maps differ)")
    seen = train.to_csr(binary=True)
    if (seen.nnz != model.seen_.nnz or not np.array_equal(seen.indptr, model.seen_.indptr)
            or not np.array_equal(seen.indices, model.seen_.indices)):
        raise ValueError(f"model was not fitted on train: its seen-item matrix has "
                         f"{model.seen_.nnz} interactions and train has {seen.nnz} (or they "
                         f"differ); refit the model on train before evaluating")
    known = ~test.unknown_mask
    test_keys = test.users[known] * np.int64(train.n_items) + test.items[known]
    train_keys = np.unique(train.users * np.int64(train.n_items) + train.items)
    overlap = int(_is_in(test_keys, train_keys).sum())
    if overlap:
        share = "every" if overlap == len(test_keys) else f"{overlap} of the {len(test_keys)}"
        raise ValueError(f"test shares {share} (user, item) pairs with train; a test set must "
                         f"hold out interactions (was train passed as test, or the split "
                         f"built from overlapping frames?)")


def _is_in(keys: np.ndarray, sorted_keys: np.ndarray) -> np.ndarray:
    """Elementwise membership of ``keys`` in the sorted array ``sorted_keys``."""
    if len(sorted_keys) == 0:
        return np.zeros(keys.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[pos] == keys


def _check_model(model) -> None:
    if not isinstance(model, Recommender):
        raise TypeError(f"model must be a reclib Recommender, got {type(model).__name__}")
    model._check_is_fitted()
