"""Headline metrics recorded by notebooks/01b_neighbourhood_cf.ipynb (run it first)."""

import json

import pytest

from reclib.notebook import metrics_dir


@pytest.fixture(scope="module")
def recorded():
    path = metrics_dir() / "01b_neighbourhood_cf.json"
    assert path.exists(), f"{path} is missing: run the notebook first (make notebooks)"
    return json.loads(path.read_text())["metrics"]


def test_rating_protocol(recorded):
    # quick mode scores the first of the 5 folds only, hence the tolerance
    assert recorded["item_knn_rmse"] == pytest.approx(0.915, abs=0.008)
    assert recorded["user_knn_rmse"] == pytest.approx(0.922, abs=0.008)
    assert recorded["item_knn_rmse"] < recorded["user_knn_rmse"]
    assert recorded["user_knn_rmse"] < recorded["baseline_rmse"] - 0.01
    assert recorded["item_knn_rmse"] < recorded["item_knn_cosine_rmse"] - 0.02


def test_topn_protocol(recorded):
    assert recorded["item_knn_implicit_ndcg@10"] == pytest.approx(0.394, abs=0.01)
    assert recorded["user_knn_implicit_ndcg@10"] == pytest.approx(0.43, abs=0.01)
    assert recorded["item_knn_implicit_ndcg@10"] > recorded["popularity_ndcg@10"] + 0.1
    assert recorded["item_knn_explicit_ndcg@10"] < recorded["popularity_ndcg@10"]


def test_cold_users(recorded):
    cold = {int(n): rmse for n, rmse in recorded["cold_user_rmse_item_knn"].items()}
    fewest, most = min(cold), max(cold)
    assert cold[most] < cold[fewest] - 0.1
    assert cold[most] == pytest.approx(recorded["item_knn_rmse"], abs=0.05)


def test_from_scratch_item_knn_matches(recorded):
    assert recorded["scratch_knn_gap"] < 1e-9


def test_rating_rankers_list_rare_films(recorded):
    # the explanation on the page: UserKNN's top lists are full of films with <= 3 ratings
    assert recorded["user_knn_explicit_ndcg@10"] < 0.02
    assert recorded["user_knn_explicit_rare_share"] > 0.3
    assert recorded["popularity_rare_share"] < 0.01


def test_content_based(recorded):
    assert 0.02 < recorded["content_ndcg@10"] < recorded["popularity_ndcg@10"]
    assert recorded["content_new_item_percentile"] > 0.5
