"""Sampled metrics (Krichene and Rendle, 2020): they are inflated and can flip model order."""

import numpy as np
import pandas as pd
import pytest

import reclib
from reclib.evaluation import evaluate_ranking, evaluate_sampled_ranking
from reclib.models import Recommender

pytestmark = pytest.mark.filterwarnings("ignore::reclib.evaluation.SampledMetricWarning")


def test_every_call_warns_that_sampled_numbers_are_not_full_ranking(planted):
    train, test = reclib.split.stratified_split(planted.to_dataframe(), ratio=0.75, seed=0)
    model = reclib.models.EASE(reg=5.0).fit(train)
    with pytest.warns(reclib.evaluation.SampledMetricWarning, match="not comparable"):
        evaluate_sampled_ranking(model, train, test, k=3, n_negatives=5)


class FixedScores(Recommender):
    """A 'model' whose scores are a given matrix (for constructed examples)."""

    def __init__(self, scores=None):
        self.scores = scores

    def _fit(self, data):
        self.table_ = np.asarray(self.scores, dtype=float)

    def _score_users(self, users):
        return self.table_[users]


def one_test_item_per_user(n_users=200, n_items=1000, n_train=5, seed=0):
    """Every user has ``n_train`` training items and one test item, all distinct."""
    rng = np.random.default_rng(seed)
    rows_train, rows_test = [], []
    for u in range(n_users):
        chosen = rng.choice(n_items, n_train + 1, replace=False)
        rows_train += [(u, i, 1.0) for i in chosen[:-1]]
        rows_test.append((u, chosen[-1], 1.0))
    rows_train += [(0, i, 1.0) for i in range(n_items) if i not in {r[1] for r in rows_train}]
    columns = ["user_id", "item_id", "rating"]
    train = reclib.Interactions.from_dataframe(pd.DataFrame(rows_train, columns=columns))
    test = reclib.Interactions.from_dataframe(pd.DataFrame(rows_test, columns=columns),
                                              reference=train)
    return train, test


def test_sampled_metrics_flip_the_order_of_two_models():
    """'Sharp' puts the test item first for 30% of users and last for the rest; 'steady'
    always puts it near rank 40 of 1000. Full ranking prefers sharp, sampled ranking steady."""
    train, test = one_test_item_per_user()
    n_users, n_items = train.n_users, train.n_items
    rng = np.random.default_rng(1)
    target = np.empty(n_users, dtype=np.int64)
    target[test.users] = test.items
    sharp = rng.random((n_users, n_items))
    steady = rng.random((n_users, n_items))
    lucky = rng.random(n_users) < 0.3
    sharp[np.arange(n_users), target] = np.where(lucky, 2.0, -1.0)
    steady[np.arange(n_users), target] = 0.96            # ~40 random scores lie above it
    models = {name: FixedScores(scores).fit(train)
              for name, scores in (("sharp", sharp), ("steady", steady))}
    full = {n: evaluate_ranking(m, train, test, k=10)["ndcg@10"] for n, m in models.items()}
    sampled = {n: evaluate_sampled_ranking(m, train, test, k=10, n_negatives=100)["ndcg@10"]
               for n, m in models.items()}
    assert full["sharp"] > full["steady"] + 0.2
    assert sampled["steady"] > sampled["sharp"] + 0.1


def test_sampled_metrics_are_higher_than_full_ones(planted):
    # models without tied scores: ties are broken by item index in a full ranking but count
    # against the test item in a sampled one, which would confound the comparison
    train, test = reclib.split.stratified_split(planted.to_dataframe(), ratio=0.75, seed=0)
    for model in (reclib.models.ImplicitALS(n_factors=4, random_state=0),
                  reclib.models.EASE(reg=5.0)):
        model.fit(train)
        full = evaluate_ranking(model, train, test, k=3)
        sampled = evaluate_sampled_ranking(model, train, test, k=3, n_negatives=5, random_state=0)
        assert sampled["hit_rate@3"] > full["hit_rate@3"]


def test_ranks_count_ties_against_the_item():
    train, test = one_test_item_per_user(n_users=20, n_items=50)
    constant = FixedScores(np.zeros((train.n_users, train.n_items))).fit(train)
    result = evaluate_sampled_ranking(constant, train, test, k=10, n_negatives=20)
    assert result["hit_rate@10"] == 0.0 and result["mean_rank"] == 21.0


def test_negatives_avoid_the_users_items():
    train, test = one_test_item_per_user(n_users=30, n_items=40, n_train=30)
    # the model scores the user's own (train) items highest: if any were drawn as negatives,
    # the test item would lose to them
    scores = np.zeros((train.n_users, train.n_items))
    scores[train.users, train.items] = 5.0
    scores[test.users, test.items] = 1.0
    model = FixedScores(scores).fit(train)
    result = evaluate_sampled_ranking(model, train, test, k=1, n_negatives=50, random_state=3)
    assert result["hit_rate@1"] == 1.0


def test_bad_arguments_are_named(planted):
    train, test = reclib.split.stratified_split(planted.to_dataframe(), ratio=0.75, seed=0)
    model = reclib.models.Popularity().fit(train)
    with pytest.raises(ValueError, match="n_negatives == 0"):
        evaluate_sampled_ranking(model, train, test, n_negatives=0)
    with pytest.raises(ValueError, match="k == 102"):
        evaluate_sampled_ranking(model, train, test, k=102, n_negatives=100)
    with pytest.raises(TypeError, match="model"):
        evaluate_sampled_ranking("model", train, test)
