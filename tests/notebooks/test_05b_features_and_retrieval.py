"""Headline metrics recorded by notebooks/05b_features_and_retrieval.ipynb, within tolerances
that hold in quick mode (RECLIB_QUICK=1, two epochs) and in the full run."""

import json

import pytest

import reclib

PATH = reclib.notebook.metrics_dir() / "05b_features_and_retrieval.json"


@pytest.fixture(scope="module")
def payload():
    if not PATH.exists():
        pytest.fail(f"{PATH} is missing: execute notebooks/05b_features_and_retrieval.ipynb first")
    return json.loads(PATH.read_text())


def test_fm_identity_holds(payload):
    assert payload["metrics"]["fm_identity_error"] < 1e-9


def test_fm_models_rank_above_chance(payload):
    ndcg = payload["metrics"]["ndcg@10"]
    floor = 0.15 if payload["quick"] else 0.3        # random ranking scores about 0.01
    for name, value in ndcg.items():
        assert value > floor, (name, value)
    gain = payload["metrics"]["side_feature_gain"]
    assert gain == pytest.approx(ndcg["FM, ids + side features"] - ndcg["FM, ids only"])


def test_two_tower_twins_agree(payload):
    ndcg = payload["metrics"]["two_tower_ndcg@10"]
    floor = 0.35 if payload["quick"] else 0.4
    assert ndcg["PyTorch"] > floor and ndcg["TensorFlow"] > floor, ndcg
    assert ndcg["TensorFlow"] == pytest.approx(ndcg["PyTorch"], abs=0.04), ndcg


def test_seed_spreads_and_thin_ids(payload):
    m = payload["metrics"]
    for table in (m["ndcg@10_sd"], m["two_tower_sd"]):
        for name, sd in table.items():
            assert 0.0 <= sd < 0.03, (name, sd)
    # the page says some catalogue items are never trained on (and never scored) and many are rare
    assert m["unseen_items"] > 0 and m["unseen_test_rows"] == 0 and m["rare_items"] > 50, m
