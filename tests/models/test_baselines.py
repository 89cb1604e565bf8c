"""BaselinePredictor: closed-form steps, SGD gradient and the exact optimum, bad input."""

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.sparse.linalg as spla

import reclib
from reclib.models import BaselinePredictor, GlobalMean, Popularity
from reclib.models.baselines import baseline_objective
from tests.conftest import planted_frame


@pytest.fixture(scope="module")
def data():
    return reclib.Interactions.from_dataframe(planted_frame())


def exact_biases(data, reg_user, reg_item):
    """Minimiser of J by solving its normal equations as one sparse least-squares problem."""
    n, n_u, n_i = len(data), data.n_users, data.n_items
    rows = np.r_[np.arange(n), np.arange(n)]
    design = sp.csr_matrix((np.ones(2 * n), (rows, np.r_[data.users, n_u + data.items])),
                           shape=(n, n_u + n_i))
    penalty = sp.diags(np.r_[np.full(n_u, reg_user), np.full(n_i, reg_item)])
    rhs = design.T @ (data.ratings - data.ratings.mean())
    solution = spla.spsolve((design.T @ design + penalty).tocsc(), rhs)
    return solution[:n_u], solution[n_u:]


def test_als_converges_to_exact_optimum(data):
    model = BaselinePredictor(method="als", reg_user=3.0, reg_item=2.0, n_epochs=200).fit(data)
    b_u, b_i = exact_biases(data, 3.0, 2.0)
    np.testing.assert_allclose(model.user_bias_, b_u, atol=1e-8)
    np.testing.assert_allclose(model.item_bias_, b_i, atol=1e-8)
    assert np.all(np.diff(model.loss_history_) <= 1e-9)  # coordinate descent never goes up


def test_sgd_reaches_the_same_optimum(data):
    model = BaselinePredictor(method="sgd", reg_user=3.0, reg_item=2.0, n_epochs=300, lr=0.01,
                              random_state=0).fit(data)
    b_u, b_i = exact_biases(data, 3.0, 2.0)
    np.testing.assert_allclose(model.user_bias_, b_u, atol=0.03)
    np.testing.assert_allclose(model.item_bias_, b_i, atol=0.03)


def test_sgd_step_is_the_per_rating_share_of_the_gradient(data):
    """Summing the per-rating SGD directions over all ratings gives -grad J (finite differences)."""
    rng = np.random.default_rng(0)
    b_u, b_i = rng.normal(size=data.n_users), rng.normal(size=data.n_items)
    mu, lam_u, lam_i = data.ratings.mean(), 3.0, 2.0
    n_u = np.bincount(data.users, minlength=data.n_users)
    n_i = np.bincount(data.items, minlength=data.n_items)
    e = data.ratings - mu - b_u[data.users] - b_i[data.items]
    step_u = np.bincount(data.users, e - lam_u / n_u[data.users] * b_u[data.users], data.n_users)
    step_i = np.bincount(data.items, e - lam_i / n_i[data.items] * b_i[data.items], data.n_items)

    def J(bu, bi):
        return baseline_objective(data.ratings, data.users, data.items, mu, bu, bi, lam_u, lam_i)

    h = 1e-6
    for u in range(3):
        d = np.zeros_like(b_u)
        d[u] = h
        assert -(J(b_u + d, b_i) - J(b_u - d, b_i)) / (2 * h) == pytest.approx(step_u[u], rel=1e-6)
    for i in range(3):
        d = np.zeros_like(b_i)
        d[i] = h
        assert -(J(b_u, b_i + d) - J(b_u, b_i - d)) / (2 * h) == pytest.approx(step_i[i], rel=1e-6)


def test_two_means_double_count():
    """mu_u + mu_i counts the global level twice; mu + b_u + b_i does not."""
    df = planted_frame()
    data = reclib.Interactions.from_dataframe(df)
    user_mean = df.groupby("user_id")["rating"].transform("mean")
    item_mean = df.groupby("item_id")["rating"].transform("mean")
    two_means = reclib.evaluation.rmse(df["rating"], user_mean + item_mean)
    model = BaselinePredictor(reg_user=0.0, reg_item=0.0, n_epochs=50).fit(data)
    baseline = reclib.evaluation.rmse(df["rating"], model.predict(df["user_id"], df["item_id"]))
    assert two_means > 2 * baseline


@pytest.mark.parametrize("params, error, match", [
    ({"method": "newton"}, ValueError, "method == 'newton'"),
    ({"reg_user": -1.0}, ValueError, "reg_user == -1.0"),
    ({"n_epochs": 0}, ValueError, "n_epochs == 0"),
    ({"lr": 0.0}, ValueError, "lr == 0.0"),
    ({"reg_item": "a lot"}, TypeError, "reg_item must be a real number"),
])
def test_bad_hyper_parameters(data, params, error, match):
    with pytest.raises(error, match=match):
        BaselinePredictor(**params).fit(data)


def test_divergence_is_an_error_not_a_nan_model(data):
    with pytest.raises(FloatingPointError, match="diverged"):
        BaselinePredictor(method="sgd", lr=50.0, n_epochs=20, random_state=0).fit(data)


def test_simple_baselines(data):
    assert GlobalMean().fit(data).predict(["u0"], ["i0"])[0] == pytest.approx(data.ratings.mean())
    pop = Popularity().fit(data)
    counts = np.bincount(data.items, minlength=data.n_items)
    np.testing.assert_array_equal(pop.predict(["u0"] * data.n_items, data.item_ids), counts)
    items, scores = pop.recommend(["u0"], k=3, exclude_seen=False)
    np.testing.assert_array_equal(scores[0], np.sort(counts)[::-1][:3])


def test_fit_rejects_bad_X():
    with pytest.raises(TypeError, match="X must be an Interactions"):
        GlobalMean().fit([[1, 2], [3, 4]])
    base = reclib.Interactions.from_dataframe(planted_frame())
    test = reclib.Interactions.from_dataframe(
        planted_frame(n_users=42).query("user_id in ['u40', 'u41']"), reference=base)
    with pytest.raises(ValueError, match="unknown ids"):
        GlobalMean().fit(test)


def test_fit_on_a_sparse_matrix():
    m = sp.random(20, 15, density=0.3, random_state=0, format="csr")
    model = Popularity().fit(m)
    assert model.n_users == 20 and model.recommend([0], k=3)[0].shape == (1, 3)


def test_tuple_hyper_parameters_survive_save_and_load(tmp_path):
    """JSON stores tuples as lists; load gives the constructor's tuple back."""

    class WithLayers(GlobalMean):
        def __init__(self, layers=(8, 4)):
            self.layers = layers

    model = WithLayers(layers=(3, 2)).fit(reclib.Interactions.from_dataframe(planted_frame()))
    loaded = reclib.models.Recommender.load(model.save(tmp_path / "m"))
    assert loaded.get_params() == {"layers": (3, 2)}


def test_load_finds_the_class_by_module_path(tmp_path):
    """Classes are saved under module.QualifiedName, so equal class names in two modules differ."""
    import json

    path = Popularity().fit(reclib.Interactions.from_dataframe(planted_frame())).save(tmp_path / "p")
    with np.load(path, allow_pickle=False) as npz:
        header = json.loads(bytes(npz["__header__"]).decode())
    assert header["class"] == "reclib.models.baselines.Popularity"
    assert isinstance(reclib.models.Recommender.load(path), Popularity)
    with pytest.raises(TypeError, match="not a BaselinePredictor"):
        BaselinePredictor.load(path)
