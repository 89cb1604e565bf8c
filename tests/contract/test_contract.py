"""The contract every reclib recommender passes (DESIGN §7).

Models are discovered from ``reclib.models.__all__`` (and the other model namespaces once
they exist), so a new model is tested the moment it is exported. ``FAST_PARAMS`` holds small
settings for tiny data; a model absent from it is tested at its defaults.
"""

import importlib

import numpy as np
import pytest

import reclib
from reclib.models import NotFittedError, Recommender
from tests.conftest import own_half, planted_frame

#: Small, quick settings per model for the tiny planted data.
FAST_PARAMS = {
    "BaselinePredictor": {"random_state": 0},
    "ImplicitALS": {"n_factors": 4, "n_epochs": 10, "reg": 0.1, "alpha": 5.0},
    "BPR": {"n_factors": 4, "n_epochs": 60, "lr": 0.05, "reg": 0.01},
    "EASE": {"reg": 10.0},
    "UserKNN": {"k": 10, "shrinkage": 10.0},
    "ItemKNN": {"k": 10, "shrinkage": 10.0},
    "FunkSVD": {"n_factors": 4, "n_epochs": 60, "lr": 0.02},
    "BiasedMF": {"n_factors": 4, "n_epochs": 60, "lr": 0.02},
    "ExplicitALS": {"n_factors": 4, "n_epochs": 10},
    "SVDpp": {"n_factors": 4, "n_epochs": 60, "lr": 0.02},
    "BayesianMF": {"n_factors": 4, "n_samples": 20, "burn_in": 10},
    # reclib.neural (PyTorch): a few epochs of large steps on the CPU
    "GMF": {"n_factors": 8, "n_epochs": 20, "batch_size": 128, "lr": 0.03, "device": "cpu"},
    "MLP": {"layers": (32, 16), "n_epochs": 40, "batch_size": 128, "lr": 0.03, "device": "cpu"},
    "NeuMF": {"n_factors": 8, "layers": (32, 16), "n_epochs": 5, "batch_size": 128, "lr": 0.005,
              "reg": 0.01, "pretrain_params": {"n_epochs": 20, "lr": 0.03}, "device": "cpu"},
    "LightGCN": {"n_factors": 8, "n_layers": 2, "n_epochs": 20, "batch_size": 128, "lr": 0.05,
                 "device": "cpu"},
    "AutoRec": {"n_hidden": 16, "n_epochs": 30, "batch_size": 16, "lr": 0.03, "reg": 0.1,
                "device": "cpu"},
    "FM": {"n_factors": 8, "n_epochs": 20, "batch_size": 128, "lr": 0.03, "reg": 0.1,
           "device": "cpu"},
    "DeepFM": {"n_factors": 8, "layers": [16], "n_epochs": 20, "batch_size": 128, "lr": 0.03,
               "reg": 0.1, "dropout": 0.0, "device": "cpu"},
    "TwoTower": {"n_factors": 8, "layers": [16], "out": 8, "n_epochs": 60, "batch_size": 32,
                 "lr": 0.01, "device": "cpu"},
    # reclib.keras (TensorFlow): the same settings as the PyTorch twins
    "KerasGMF": {"n_factors": 8, "n_epochs": 20, "batch_size": 128, "lr": 0.03},
    "KerasTwoTower": {"n_factors": 8, "layers": [16], "out": 8, "n_epochs": 40,
                      "batch_size": 32, "lr": 0.01},
}

#: Models whose list is the same for every user: they skip the planted-preference check.
NON_PERSONALISED = {"GlobalMean", "Popularity", "Random", "BaselinePredictor"}


def _namespaces():
    spaces = [reclib.models]
    for name in ("reclib.neural", "reclib.keras"):  # optional extras: torch, tf
        try:
            spaces.append(importlib.import_module(name))
        except ImportError:
            pass
    return spaces


def _model_classes():
    classes = []
    abstract = {"Recommender", "NeuralRecommender", "KerasRecommender"}
    for space in _namespaces():
        for name in space.__all__:
            obj = getattr(space, name)
            if (isinstance(obj, type) and issubclass(obj, Recommender)
                    and obj.__name__ not in abstract):
                classes.append(obj)
    return classes


MODELS = _model_classes()
IDS = [cls.__name__ for cls in MODELS]


def make(cls, **extra):
    params = dict(FAST_PARAMS.get(cls.__name__, {}))
    if "random_state" in cls._param_names():
        params.setdefault("random_state", 0)
    params.update(extra)
    return cls(**params)


@pytest.fixture(scope="module")
def data():
    return reclib.Interactions.from_dataframe(planted_frame())


@pytest.fixture(scope="module")
def fitted(data):
    return {cls.__name__: make(cls).fit(data) for cls in MODELS}


@pytest.mark.parametrize("cls", MODELS, ids=IDS)
class TestContract:
    def test_constructor_only_stores(self, cls):
        model = make(cls)
        assert not [k for k in vars(model) if k.endswith("_")]
        assert set(model.get_params()) == set(cls._param_names())

    def test_fit_returns_self(self, cls, data):
        model = make(cls)
        assert model.fit(data) is model
        assert model.n_users == data.n_users and model.n_items == data.n_items

    def test_not_fitted_error(self, cls):
        model = make(cls)
        with pytest.raises(NotFittedError, match="not fitted"):
            model.recommend(["u0"])
        with pytest.raises(NotFittedError, match="not fitted"):
            model.predict(["u0"], ["i0"])

    def test_recommend_shapes_order_and_no_seen(self, cls, data, fitted):
        model = fitted[cls.__name__]
        users = data.user_ids
        items, scores = model.recommend(users, k=5)
        assert items.shape == scores.shape == (len(users), 5)
        assert np.all(np.diff(scores, axis=1) <= 1e-12)
        seen = data.to_dataframe().groupby("user_id")["item_id"].apply(set)
        for u, row in zip(users, items):
            assert not set(row) & seen[u]
            assert len(set(row)) == 5

    def test_batch_equals_single_calls(self, cls, data, fitted):
        model = fitted[cls.__name__]
        users = data.user_ids[:6]
        items, scores = model.recommend(users, k=4)
        for n, u in enumerate(users):
            one_items, one_scores = model.recommend([u], k=4)
            np.testing.assert_allclose(one_scores[0], scores[n], rtol=1e-6, atol=1e-9)
        pairs_u = np.repeat(users, 3)
        pairs_i = np.tile(data.item_ids[:3], len(users))
        batch = model.predict(pairs_u, pairs_i)
        single = [model.predict([u], [i])[0] for u, i in zip(pairs_u, pairs_i)]
        np.testing.assert_allclose(batch, single, rtol=1e-6, atol=1e-9)

    def test_predict_agrees_with_recommend(self, cls, data, fitted):
        model = fitted[cls.__name__]
        users = data.user_ids[:5]
        items, scores = model.recommend(users, k=3)
        again = model.predict(np.repeat(users, 3), items.ravel()).reshape(items.shape)
        np.testing.assert_allclose(again, scores, rtol=1e-5, atol=1e-6)

    def test_bad_input_is_named(self, cls, fitted):
        model = fitted[cls.__name__]
        with pytest.raises(ValueError, match="k == 0"):
            model.recommend(["u0"], k=0)
        with pytest.raises(ValueError, match="unknown user"):
            model.recommend(["nobody"])
        with pytest.raises(ValueError, match="unknown item"):
            model.predict(["u0"], ["nothing"])

    def test_save_load_round_trip(self, cls, data, fitted, tmp_path):
        model = fitted[cls.__name__]
        path = model.save(tmp_path / "model")
        loaded = Recommender.load(path)
        assert type(loaded) is cls and loaded.get_params() == model.get_params()
        a_items, a_scores = model.recommend(data.user_ids, k=5)
        b_items, b_scores = loaded.recommend(data.user_ids, k=5)
        np.testing.assert_array_equal(a_items, b_items)
        np.testing.assert_allclose(a_scores, b_scores)
        with np.load(path, allow_pickle=False) as npz:
            assert "__meta__" in npz.files

    def test_same_seed_same_result(self, cls, data):
        a = make(cls).fit(data).recommend(data.user_ids, k=5)
        b = make(cls).fit(data).recommend(data.user_ids, k=5)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_allclose(a[1], b[1])

    def test_refit_starts_from_scratch(self, cls, data):
        other = reclib.Interactions.from_dataframe(planted_frame(seed=1))
        refit = make(cls).fit(other).fit(data)
        fresh = make(cls).fit(data)
        np.testing.assert_allclose(refit.recommend(data.user_ids, k=5)[1],
                                   fresh.recommend(data.user_ids, k=5)[1], rtol=1e-6, atol=1e-9)

    def test_planted_preferences_are_recovered(self, cls, data, fitted):
        if cls.__name__ in NON_PERSONALISED:
            pytest.skip("the same list for every user: nothing personal to recover")
        items, _ = fitted[cls.__name__].recommend(data.user_ids, k=3)
        share = np.mean([own_half(u, i) for u, row in zip(data.user_ids, items) for i in row])
        assert share >= 0.8, f"only {share:.0%} of the top-3 items are in the user's own half"
