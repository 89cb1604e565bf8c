"""The fixed evaluation protocols of the book (DESIGN §5): rating and top-N.

Top-N: every user with test interactions gets a full ranking of all items except the ones they
had in training; relevant items are *all* of the user's test items, including items that the
model never saw in training (they can never be recommended, and still count as missed).
"""

from __future__ import annotations

import warnings

import numpy as np

from .._ranking import default_batch_size, mask_rows, top_k
from .._validation import check_int
from ..interactions import Interactions
from ..models.base import Recommender
from .beyond import catalogue_coverage, novelty
from .metrics import RANKING_METRICS, mae, ranking_metrics, rmse


def evaluate_ratings(model: Recommender, test: Interactions, clip: bool = True) -> dict:
    """RMSE and MAE of a fitted model on a test set built with ``reference=train``.

    Pairs with a user or item unseen in training are predicted from what the model knows
    (``allow_unknown=True``), as Surprise does; ``clip`` clips to the training rating range.
    """
    _check_model(model)
    if not isinstance(test, Interactions):
        raise TypeError(f"test must be an Interactions, got {type(test).__name__}")
    df = test.to_dataframe()
    y_hat = model.predict(df["user_id"].to_numpy(), df["item_id"].to_numpy(),
                          allow_unknown=True, clip=clip)
    return {"rmse": rmse(test.ratings, y_hat), "mae": mae(test.ratings, y_hat)}


def evaluate_ranking(model: Recommender, train: Interactions, test: Interactions, k: int = 10,
                     metrics=None, batch_size: int | None = None) -> dict:
    """Top-N metrics at ``k`` with a full ranking over all items (DESIGN §5).

    Parameters
    ----------
    model : Recommender
        Fitted on ``train``.
    train, test : Interactions
        ``test`` built with ``reference=train``.
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
    relevant = test.subset(known_user & (test.items >= 0)).to_csr(binary=True)
    seen = train.to_csr(binary=True)
    batch_size = check_int("batch_size", batch_size or default_batch_size(model.n_items), minimum=1)
    hits = np.empty((len(users), k), dtype=bool)
    top = np.empty((len(users), k), dtype=np.int64)
    for start in range(0, len(users), batch_size):
        rows = users[start:start + batch_size]
        scores = mask_rows(model.score_block(rows, exclude_seen=False), seen, rows)
        idx, _ = top_k(scores, k)
        top[start:start + len(rows)] = idx
        hits[start:start + len(rows)] = np.take_along_axis(relevant[rows].toarray() > 0, idx, axis=1)
    results = ranking_metrics(hits, n_relevant_all[users], metrics or list(RANKING_METRICS))
    item_counts = np.bincount(train.items, minlength=train.n_items)
    results[f"coverage@{k}"] = catalogue_coverage(top, model.n_items)
    results[f"novelty@{k}"] = novelty(top, item_counts, train.n_users)
    results["n_users"] = int(len(users))
    return results


def check_split_inputs(model, train, test) -> None:
    """Raise unless ``model`` is a fitted Recommender trained on ``train`` and ``test`` shares its maps."""
    _check_model(model)
    for name, obj in (("train", train), ("test", test)):
        if not isinstance(obj, Interactions):
            raise TypeError(f"{name} must be an Interactions, got {type(obj).__name__}")
    if not test.shares_index_with(train):
        raise ValueError("test does not share train's id maps; build it with "
                         "Interactions.from_dataframe(test_df, reference=train)")
    if not (np.array_equal(model.user_ids_, train.user_ids)
            and np.array_equal(model.item_ids_, train.item_ids)):
        raise ValueError("model was not fitted on train (their id maps differ)")


def _check_model(model) -> None:
    if not isinstance(model, Recommender):
        raise TypeError(f"model must be a reclib Recommender, got {type(model).__name__}")
    model._check_is_fitted()
