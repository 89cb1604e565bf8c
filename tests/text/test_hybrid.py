"""TextMappedALS: the ridge map against its closed form, the blend, cold items, errors, files."""

import numpy as np
import pandas as pd
import pytest

from reclib import Interactions
from reclib.models import ImplicitALS
from reclib.text import (TextMappedALS, cold_item_split, embedding_table, evaluate_cold_items)

PARAMS = dict(n_factors=4, n_epochs=8, solver="exact", random_state=0)


@pytest.fixture(scope="module")
def topical():
    """Three topics; users like one; embeddings say each item's topic (+ noise)."""
    rng = np.random.default_rng(0)
    n_items, rows = 90, []
    topic = np.arange(n_items) % 3
    for u in range(120):
        for i in np.flatnonzero(topic == u % 3):
            if rng.random() < 0.4:
                rows.append((u, i, 1.0))
    vectors = np.eye(3)[topic] + 0.1 * rng.normal(size=(n_items, 3))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating"])
    return Interactions.from_dataframe(
        frame, item_features=embedding_table(np.arange(n_items), vectors)), vectors


def test_map_is_the_ridge_closed_form_and_warm_items_keep_their_factors(topical):
    data, vectors = topical
    train, _, cold = cold_item_split(data, fraction=0.2, random_state=0)
    base = ImplicitALS(**PARAMS).fit(train)
    model = TextMappedALS(map_reg=0.5, min_interactions=3, **PARAMS).fit(train)
    counts = np.bincount(train.items, minlength=train.n_items)
    rows = counts >= 3
    # slow reference: ridge with an unpenalised intercept, by least squares on stacked rows
    E, Q = vectors[rows], base.item_factors_[rows].astype(np.float64)
    e_mean, q_mean = E.mean(0), Q.mean(0)
    stacked = np.vstack([E - e_mean, np.sqrt(0.5) * np.eye(3)])
    target = np.vstack([Q - q_mean, np.zeros((3, Q.shape[1]))])
    W = np.linalg.lstsq(stacked, target, rcond=None)[0]
    np.testing.assert_allclose(model.text_map_, W, rtol=1e-8, atol=1e-10)
    warm = counts > 0
    np.testing.assert_array_equal(model.item_factors_[warm], base.item_factors_[warm])
    np.testing.assert_allclose(model.item_factors_[cold], q_mean + (vectors[cold] - e_mean) @ W,
                               rtol=1e-5, atol=1e-6)
    assert model.mapped_.tolist() == (counts == 0).tolist()
    np.testing.assert_allclose(model.map_embeddings(vectors[:2]),
                               q_mean + (vectors[:2] - e_mean) @ W, rtol=1e-10)


def test_shrinkage_blends_by_the_number_of_interactions(topical):
    data, vectors = topical
    base = ImplicitALS(**PARAMS).fit(data)
    model = TextMappedALS(shrinkage=4.0, **PARAMS).fit(data)
    counts = np.bincount(data.items, minlength=data.n_items)
    w = counts / (counts + 4.0)
    expected = (w[:, None] * base.item_factors_
                + (1 - w[:, None]) * model.map_embeddings(vectors))
    np.testing.assert_allclose(model.item_factors_, expected, rtol=1e-5, atol=1e-6)
    assert model.mapped_.all()


def test_cold_items_are_ranked_by_their_text(topical):
    data, _ = topical
    train, test, cold = cold_item_split(data, fraction=0.2, random_state=0)
    hybrid = evaluate_cold_items(TextMappedALS(**PARAMS).fit(train), train, test, cold)
    als = evaluate_cold_items(ImplicitALS(**PARAMS).fit(train), train, test, cold)
    assert hybrid["ndcg@10"] > als["ndcg@10"] + 0.2
    assert hybrid["hit_rate@10"] > 0.9


def test_save_load_and_errors(topical, tmp_path):
    data, vectors = topical
    model = TextMappedALS(**PARAMS).fit(data)
    again = TextMappedALS.load(model.save(tmp_path / "hybrid"))
    np.testing.assert_array_equal(again.score_block(np.arange(5)), model.score_block(np.arange(5)))
    np.testing.assert_array_equal(again.map_embeddings(vectors), model.map_embeddings(vectors))
    with pytest.raises(ValueError, match="needs item embeddings"):
        TextMappedALS(**PARAMS).fit(Interactions.from_dataframe(data.to_dataframe()))
    with pytest.raises(ValueError, match="map_reg"):
        TextMappedALS(map_reg=0.0).fit(data)
    with pytest.raises(ValueError, match="shrinkage"):
        TextMappedALS(shrinkage=-1.0).fit(data)
    with pytest.raises(ValueError, match="min_interactions == 1000"):
        TextMappedALS(min_interactions=1000, **PARAMS).fit(data)
    with pytest.raises(ValueError, match=r"expected \(n, 3\)"):
        model.map_embeddings(np.ones((2, 4)))
