"""ContentBased: TF-IDF item vectors and profile scores, checked against a literal loop."""

import numpy as np
import pandas as pd
import pytest

import reclib
from reclib.models import ContentBased, Recommender

ITEMS = pd.DataFrame({
    "item_id": ["a", "b", "c", "d"],
    "title": ["Star Wars", "Star Trek", "Toy Story", "Toy Story 2"],
    "genres": ["Action|Sci-Fi", "Sci-Fi", "Animation|Comedy", "Animation|Comedy"],
    "year": [1977, 1979, 1995, 1999],
})
RATINGS = pd.DataFrame({"user_id": ["u", "u", "v", "w"], "item_id": ["a", "c", "b", "d"],
                        "rating": [5.0, 4.0, 3.0, 4.0]})


def data(features=ITEMS):
    return reclib.Interactions.from_dataframe(RATINGS, item_features=features)


def literal_vectors(docs, vocabulary):
    """TF-IDF unit vectors by the formula, one token at a time."""
    n = len(docs)
    out = np.zeros((n, len(vocabulary)))
    for t, token in enumerate(vocabulary):
        df = sum(token in doc for doc in docs)
        idf = np.log((1 + n) / (1 + df)) + 1
        for i, doc in enumerate(docs):
            out[i, t] = doc.count(token) * idf
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.where(norms == 0, 1, norms)


def test_tokens_and_vectors_follow_the_formula():
    model = ContentBased(min_df=1).fit(data())
    assert model.fields_ == ["title", "genres"] and model.multi_fields_ == ["genres"]
    docs = {"a": ["title:star", "title:wars", "genres:action", "genres:sci-fi"],
            "b": ["title:star", "title:trek", "genres:sci-fi"],
            "c": ["title:toy", "title:story", "genres:animation", "genres:comedy"],
            "d": ["title:toy", "title:story", "title:2", "genres:animation", "genres:comedy"]}
    ordered = [docs[i] for i in model.item_ids_]
    assert model.vocabulary_ == sorted({t for doc in ordered for t in doc})
    np.testing.assert_allclose(model.item_vectors_.toarray(),
                               literal_vectors(ordered, model.vocabulary_), atol=1e-12)


def test_scores_are_summed_cosines_with_the_history():
    model = ContentBased(min_df=1).fit(data())
    vectors = model.item_vectors_.toarray()
    items = list(model.item_ids_)
    history = [items.index("a"), items.index("c")]
    expected = [sum(vectors[j] @ vectors[i] for j in history) for i in range(len(items))]
    np.testing.assert_allclose(model.predict(["u"] * 4, items), expected, atol=1e-12)
    top, _ = model.recommend(["u"], k=2)
    assert list(top[0]) == ["d", "b"]       # Toy Story 2 after Toy Story; Star Trek after Star Wars


def test_min_df_drops_rare_tokens():
    model = ContentBased(min_df=2).fit(data())
    assert "title:wars" not in model.vocabulary_ and "title:star" in model.vocabulary_


def test_new_items_are_scored_from_their_text():
    model = ContentBased(min_df=1).fit(data())
    new = pd.DataFrame({"title": ["Star Wars: Episode V"], "genres": ["Action|Sci-Fi"]})
    vector = model.transform_items(new)
    score = (model.user_profiles(["u"]) @ vector.T).toarray()[0, 0]
    expected = model.item_vectors_[list(model.item_ids_).index("a")] @ vector.T
    assert score == pytest.approx(expected.toarray()[0, 0] + 0.0)   # shares nothing with c
    assert score > 0.5


def test_without_item_features_items_are_described_by_their_users():
    model = ContentBased(min_df=1).fit(reclib.Interactions.from_dataframe(RATINGS))
    assert model.fields_ == [] and all(t.startswith("user:") for t in model.vocabulary_)
    with pytest.raises(ValueError, match="no text vocabulary"):
        model.transform_items(ITEMS)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="min_df == 0"):
        ContentBased(min_df=0).fit(data())
    with pytest.raises(ValueError, match="fields == 'title'"):
        ContentBased(fields="title").fit(data())
    with pytest.raises(ValueError, match="no column 'plot'"):
        ContentBased(fields=["title", "plot"]).fit(data())
    with pytest.raises(ValueError, match="no item_features"):
        ContentBased(fields=["title"]).fit(reclib.Interactions.from_dataframe(RATINGS))
    with pytest.raises(ValueError, match="no text column"):
        ContentBased().fit(data(ITEMS[["item_id", "year"]]))
    model = ContentBased(min_df=1).fit(data())
    with pytest.raises(ValueError, match="no column 'genres'"):
        model.transform_items(ITEMS[["title"]])


def test_save_and_load(tmp_path):
    model = ContentBased(min_df=1).fit(data())
    loaded = Recommender.load(model.save(tmp_path / "content"))
    assert loaded.vocabulary_ == model.vocabulary_
    np.testing.assert_allclose(loaded.predict(["u", "v"], ["b", "d"]),
                               model.predict(["u", "v"], ["b", "d"]))
    new = pd.DataFrame({"title": ["Toy Story 3"], "genres": ["Animation"]})
    np.testing.assert_allclose(loaded.transform_items(new).toarray(),
                               model.transform_items(new).toarray())
