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
    # quick mode averages 2 of the 5 folds, hence the tolerance
    assert recorded["item_knn_rmse"] == pytest.approx(0.915, abs=0.006)
    assert recorded["user_knn_rmse"] == pytest.approx(0.922, abs=0.006)
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
