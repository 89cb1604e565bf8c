"""The contract every reclib recommender passes (the book's quality bars).

Models are discovered, not listed: every concrete :class:`~reclib.models.Recommender`
exported from ``reclib.models``, ``reclib.neural`` and ``reclib.keras`` is tested the moment
it is exported. Under CI (``CI`` set) an optional namespace that fails to import is a test
failure, never a silent skip. ``FAST_PARAMS`` holds small settings for tiny data; a model
absent from it is tested at its defaults.
"""

import inspect
import importlib
import os

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone

import reclib
from reclib.core import ModelFileError
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
    "BPRMF": {"n_factors": 4, "n_epochs": 40, "batch_size": 32, "lr": 0.05, "reg": 0.03,
              "optimizer": "sparse_adam", "device": "cpu"},
    "TorchImplicitALS": {"n_factors": 4, "n_epochs": 10, "reg": 0.1, "alpha": 5.0,
                         "device": "cpu"},
    "ContentBased": {"min_df": 1},
    "SASRec": {"n_factors": 16, "n_layers": 1, "max_len": 20, "n_epochs": 5, "lr": 0.01,
               "device": "cpu"},
    "GRU4Rec": {"n_factors": 16, "hidden_size": 16, "max_len": 20, "n_epochs": 5, "lr": 0.01,
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
    "KerasSASRec": {"n_factors": 16, "n_layers": 1, "max_len": 20, "n_epochs": 5, "lr": 0.01},
}

#: Models whose list is the same for every user: they skip the planted-preference check.
NON_PERSONALISED = {"GlobalMean", "Popularity", "Random", "BaselinePredictor"}


OPTIONAL_NAMESPACES = ("reclib.neural", "reclib.keras")   # extras: torch, tf
IMPORT_ERRORS: dict[str, str] = {}


def _namespaces():
    spaces = [reclib.models]
    for name in OPTIONAL_NAMESPACES:
        try:
            spaces.append(importlib.import_module(name))
        except ImportError as err:
            if os.environ.get("CI"):
                raise
            IMPORT_ERRORS[name] = str(err)
    return spaces


def _model_classes():
    classes = []
    for space in _namespaces():
        for name in space.__all__:
            obj = getattr(space, name)
            if isinstance(obj, type) and issubclass(obj, Recommender) and not obj._abstract:
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


def _planted(seed=0, with_text=False):
    frame = planted_frame(seed=seed)
    if not with_text:
        return reclib.Interactions.from_dataframe(frame)
    items = sorted(frame["item_id"].unique(), key=lambda i: int(i[1:]))
    text = {"item_id": items,
            "genres": ["left|drama" if int(i[1:]) < 15 else "right|comedy" for i in items]}
    import pandas as pd
    return reclib.Interactions.from_dataframe(frame, item_features=pd.DataFrame(text))


#: Models that need side information get data that carries it.
NEEDS_TEXT = {"ContentBased"}
_DATA: dict = {}
_FITTED: dict = {}


@pytest.fixture
def data(cls):
    key = cls.__name__ in NEEDS_TEXT
    if key not in _DATA:
        _DATA[key] = _planted(with_text=key)
    return _DATA[key]


@pytest.fixture
def fitted(cls, data):
    if cls.__name__ not in _FITTED:
        _FITTED[cls.__name__] = make(cls).fit(data)
    return {cls.__name__: _FITTED[cls.__name__]}


def test_every_optional_namespace_imported():
    """Outside CI a missing extra is reported here, as a skip with its reason."""
    if IMPORT_ERRORS:
        pytest.skip(f"not installed: {IMPORT_ERRORS}")


def test_discovery_finds_every_exported_model():
    names = set(IDS)
    assert {"Popularity", "EASE", "ImplicitALS", "BPR", "BiasedMF", "ItemKNN"} <= names
    assert not names & {"Recommender", "NeuralRecommender", "KerasRecommender", "FactorModel"}


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
            assert "__header__" in npz.files

    def test_same_seed_same_result(self, cls, data):
        a = make(cls).fit(data).recommend(data.user_ids, k=5)
        b = make(cls).fit(data).recommend(data.user_ids, k=5)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_allclose(a[1], b[1])

    def test_refit_starts_from_scratch(self, cls, data):
        other = _planted(seed=1, with_text=cls.__name__ in NEEDS_TEXT)
        refit = make(cls).fit(other).fit(data)
        fresh = make(cls).fit(data)
        np.testing.assert_allclose(refit.recommend(data.user_ids, k=5)[1],
                                   fresh.recommend(data.user_ids, k=5)[1], rtol=1e-6, atol=1e-9)

    def test_planted_preferences_are_recovered(self, cls, data, fitted):
        if cls.__name__ in NON_PERSONALISED:
            pytest.skip("the same list for every user: nothing personal to recover")
        if _is_sequential(cls):
            pytest.skip("a next-item model learns order, and the planted data have none (their "
                        "timestamps are random); tests/neural/test_sasrec.py plants an order")
        items, _ = fitted[cls.__name__].recommend(data.user_ids, k=3)
        share = np.mean([own_half(u, i) for u, row in zip(data.user_ids, items) for i in row])
        assert share >= 0.8, f"only {share:.0%} of the top-3 items are in the user's own half"

    # ------------------------------------------------------------------ scikit-learn protocol
    def test_get_set_params_and_clone(self, cls, fitted):
        model = fitted[cls.__name__]
        copy = clone(model)
        assert type(copy) is cls and copy is not model
        assert copy.get_params(deep=False).keys() == model.get_params(deep=False).keys()
        for name, value in model.get_params(deep=False).items():
            assert repr(copy.get_params(deep=False)[name]) == repr(value)
        with pytest.raises(NotFittedError):
            copy.recommend(model.user_ids_[:1])
        assert set(model.get_params(deep=True)) >= set(cls._param_names())
        with pytest.raises(ValueError, match="has no parameter 'not_a_parameter'"):
            clone(model).set_params(not_a_parameter=1)
        if cls._param_names():
            name = cls._param_names()[0]
            fresh = clone(model)
            assert fresh.set_params(**{name: getattr(model, name)}) is fresh

    def test_every_hyper_parameter_is_a_constructor_argument(self, cls, fitted):
        """Nothing the model reads at fit time hides outside its signature."""
        model = fitted[cls.__name__]
        stored = {k for k in vars(make(cls)) if not k.startswith("_")}
        assert stored == set(cls._param_names())
        if hasattr(model, "train_config"):
            from reclib.neural.estimator import TRAINING_PARAMS
            missing = [p for p in TRAINING_PARAMS if p not in cls._param_names()
                       and not (cls.__module__.startswith("reclib.keras") and
                                p in ("weight_decay", "device"))]
            assert not missing, f"{cls.__name__} hides training settings {missing}"

    # ------------------------------------------------------------------ inputs
    def test_fit_on_a_csr_matrix(self, cls, data):
        X = data.to_csr()
        if "timestamps" in str(getattr(cls, "_requires", "")) or _is_sequential(cls):
            with pytest.raises(ValueError, match="needs timestamps"):
                make(cls).fit(X)            # a bare matrix has no order to learn from
            return
        model = make(cls).fit(X)
        assert model.n_users == X.shape[0] and model.n_items == X.shape[1]
        np.testing.assert_array_equal(model.item_ids_, np.arange(X.shape[1]))
        items, scores = model.recommend(np.arange(3), k=4)
        assert items.shape == (3, 4) and np.isfinite(scores).all()
        for u, row in enumerate(items):
            assert not set(row) & set(X[u].indices)

    def test_similar_items_where_the_model_has_them(self, cls, data, fitted):
        model = fitted[cls.__name__]
        has = (type(model).similar_items is not Recommender.similar_items
               or model._item_vectors() is not None)
        ids = data.item_ids[:4]
        if not has:
            with pytest.raises(NotImplementedError, match="no item representation"):
                model.similar_items(ids, k=3)
            return
        items, sims = model.similar_items(ids, k=3)
        assert items.shape == sims.shape == (4, 3)
        assert all(i not in row for i, row in zip(ids, items))
        assert np.all(np.diff(sims, axis=1) <= 1e-12)
        with pytest.raises(ValueError, match="k =="):
            model.similar_items(ids, k=data.n_items)

    def test_candidates_and_filters(self, cls, data, fitted):
        model = fitted[cls.__name__]
        users = data.user_ids[:5]
        pool = data.item_ids[::2]
        items, scores = model.recommend(users, k=3, exclude_seen=False, items=pool)
        assert np.isin(items, pool).all()
        full_items, full_scores = model.recommend(users, k=data.n_items, exclude_seen=False)
        for row, got in zip(full_items, items):           # the pool's best, in the same order
            np.testing.assert_array_equal(got, [i for i in row if i in set(pool)][:3])
        banned = full_items[:, 0]
        items, _ = model.recommend(users, k=3, exclude_seen=False, filter_items=banned)
        assert not np.isin(items, banned).any()
        with pytest.raises(ValueError, match="unknown item"):
            model.recommend(users, k=3, items=["no such item"])
        with pytest.raises(TypeError, match="exclude_seen must be True or False"):
            model.recommend(users, exclude_seen="no")

    # ------------------------------------------------------------------ persistence
    def test_non_default_hyper_parameters_round_trip(self, cls, data, tmp_path):
        params = _non_default_params(cls)
        model = cls(**params).fit(data)
        loaded = Recommender.load(model.save(tmp_path / "m"))
        assert loaded.get_params(deep=False) == model.get_params(deep=False)
        changed = [n for n in params if params[n] != _defaults(cls).get(n)]
        for name in changed:
            assert getattr(loaded, name) == params[name], name

    def test_load_agrees_with_save_on_the_file_name(self, cls, fitted, tmp_path):
        model = fitted[cls.__name__]
        model.save(tmp_path / "m")
        assert type(Recommender.load(tmp_path / "m")) is cls

    def test_corrupt_arrays_are_refused(self, cls, fitted, tmp_path):
        import zipfile
        path = fitted[cls.__name__].save(tmp_path / "m")
        with zipfile.ZipFile(path) as z:
            members = {n: z.read(n) for n in z.namelist()}
        name = next(n for n in members if n.startswith("attr/") or n.startswith("sparse/"))
        data = bytearray(members[name])
        data[-1] ^= 0xFF                                     # one flipped byte in the payload
        members[name] = bytes(data)
        bad = tmp_path / "bad.npz"
        with zipfile.ZipFile(bad, "w") as z:
            for n, b in members.items():
                z.writestr(n, b)
        with pytest.raises(ModelFileError, match="bad.npz"):
            Recommender.load(bad)


def _is_sequential(cls) -> bool:
    return any(base.__name__ == "SequentialRecommender" for base in cls.__mro__)


def _defaults(cls) -> dict:
    sig = inspect.signature(cls.__init__)
    return {p.name: p.default for p in sig.parameters.values() if p.name != "self"}


def _perturbed(value):
    """A different value of the same type, or None when there is no safe guess."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 1.5 if value else 0.25
    return None


def _non_default_params(cls) -> dict:
    """FAST settings, with every other numeric or boolean default moved off its default.

    A move the model refuses (a bound, a flag that needs another one) is taken back, so the
    test fits a valid model; strings, None and containers keep their defaults unless FAST
    sets them.
    """
    params = dict(FAST_PARAMS.get(cls.__name__, {}))
    if "random_state" in cls._param_names():
        params.setdefault("random_state", 7)
    for name, default in _defaults(cls).items():
        if name in params or name in ("verbose", "device", "n_epochs", "n_samples", "burn_in"):
            continue
        guess = _perturbed(default)
        if guess is None:
            continue
        try:
            cls(**{**params, name: guess})._validate_params()
        except (ValueError, TypeError):
            continue
        params[name] = guess
    if cls.__name__ in ("BaselinePredictor",):
        params.setdefault("n_epochs", 3)
    return params
