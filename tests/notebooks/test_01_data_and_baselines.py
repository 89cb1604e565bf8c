"""Headline metrics recorded by notebooks/01_data_and_baselines.ipynb (run it first)."""

import json

import pytest

from reclib.notebook import metrics_dir


@pytest.fixture(scope="module")
def recorded():
    path = metrics_dir() / "01_data_and_baselines.json"
    assert path.exists(), f"{path} is missing: run the notebook first (make notebooks)"
    return json.loads(path.read_text())["metrics"]


def test_data_counts(recorded):
    assert (recorded["n_ratings"], recorded["n_users"], recorded["n_items"]) == (100_000, 943, 1682)


def test_rating_protocol(recorded):
    assert recorded["baseline_rmse"] == pytest.approx(0.944, abs=0.005)
    assert recorded["global_mean_rmse"] > recorded["baseline_rmse"] + 0.15


def test_topn_protocol(recorded):
    assert recorded["popularity_ndcg@10"] == pytest.approx(0.25, abs=0.02)
    assert recorded["random_ndcg@10"] < 0.05
    assert recorded["random_ndcg@10"] < recorded["baseline_ndcg@10"] < recorded["popularity_ndcg@10"]


def test_baselines_from_scratch_and_surprise(recorded):
    assert recorded["scratch_bias_gap"] < 1e-10
    # the same model and folds in Surprise: the two libraries agree closely
    assert recorded["surprise_baseline_rmse"] == pytest.approx(recorded["baseline_rmse"], abs=0.002)


def test_chronological_split_lowers_the_numbers(recorded):
    ndcg = recorded["split_ndcg@10"]
    rmse = recorded["split_baseline_rmse"]
    assert rmse["chronological 80/20"] > rmse["random 80/20"] + 0.03
    for model in ("Popularity", "ItemKNN (implicit, chapter 1b)"):
        assert ndcg["chronological 80/20"][model] < ndcg["random 80/20"][model] - 0.03
