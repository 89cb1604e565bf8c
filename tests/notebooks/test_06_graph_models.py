"""Headline metrics recorded by notebooks/06_graph_models.ipynb, within tolerances that hold
in quick mode (RECLIB_QUICK=1) and in the full run."""

import json

import pytest

import reclib

PATH = reclib.notebook.metrics_dir() / "06_graph_models.json"


@pytest.fixture(scope="module")
def payload():
    if not PATH.exists():
        pytest.fail(f"{PATH} is missing: execute notebooks/06_graph_models.ipynb first")
    return json.loads(PATH.read_text())


def test_lightgcn_ndcg(payload):
    ndcg = payload["metrics"]["ndcg@10"]
    assert ndcg > (0.35 if payload["quick"] else 0.42), ndcg


def test_propagation_helps_over_plain_mf(payload):
    by_layers = payload["metrics"]["ndcg@10_by_layers"]
    assert max(by_layers[k] for k in by_layers if k != "0") > by_layers["0"]


def test_embeddings_grow_more_alike_with_depth(payload):
    cosine = payload["metrics"]["item_cosine_by_layers"]
    layers = sorted(cosine, key=int)
    assert cosine[layers[-1]] > cosine[layers[0]]
