"""A sweep of bad input over the public API: every case raises, and the message names the
argument, the value or the file. No case may return a silently wrong answer.

Each case is ``(callable, exception type, regex the message must match)``.
"""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import reclib
from reclib import Interactions
from reclib.core import topk
from reclib.evaluation import (evaluate_ranking, evaluate_ratings, evaluate_sampled_ranking,
                               ndcg_at_k, precision_at_k, rmse)
from reclib.models import (BPR, EASE, BaselinePredictor, BiasedMF, FunkSVD, ImplicitALS,
                           ItemKNN, Popularity, Random, UserKNN)
from reclib.split import kfold, leave_last_out, stratified_split, temporal_split
from tests.conftest import planted_frame

FRAME = planted_frame()
DATA = Interactions.from_dataframe(FRAME)
TRAIN, TEST = stratified_split(FRAME, ratio=0.75, seed=0)
POP = Popularity().fit(TRAIN)
EASE_M = EASE(reg=5.0).fit(TRAIN)
BASE = BaselinePredictor().fit(TRAIN)
U0, I0 = TRAIN.user_ids[0], TRAIN.item_ids[0]


def frame(**changes):
    df = FRAME.copy()
    for col, value in changes.items():
        df[col] = value
    return df


def with_row(**row):
    base = {"user_id": "u0", "item_id": "i0", "rating": 3.0, "timestamp": 1}
    return pd.concat([FRAME, pd.DataFrame([{**base, **row}])], ignore_index=True)


# ------------------------------------------------------------------ the data contract
DATA_CASES = {
    "df not a frame": (lambda: Interactions.from_dataframe([1, 2]), TypeError, "df must be a pandas DataFrame"),
    "df empty": (lambda: Interactions.from_dataframe(FRAME.iloc[:0]), ValueError, "df is empty"),
    "missing user col": (lambda: Interactions.from_dataframe(FRAME.drop(columns="user_id")), ValueError, "missing column.*user_id"),
    "missing rating col": (lambda: Interactions.from_dataframe(FRAME.drop(columns="rating")), ValueError, "rating_col=None"),
    "nan rating": (lambda: Interactions.from_dataframe(with_row(rating=np.nan)), ValueError, "'rating' has 1 NaN"),
    "inf rating": (lambda: Interactions.from_dataframe(with_row(rating=np.inf)), ValueError, "'rating' has 1 NaN, infinite"),
    "text rating": (lambda: Interactions.from_dataframe(with_row(rating="five")), ValueError, "non-numeric"),
    "missing user id": (lambda: Interactions.from_dataframe(with_row(user_id=None)), ValueError, "'user_id' has 1 missing id"),
    "missing item id": (lambda: Interactions.from_dataframe(with_row(item_id=np.nan)), ValueError, "'item_id' has 1 missing id"),
    "mixed id kinds": (lambda: Interactions.from_dataframe(with_row(user_id=7)), TypeError, "user ids .column .user_id.. mix several kinds"),
    "bool ids": (lambda: Interactions.from_dataframe(frame(user_id=True)), TypeError, "booleans"),
    "duplicate pairs": (lambda: Interactions.from_dataframe(pd.concat([FRAME, FRAME.iloc[:1]])), ValueError, "repeated .user_id, item_id. pairs"),
    "bad duplicates arg": (lambda: Interactions.from_dataframe(FRAME, duplicates="drop"), ValueError, "duplicates == 'drop'"),
    "missing timestamp": (lambda: Interactions.from_dataframe(with_row(timestamp=None)), ValueError, "missing timestamps"),
    "reference not interactions": (lambda: Interactions.from_dataframe(FRAME, reference=FRAME), TypeError, "reference must be an Interactions"),
    "test ids of another dtype": (lambda: Interactions.from_dataframe(frame(user_id=np.arange(len(FRAME))), reference=DATA), TypeError, r"df\['user_id'\] are numbers"),
    "csr not sparse": (lambda: Interactions.from_csr(np.eye(3)), TypeError, "scipy sparse matrix"),
    "csr empty": (lambda: Interactions.from_csr(sp.csr_matrix((3, 3))), ValueError, "no non-zero entries"),
    "csr nan": (lambda: Interactions.from_csr(sp.csr_matrix(np.array([[np.nan, 1.0]]))), ValueError, "NaN or infinite"),
    "user_features not frame": (lambda: Interactions.from_dataframe(FRAME, user_features=[1]), TypeError, "user_features must be a pandas DataFrame"),
    "user_features no key": (lambda: Interactions.from_dataframe(FRAME, user_features=pd.DataFrame({"age": [1]})), ValueError, "no 'user_id' column"),
    "item_features missing id": (lambda: Interactions.from_dataframe(FRAME, item_features=pd.DataFrame({"item_id": ["i0"], "g": ["a"]})), ValueError, "item_features has no row for"),
    "item_features nan": (lambda: Interactions.from_dataframe(FRAME, item_features=pd.DataFrame({"item_id": DATA.item_ids, "g": [np.nan] * DATA.n_items})), ValueError, "missing or infinite"),
    "feature object column": (lambda: Interactions.from_dataframe(FRAME, item_features=pd.DataFrame({"item_id": DATA.item_ids, "g": [[1]] * DATA.n_items})), TypeError, "column 'g' has dtype object"),
    "subset bad mask": (lambda: DATA.subset(np.ones(3, dtype=bool)), ValueError, "rows is a mask of length 3"),
    "to_csr with unknowns": (lambda: Interactions.from_dataframe(with_row(user_id="new"), reference=DATA).to_csr(), ValueError, "unknown to the id map"),
    "user_index unknown": (lambda: DATA.user_index(["nobody"]), ValueError, "unknown user id.*'nobody'"),
    "user_index 2-D": (lambda: DATA.user_index([["u0"]]), ValueError, "one-dimensional"),
    "user_index allow_unknown str": (lambda: DATA.user_index(["u0"], allow_unknown="no"), TypeError, "allow_unknown must be True or False"),
    "item_index wrong kind": (lambda: DATA.item_index([3]), TypeError, "item ids of this map are strings"),
}

# ------------------------------------------------------------------ splits
SPLIT_CASES = {
    "split list": (lambda: stratified_split([1, 2]), TypeError, "data must be a DataFrame or an Interactions"),
    "ratio zero": (lambda: stratified_split(FRAME, ratio=0.0), ValueError, "ratio == 0.0"),
    "ratio one": (lambda: stratified_split(FRAME, ratio=1.0), ValueError, "ratio == 1.0"),
    "ratio text": (lambda: stratified_split(FRAME, ratio="0.5"), TypeError, "ratio must be a real number"),
    "ratio nan": (lambda: stratified_split(FRAME, ratio=float("nan")), ValueError, "ratio == nan"),
    "ratio bool": (lambda: stratified_split(FRAME, ratio=True), TypeError, "ratio must be a real number"),
    "seed negative": (lambda: stratified_split(FRAME, seed=-1), ValueError, "seed == -1"),
    "seed text": (lambda: stratified_split(FRAME, seed="42"), TypeError, "seed must be None, an int"),
    "kfold one split": (lambda: next(kfold(FRAME, n_splits=1)), ValueError, "n_splits == 1"),
    "kfold float": (lambda: next(kfold(FRAME, n_splits=2.5)), TypeError, "n_splits must be an integer"),
    "kfold too many": (lambda: next(kfold(FRAME.iloc[:3], n_splits=5)), ValueError, "n_splits == 5"),
    "kfold seed bad": (lambda: next(kfold(FRAME, seed=1.5)), TypeError, "seed must be None, an int"),
    "leave_last_out no time": (lambda: leave_last_out(FRAME.drop(columns="timestamp")), ValueError, "needs timestamps"),
    "leave_last_out flag": (lambda: leave_last_out(FRAME, validation="yes"), TypeError, "validation must be True or False"),
    "temporal ratio": (lambda: temporal_split(FRAME, ratio=1.5), ValueError, "ratio == 1.5"),
    "temporal empty side": (lambda: temporal_split(FRAME, ratio=0.0), ValueError, "leaves one side empty"),
    "split of a test set": (lambda: stratified_split(Interactions.from_dataframe(with_row(user_id="new"), reference=DATA)), ValueError, "unknown ids"),
    "split too small": (lambda: stratified_split(FRAME.iloc[:1]), ValueError, "leaves a part empty"),
}

# ------------------------------------------------------------------ hyper-parameters (checked at fit)
PARAM_CASES = {
    f"{cls.__name__} {name}={value!r}": (lambda cls=cls, p={name: value}: cls(**p).fit(TRAIN), exc, match)
    for cls, name, value, exc, match in [
        (EASE, "reg", -1.0, ValueError, "reg == -1.0"),
        (EASE, "reg", "big", TypeError, "reg must be a real number"),
        (EASE, "binary", "yes", TypeError, "binary must be True or False"),
        (BPR, "n_factors", 0, ValueError, "n_factors == 0"),
        (BPR, "n_factors", 2.0, TypeError, "n_factors must be an integer"),
        (BPR, "lr", 0.0, ValueError, "lr == 0.0"),
        (BPR, "lr", float("nan"), ValueError, "lr == nan"),
        (BPR, "item_bias", 1, TypeError, "item_bias must be True or False"),
        (BPR, "n_epochs", True, TypeError, "n_epochs must be an integer"),
        (BPR, "random_state", "seed", TypeError, "random_state must be None, an int"),
        (BPR, "random_state", -3, ValueError, "random_state == -3"),
        (ImplicitALS, "alpha", -1.0, ValueError, "alpha == -1.0"),
        (ImplicitALS, "n_factors", -4, ValueError, "n_factors == -4"),
        (ImplicitALS, "confidence", "square", ValueError, "confidence == 'square'"),
        (ImplicitALS, "solver", "magic", ValueError, "solver == 'magic'"),
        (ImplicitALS, "reg_exponent", 2.0, ValueError, "reg_exponent == 2.0"),
        (ImplicitALS, "binary", "no", TypeError, "binary must be True or False"),
        (FunkSVD, "n_epochs", 0, ValueError, "n_epochs == 0"),
        (FunkSVD, "reg", -0.1, ValueError, "reg == -0.1"),
        (FunkSVD, "init_std", -1.0, ValueError, "init_std == -1.0"),
        (BiasedMF, "lr", -0.01, ValueError, "lr == -0.01"),
        (BaselinePredictor, "method", "newton", ValueError, "method == 'newton'"),
        (BaselinePredictor, "reg_user", -1.0, ValueError, "reg_user == -1.0"),
        (UserKNN, "k", 0, ValueError, "k == 0"),
        (UserKNN, "min_k", 50, ValueError, "min_k == 50 is larger than k"),
        (ItemKNN, "similarity", "jaccard", ValueError, "similarity == 'jaccard'"),
        (ItemKNN, "feedback", "both", ValueError, "feedback == 'both'"),
        (ItemKNN, "shrinkage", -1.0, ValueError, "shrinkage == -1.0"),
        (Random, "random_state", None, TypeError, "random_state must be an integer"),
    ]
}

# ------------------------------------------------------------------ scoring
SCORING_CASES = {
    "recommend k=0": (lambda: POP.recommend([U0], k=0), ValueError, "k == 0"),
    "recommend k too big": (lambda: POP.recommend([U0], k=10**6), ValueError, "k == 1000000"),
    "recommend k float": (lambda: POP.recommend([U0], k=2.0), TypeError, "k must be an integer"),
    "recommend k bool": (lambda: POP.recommend([U0], k=True), TypeError, "k must be an integer"),
    "recommend unknown user": (lambda: POP.recommend(["nobody"]), ValueError, "unknown user id.*'nobody'"),
    "recommend user wrong kind": (lambda: POP.recommend([0]), TypeError, "user_ids are numbers"),
    "recommend exclude_seen str": (lambda: POP.recommend([U0], exclude_seen="no"), TypeError, "exclude_seen must be True or False"),
    "recommend exclude_seen int": (lambda: POP.recommend([U0], exclude_seen=0), TypeError, "exclude_seen must be True or False"),
    "recommend batch_size 0": (lambda: POP.recommend([U0], batch_size=0), ValueError, "batch_size == 0"),
    "recommend batch_size float": (lambda: POP.recommend([U0], batch_size=2.5), TypeError, "batch_size must be an integer"),
    "recommend items unknown": (lambda: POP.recommend([U0], items=["zz"]), ValueError, "items: 1 unknown item id"),
    "recommend filter unknown": (lambda: POP.recommend([U0], filter_items=["zz"]), ValueError, "filter_items: 1 unknown item id"),
    "recommend too few candidates": (lambda: POP.recommend([U0], k=3, items=[I0]), ValueError, "k == 3 but user"),
    "recommend 2-D users": (lambda: POP.recommend([[U0]]), ValueError, "one-dimensional"),
    "predict length mismatch": (lambda: BASE.predict([U0, U0], [I0]), ValueError, "user_ids has 2 entries but item_ids has 1"),
    "predict unknown item": (lambda: BASE.predict([U0], ["zz"]), ValueError, "unknown item id.*'zz'"),
    "predict allow_unknown str": (lambda: BASE.predict([U0], [I0], allow_unknown="no"), TypeError, "allow_unknown must be True or False"),
    "predict clip str": (lambda: BASE.predict([U0], [I0], clip="no"), TypeError, "clip must be True or False"),
    "predict unknown without fallback": (lambda: EASE_M.predict(["zz"], [I0], allow_unknown=True), ValueError, "EASE cannot score users or items unseen"),
    "similar k=0": (lambda: BiasedMF(n_epochs=2).fit(TRAIN).similar_items([I0], k=0), ValueError, "k == 0"),
    "similar k=n_items": (lambda: BiasedMF(n_epochs=2).fit(TRAIN).similar_items([I0], k=TRAIN.n_items), ValueError, f"k == {TRAIN.n_items}"),
    "similar unknown item": (lambda: BiasedMF(n_epochs=2).fit(TRAIN).similar_items(["zz"]), ValueError, "unknown item id"),
    "similar without vectors": (lambda: POP.similar_items([I0]), NotImplementedError, "Popularity has no item representation"),
    "not fitted recommend": (lambda: EASE().recommend([U0]), reclib.models.NotFittedError, "EASE is not fitted"),
    "not fitted predict": (lambda: BPR().predict([U0], [I0]), reclib.models.NotFittedError, "BPR is not fitted"),
    "fit on a frame": (lambda: EASE().fit(FRAME), TypeError, "X must be an Interactions or a scipy sparse matrix"),
    "fit on a test set": (lambda: EASE().fit(Interactions.from_dataframe(with_row(user_id="new"), reference=DATA)), ValueError, "rows with unknown ids"),
    "fit on dense array": (lambda: EASE().fit(np.eye(3)), TypeError, "got ndarray"),
    "get_params deep str": (lambda: EASE().get_params(deep="yes"), TypeError, "deep must be True or False"),
    "set_params unknown": (lambda: EASE().set_params(lambda_=3), ValueError, "EASE has no parameter 'lambda_'"),
    "set_params nested unknown": (lambda: EASE().set_params(reg__x=3), AttributeError, "set_params"),
    "score_block flag": (lambda: POP.score_block(np.array([0]), exclude_seen="yes"), TypeError, "exclude_seen must be True or False"),
    "predict_indices clip": (lambda: BASE.predict_indices(np.array([0]), np.array([0]), clip=1), TypeError, "clip must be True or False"),
}

# ------------------------------------------------------------------ evaluation
OTHER_TRAIN, OTHER_TEST = stratified_split(frame(user_id="x" + FRAME["user_id"]), ratio=0.75, seed=0)
OVERLAP = Interactions.from_dataframe(pd.concat([TEST.to_dataframe(), TRAIN.to_dataframe().iloc[:4]]), reference=TRAIN)
EVAL_CASES = {
    "ranking k=0": (lambda: evaluate_ranking(POP, TRAIN, TEST, k=0), ValueError, "k == 0"),
    "ranking k too big": (lambda: evaluate_ranking(POP, TRAIN, TEST, k=999), ValueError, "k == 999"),
    "ranking model str": (lambda: evaluate_ranking("pop", TRAIN, TEST), TypeError, "model must be a reclib Recommender"),
    "ranking not fitted": (lambda: evaluate_ranking(EASE(), TRAIN, TEST), reclib.models.NotFittedError, "not fitted"),
    "ranking test is train": (lambda: evaluate_ranking(POP, TRAIN, TRAIN), ValueError, "test is train"),
    "ranking train as test copy": (lambda: evaluate_ranking(POP, TRAIN, TRAIN.subset(np.arange(TRAIN.n_interactions))), ValueError, "test shares every .user, item. pairs with train"),
    "ranking partial overlap": (lambda: evaluate_ranking(POP, TRAIN, OVERLAP), ValueError, "test shares 4 of the"),
    "ranking other maps": (lambda: evaluate_ranking(POP, TRAIN, OTHER_TEST), ValueError, "does not share train's id maps"),
    "ranking model fitted elsewhere": (lambda: evaluate_ranking(Popularity().fit(OTHER_TRAIN), TRAIN, TEST), ValueError, "model was not fitted on train"),
    "ranking model fitted on a subset": (lambda: evaluate_ranking(Popularity().fit(Interactions(TRAIN.users[:-5], TRAIN.items[:-5], TRAIN.ratings[:-5], None, TRAIN.user_map, TRAIN.item_map)), TRAIN, TEST), ValueError, "seen-item matrix has"),
    "ranking train frame": (lambda: evaluate_ranking(POP, FRAME, TEST), TypeError, "train must be an Interactions"),
    "ranking metric name": (lambda: evaluate_ranking(POP, TRAIN, TEST, metrics=["auc"]), ValueError, "auc"),
    "ranking batch 0": (lambda: evaluate_ranking(POP, TRAIN, TEST, batch_size=0), ValueError, "batch_size == 0"),
    "ratings non-rating model": (lambda: evaluate_ratings(POP, TEST), ValueError, "Popularity does not predict ratings"),
    "ratings EASE": (lambda: evaluate_ratings(EASE_M, TEST), ValueError, "EASE does not predict ratings"),
    "ratings implicit kNN": (lambda: evaluate_ratings(ItemKNN(feedback="implicit").fit(TRAIN), TEST), ValueError, "ItemKNN does not predict ratings"),
    "ratings unknown refused": (lambda: evaluate_ratings(BASE, Interactions.from_dataframe(with_row(user_id="new").tail(1), reference=TRAIN), allow_unknown=False), ValueError, "1 pairs with ids unknown"),
    "ratings allow_unknown str": (lambda: evaluate_ratings(BASE, TEST, allow_unknown="no"), TypeError, "allow_unknown must be True or False"),
    "ratings clip str": (lambda: evaluate_ratings(BASE, TEST, clip="no"), TypeError, "clip must be True or False"),
    "ratings other maps": (lambda: evaluate_ratings(BASE, OTHER_TEST), ValueError, "does not share the model's id maps"),
    "ratings test frame": (lambda: evaluate_ratings(BASE, FRAME), TypeError, "test must be an Interactions"),
    "sampled negatives 0": (lambda: evaluate_sampled_ranking(EASE_M, TRAIN, TEST, n_negatives=0), ValueError, "n_negatives == 0"),
    "sampled k too big": (lambda: evaluate_sampled_ranking(EASE_M, TRAIN, TEST, k=20, n_negatives=5), ValueError, "k == 20"),
    "sampled seed str": (lambda: evaluate_sampled_ranking(EASE_M, TRAIN, TEST, random_state="x"), TypeError, "random_state must be None"),
    "sampled test is train": (lambda: evaluate_sampled_ranking(EASE_M, TRAIN, TRAIN), ValueError, "test is train"),
    "lists as strings": (lambda: ndcg_at_k(["abc"], [["a"]], k=3), TypeError, r"recommended\[0\] is the string 'abc'"),
    "relevant as string": (lambda: precision_at_k([["a", "b"]], ["ab"], k=2), TypeError, r"relevant\[0\] is the string 'ab'"),
    "lists string whole": (lambda: ndcg_at_k("abc", [["a"]], k=3), TypeError, "recommended is a string"),
    "lists length mismatch": (lambda: ndcg_at_k([["a"]], [["a"], ["b"]], k=3), ValueError, "recommended has 1 users but relevant has 2"),
    "lists repeat": (lambda: ndcg_at_k([["a", "a"]], [["a"]], k=3), ValueError, "repeats an item"),
    "lists k=0": (lambda: ndcg_at_k([["a"]], [["a"]], k=0), ValueError, "k == 0"),
    "rmse shapes": (lambda: rmse([1, 2], [1]), ValueError, r"y_true has shape \(2,\) but y_pred has shape \(1,\)"),
    "rmse empty": (lambda: rmse([], []), ValueError, "y_true is empty"),
    "rmse nan": (lambda: rmse([1.0], [np.nan]), ValueError, "y_pred has 1 NaN"),
}

# ------------------------------------------------------------------ ranking core and data sets
CORE_CASES = {
    "topk nan": (lambda: topk(np.array([[np.nan, 1.0]]), 1, source="MyModel"), ValueError, "MyModel produced 1 NaN"),
    "topk k=0": (lambda: topk(np.zeros((1, 3)), 0), ValueError, "k == 0"),
    "topk 1-D": (lambda: topk(np.zeros(3), 1), ValueError, "scores must be 2-D"),
    "topk too few": (lambda: topk(np.zeros((1, 3)), 3, exclude=np.array([0])), ValueError, "row 0 has only 2 eligible"),
    "topk float candidates": (lambda: topk(np.zeros((1, 3)), 1, candidates=np.array([0.0])), TypeError, "candidates must be a 1-D array"),
    "topk out of range": (lambda: topk(np.zeros((1, 3)), 1, exclude=np.array([5])), ValueError, "exclude has item indices outside 0 .. 2"),
    "idmap duplicate": (lambda: reclib.core.IdMap(["a", "a"]), ValueError, "'a' appears more than once"),
    "idmap mixed": (lambda: reclib.core.IdMap([1, "1"]), TypeError, "mix several kinds"),
    "movielens variant": (lambda: reclib.datasets.load_movielens("10b"), ValueError, "10b"),
}


def _flatten():
    for group in (DATA_CASES, SPLIT_CASES, PARAM_CASES, SCORING_CASES, EVAL_CASES, CORE_CASES):
        yield from group.items()


CASES = dict(_flatten())


def test_the_sweep_is_large():
    assert len(CASES) >= 150, len(CASES)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_raises_a_named_error(name):
    call, exc, match = CASES[name]
    with pytest.raises(exc, match=match):
        call()
