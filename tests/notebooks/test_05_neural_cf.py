"""Headline metrics recorded by notebooks/05_neural_cf.ipynb, within tolerances that hold in
quick mode (RECLIB_QUICK=1) and in the full run."""

import json

import pytest

import reclib

PATH = reclib.notebook.metrics_dir() / "05_neural_cf.json"


@pytest.fixture(scope="module")
def payload():
    if not PATH.exists():
        pytest.fail(f"{PATH} is missing: execute notebooks/05_neural_cf.ipynb first")
    return json.loads(PATH.read_text())


def test_neural_models_learn_something(payload):
    ndcg = payload["metrics"]["ndcg@10"]
    if payload["quick"]:  # a quarter of the epochs: the MLP has barely left popularity (~0.24)
        floors = {"GMF": 0.28, "MLP": 0.20, "NeuMF": 0.30}
    else:
        floors = {"GMF": 0.38, "MLP": 0.33, "NeuMF": 0.39}
    for name, floor in floors.items():
        assert ndcg[name] > floor, (name, ndcg[name])


def test_dot_product_baselines_are_strong(payload):
    ndcg = payload["metrics"]["ndcg@10"]
    assert ndcg["EASE"] > 0.45 and ndcg["ImplicitALS"] > 0.45


def test_autorec_rmse(payload):
    rmse = payload["metrics"]["autorec_rmse"]
    assert 0.80 < rmse < (0.96 if payload["quick"] else 0.92)
