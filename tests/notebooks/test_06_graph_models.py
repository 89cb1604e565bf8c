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
    assert ndcg > (0.35 if payload["quick"] else 0.45), ndcg


def test_from_scratch_propagation_and_spectrum(payload):
    m = payload["metrics"]
    assert m["propagation_error"] < 1e-6       # reclib builds the adjacency in float32
    top, bottom = m["eigenvalues"]
    assert top == pytest.approx(1.0, abs=1e-6) and bottom == pytest.approx(-1.0, abs=1e-6)
    # the page says: one step still moves the powers, two steps do not, the mean moves less
    osc = m["oscillation"]
    assert osc["one_step"] > 1000 * osc["two_steps"] and osc["mean_step"] < osc["one_step"], osc


def test_propagation_helps_over_plain_mf(payload):
    by_layers = payload["metrics"]["ndcg@10_by_layers"]
    assert max(by_layers[k] for k in by_layers if k != "0") > by_layers["0"]


def test_embeddings_grow_more_alike_with_depth(payload):
    cosine = payload["metrics"]["item_cosine_by_layers"]
    layers = sorted(cosine, key=int)
    assert cosine[layers[-1]] > cosine[layers[0]]


def test_prose_claim_the_first_layers_help(payload):
    """The page says the shape is a gain from the first layers; the best depth is not L = 0."""
    by_layers = {int(k): v for k, v in payload["metrics"]["ndcg@10_by_layers"].items()}
    assert max(by_layers, key=by_layers.get) > 0, by_layers
    assert by_layers[1] > by_layers[0], by_layers
    assert payload["metrics"]["sweep_epochs"] >= (30 if payload["quick"] else 50)
