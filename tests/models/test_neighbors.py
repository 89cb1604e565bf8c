"""UserKNN and ItemKNN against slow references that implement the formulas literally, and
against Surprise (explicit feedback) and implicit (implicit feedback) on tiny data."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import reclib
from reclib.models import BaselinePredictor, ItemKNN, Recommender, UserKNN
from tests.conftest import own_half, planted_frame


def tiny_frame(n_users=14, n_items=10, density=0.55, seed=0, continuous=True):
    """Random ratings in [1, 5] (continuous, so that similarities never tie)."""
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < density
    mask[np.arange(n_users), rng.integers(0, n_items, n_users)] = True
    mask[rng.integers(0, n_users, n_items), np.arange(n_items)] = True
    users, items = np.nonzero(mask)
    ratings = rng.uniform(1, 5, len(users)) if continuous else rng.integers(1, 6, len(users))
    return pd.DataFrame({"user_id": [f"u{u}" for u in users], "item_id": [f"i{i}" for i in items],
                         "rating": ratings.astype(float)})


@pytest.fixture(scope="module")
def tiny():
    return reclib.Interactions.from_dataframe(tiny_frame())


def dense_ratings(data, item_based):
    """(n_entities, n_other) array of ratings with NaN where unobserved."""
    full = np.full((data.n_users, data.n_items), np.nan)
    full[data.users, data.items] = data.ratings
    return full.T if item_based else full


def baseline_matrix(data):
    base = BaselinePredictor(reg_user=15.0, reg_item=10.0, n_epochs=10).fit(data)
    return base.mean_ + base.user_bias_[:, None] + base.item_bias_[None, :]


def slow_similarity(values, kind, shrinkage):
    """Pairwise loop over rows of ``values`` (NaN = unobserved), co-rated columns only."""
    n = values.shape[0]
    out = np.zeros((n, n))
    for a in range(n):
        for b in range(n):
            common = ~np.isnan(values[a]) & ~np.isnan(values[b])
            x, y = values[a, common], values[b, common]
            if kind == "pearson":
                x, y = x - x.mean() if len(x) else x, y - y.mean() if len(y) else y
            denom = np.sqrt((x**2).sum() * (y**2).sum())
            n_common = common.sum()
            if denom > 0:
                out[a, b] = (x @ y) / denom * n_common / (n_common + shrinkage)
    return out


@pytest.mark.parametrize("cls", [UserKNN, ItemKNN])
@pytest.mark.parametrize("similarity", ["cosine", "pearson", "pearson_baseline"])
@pytest.mark.parametrize("shrinkage", [0.0, 7.0])
def test_similarity_matches_pairwise_reference(tiny, cls, similarity, shrinkage):
    model = cls(similarity=similarity, shrinkage=shrinkage).fit(tiny)
    item_based = cls is ItemKNN
    values = dense_ratings(tiny, item_based)
    if similarity == "pearson_baseline":
        base = baseline_matrix(tiny)
        values = values - (base.T if item_based else base)
    kind = "pearson" if similarity == "pearson" else "cosine"
    np.testing.assert_allclose(model.similarity_, slow_similarity(values, kind, shrinkage),
                               rtol=1e-5, atol=1e-6)


def test_shrinkage_scales_by_common_support(tiny):
    plain = ItemKNN(similarity="pearson", shrinkage=0.0).fit(tiny).similarity_
    shrunk = ItemKNN(similarity="pearson", shrinkage=25.0).fit(tiny).similarity_
    binary = tiny.to_csr(binary=True)
    n_common = (binary.T @ binary).toarray()
    np.testing.assert_allclose(shrunk, plain * n_common / (n_common + 25.0), rtol=1e-5, atol=1e-7)
    assert np.all(np.abs(shrunk) <= np.abs(plain) + 1e-7)
    assert np.abs(shrunk).sum() < np.abs(plain).sum()


def surprise_trainset(df):
    surprise = pytest.importorskip("surprise")
    reader = surprise.Reader(rating_scale=(1, 5))
    data = surprise.Dataset.load_from_df(df[["user_id", "item_id", "rating"]], reader)
    return surprise, data.build_full_trainset()


@pytest.mark.parametrize("user_based", [True, False])
@pytest.mark.parametrize("name", ["cosine", "pearson", "pearson_baseline"])
def test_similarity_matches_surprise(name, user_based):
    df = tiny_frame(seed=3)
    surprise, trainset = surprise_trainset(df)
    algo = surprise.KNNBasic(sim_options={"name": name, "user_based": user_based,
                                          "shrinkage": 0}, verbose=False)
    algo.fit(trainset)
    cls = UserKNN if user_based else ItemKNN
    model = cls(similarity=name, shrinkage=0.0).fit(reclib.Interactions.from_dataframe(df))
    raw_ids = [trainset.to_raw_uid(n) if user_based else trainset.to_raw_iid(n)
               for n in range(algo.sim.shape[0])]
    index = model.user_index(raw_ids) if user_based else model.item_index(raw_ids)
    ours = model.similarity_[np.ix_(index, index)]
    # Surprise sets the diagonal to 1 and its pearson_baseline shrinks by (n - 1) / (n - 1 + λ),
    # which is undefined for a single common rating: compare pairs with n >= 2 off the diagonal.
    binary = model.seen_ if not user_based else model.seen_.T
    n_common = (binary.T @ binary).toarray()[np.ix_(index, index)]
    keep = (n_common >= 2) & ~np.eye(len(index), dtype=bool)
    np.testing.assert_allclose(ours[keep], algo.sim[keep], rtol=1e-5, atol=1e-6)


def slow_prediction(model, data, user, item, centering, k, min_k):
    """r_hat = c_ui + sum_j s_ij (r_uj - c_uj) / sum_j s_ij over the top-k positive neighbours."""
    item_based = isinstance(model, ItemKNN)
    ratings = np.full((data.n_users, data.n_items), np.nan)
    ratings[data.users, data.items] = data.ratings
    base = baseline_matrix(data)
    mu = data.ratings.mean()

    def centre(u, i):
        if centering == "baseline":
            return (mu + (model.user_bias_[u] if u >= 0 else 0.0)
                    + (model.item_bias_[i] if i >= 0 else 0.0))
        if centering == "mean":
            target = i if item_based else u
            if target < 0:
                return mu
            row = ratings[:, i] if item_based else ratings[u]
            return np.nanmean(row)
        return 0.0

    fallback = centre(user, item) if centering is not None else mu
    if user < 0 or item < 0:
        return fallback
    if item_based:
        candidates = [(model.similarity_[item, j], j, ratings[user, j] - centre(user, j))
                      for j in range(data.n_items) if not np.isnan(ratings[user, j])]
    else:
        candidates = [(model.similarity_[user, v], v, ratings[v, item] - centre(v, item))
                      for v in range(data.n_users) if not np.isnan(ratings[v, item])]
    positive = sorted([c for c in candidates if c[0] > 0], key=lambda c: (-c[0], c[1]))[:k]
    if len(positive) < min_k:
        return fallback
    assert base.shape == ratings.shape
    return centre(user, item) + sum(s * e for s, _, e in positive) / sum(s for s, _, _ in positive)


@pytest.mark.parametrize("cls", [UserKNN, ItemKNN])
@pytest.mark.parametrize("centering", ["baseline", "mean", None])
@pytest.mark.parametrize("k,min_k", [(3, 1), (40, 1), (4, 3)])
def test_prediction_matches_literal_formula(tiny, cls, centering, k, min_k):
    model = cls(k=k, min_k=min_k, centering=centering, similarity="pearson",
                shrinkage=2.0).fit(tiny)
    users = np.r_[np.repeat(np.arange(tiny.n_users), tiny.n_items), -1, 0, -1]
    items = np.r_[np.tile(np.arange(tiny.n_items), tiny.n_users), 0, -1, -1]
    got = model._predict(users, items)
    want = [slow_prediction(model, tiny, u, i, centering, k, min_k) for u, i in zip(users, items)]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_unknown_ids_fall_back_to_known_baseline_terms(tiny):
    model = ItemKNN().fit(tiny)
    user, item = tiny.user_ids[0], tiny.item_ids[0]
    got = model.predict([user, "new", "new"], ["new", item, "other"], allow_unknown=True)
    np.testing.assert_allclose(got, [model.mean_ + model.user_bias_[0],
                                     model.mean_ + model.item_bias_[0], model.mean_])


@pytest.mark.parametrize("user_based", [True, False])
@pytest.mark.parametrize("algo_name,centering", [("KNNBasic", None), ("KNNWithMeans", "mean")])
def test_predictions_match_surprise(user_based, algo_name, centering):
    df = tiny_frame(n_users=20, n_items=12, seed=5)
    surprise, trainset = surprise_trainset(df)
    algo = getattr(surprise, algo_name)(k=4, sim_options={"name": "pearson",
                                                          "user_based": user_based},
                                        verbose=False)
    algo.fit(trainset)
    cls = UserKNN if user_based else ItemKNN
    model = cls(k=4, similarity="pearson", shrinkage=0.0, centering=centering)
    model.fit(reclib.Interactions.from_dataframe(df))
    users = np.repeat(model.user_ids_, model.n_items)
    items = np.tile(model.item_ids_, model.n_users)
    want = [algo.predict(u, i, clip=False).est for u, i in zip(users, items)]
    np.testing.assert_allclose(model.predict(users, items), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("params,match", [
    ({"k": 0}, "k == 0"),
    ({"min_k": 0}, "min_k == 0"),
    ({"k": 5, "min_k": 6}, "min_k == 6"),
    ({"shrinkage": -1.0}, "shrinkage == -1.0"),
    ({"similarity": "jaccard"}, "similarity == 'jaccard'"),
    ({"similarity": "pearson", "feedback": "implicit"}, "similarity == 'pearson'"),
    ({"similarity": "dot"}, "similarity == 'dot'"),
    ({"centering": "median"}, "centering == 'median'"),
    ({"feedback": "binary"}, "feedback == 'binary'"),
    ({"weighting": "bm25"}, "weighting == 'bm25'"),
    ({"feedback": "implicit", "weighting": "idf"}, "weighting == 'idf'"),
    ({"feedback": "implicit", "weighting": "bm25", "bm25_b": 2.0}, "bm25_b == 2.0"),
])
@pytest.mark.parametrize("cls", [UserKNN, ItemKNN])
def test_bad_hyper_parameters_are_named(tiny, cls, params, match):
    with pytest.raises(ValueError, match=match):
        cls(**params).fit(tiny)


# ---------------------------------------------------------------------------- implicit mode
def random_binary(n_users=60, n_items=25, density=0.25, seed=0):
    rng = np.random.default_rng(seed)
    matrix = (rng.random((n_users, n_items)) < density).astype(np.float64)
    matrix[np.arange(n_users), rng.integers(0, n_items, n_users)] = 1.0
    matrix[rng.integers(0, n_users, n_items), np.arange(n_items)] = 1.0
    return sp.csr_matrix(matrix)


@pytest.mark.filterwarnings("ignore:Method expects CSR input")
@pytest.mark.parametrize("name,params", [
    ("CosineRecommender", {}),
    ("TFIDFRecommender", {"weighting": "tfidf"}),
    ("BM25Recommender", {"weighting": "bm25", "similarity": "dot"}),
])
def test_implicit_item_knn_matches_implicit_library(name, params):
    nn = pytest.importorskip("implicit.nearest_neighbours")
    matrix = random_binary()
    n_items = matrix.shape[1]
    reference = getattr(nn, name)(K=n_items)
    reference.fit(matrix, show_progress=False)
    model = ItemKNN(feedback="implicit", k=n_items - 1, **params).fit(matrix)
    unseen = matrix.toarray() == 0
    want = (matrix @ reference.similarity).toarray()
    got = model.score_block(np.arange(matrix.shape[0]), exclude_seen=False)
    np.testing.assert_allclose(got[unseen], want[unseen], rtol=1e-6, atol=1e-9)
    ids, _ = reference.recommend(np.arange(5), matrix[:5], N=3)
    ours, _ = model.recommend(np.arange(5), k=3)
    np.testing.assert_array_equal(ours, ids)


@pytest.mark.filterwarnings("ignore:Method expects CSR input")
def test_implicit_top_k_neighbours_match_implicit_library():
    nn = pytest.importorskip("implicit.nearest_neighbours")
    matrix = random_binary(seed=1)
    reference = nn.CosineRecommender(K=6)   # implicit counts an item among its own K
    reference.fit(matrix, show_progress=False)
    model = ItemKNN(feedback="implicit", k=5).fit(matrix)
    theirs = reference.similarity.tolil()
    theirs.setdiag(0)
    theirs = theirs.tocsr()
    for j in range(matrix.shape[1]):
        # compare the kept values (ties may keep different, equally similar, items)
        np.testing.assert_allclose(np.sort(model.similarity_[j].data),
                                   np.sort(theirs[j].data[theirs[j].data > 0])[-5:], rtol=1e-6)


def test_implicit_user_knn_matches_literal_formula():
    matrix = random_binary(seed=2)
    x = matrix.toarray()
    n_users = x.shape[0]
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = unit @ unit.T * (x @ x.T) / (x @ x.T + 3.0)
    np.fill_diagonal(sim, 0.0)
    every = UserKNN(feedback="implicit", k=n_users - 1, shrinkage=3.0).fit(matrix)
    np.testing.assert_allclose(every.similarity_.toarray(), sim, rtol=1e-6, atol=1e-9)
    model = UserKNN(feedback="implicit", k=6, shrinkage=3.0).fit(matrix)
    fitted_sim = every.similarity_.toarray()    # same floating-point values, so ties agree
    np.fill_diagonal(fitted_sim, -np.inf)
    want = np.zeros_like(x)
    for u in range(n_users):
        neighbours = sorted(range(n_users), key=lambda v: (-fitted_sim[u, v], v))[:6]
        want[u] = sum(fitted_sim[u, v] * x[v] for v in neighbours)
    got = model.score_block(np.arange(n_users), exclude_seen=False)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("cls", [UserKNN, ItemKNN])
def test_implicit_mode_contract(cls, tmp_path):
    data = reclib.Interactions.from_dataframe(planted_frame(), rating_col=None)
    model = cls(feedback="implicit", k=10, weighting="bm25").fit(data)
    items, scores = model.recommend(data.user_ids, k=3)
    assert np.mean([own_half(u, i) for u, row in zip(data.user_ids, items) for i in row]) >= 0.8
    again = model.predict(np.repeat(data.user_ids, 3), items.ravel()).reshape(items.shape)
    np.testing.assert_allclose(again, scores, rtol=1e-6, atol=1e-9)
    loaded = Recommender.load(model.save(tmp_path / "knn"))
    np.testing.assert_array_equal(loaded.recommend(data.user_ids, k=3)[0], items)
    assert model.predict(["u0"], ["unseen"], allow_unknown=True)[0] == 0.0


def test_similar_items_uses_learned_similarity(tiny):
    model = ItemKNN(similarity="cosine", shrinkage=0.0).fit(tiny)
    ids, sims = model.similar_items(tiny.item_ids[:3], k=2)
    for n, item in enumerate(tiny.item_ids[:3]):
        row = model.similarity_[n].astype(float)
        row[n] = -np.inf
        np.testing.assert_allclose(sims[n], np.sort(row)[::-1][:2], rtol=1e-6)
        assert item not in ids[n]


# ---------------------------------------------------------------------------- MovieLens 100K
@pytest.mark.slow
def test_item_knn_baseline_beats_baseline_on_ml100k(ml100k):
    train, test = next(reclib.split.kfold(ml100k, n_splits=5, seed=0))
    knn = reclib.evaluation.evaluate_ratings(ItemKNN().fit(train), test)["rmse"]
    base = reclib.evaluation.evaluate_ratings(BaselinePredictor().fit(train), test)["rmse"]
    assert knn < base - 0.02


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Method expects CSR input")
def test_implicit_item_knn_matches_implicit_ndcg_on_ml100k(ml100k_topn):
    nn = pytest.importorskip("implicit.nearest_neighbours")
    train, test = ml100k_topn
    model = ItemKNN(feedback="implicit", k=20).fit(train)
    reference = nn.CosineRecommender(K=21)
    reference.fit(train.to_csr(binary=True), show_progress=False)

    class Implicit(Recommender):
        def _fit(self, data):
            self.similarity_ = reference.similarity

        def _score_users(self, users):
            return (self.seen_[users] @ self.similarity_).toarray()

    ours = reclib.evaluation.evaluate_ranking(model, train, test, k=10)["ndcg@10"]
    theirs = reclib.evaluation.evaluate_ranking(Implicit().fit(train), train, test,
                                                k=10)["ndcg@10"]
    assert abs(ours - theirs) < 0.005
