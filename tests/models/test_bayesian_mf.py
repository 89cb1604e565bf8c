"""BayesianMF: each piece of the Gibbs sampler against the formula it implements."""

import numpy as np
import pytest

import reclib
from reclib.models import BayesianMF, GlobalMean
from reclib.models.bayesian_mf import (normal_wishart_posterior, sample_normal_wishart,
                                       sample_rows, sample_wishart)
from tests.conftest import planted_frame


def _random_rows(rng, n_rows, n_other, d):
    design = rng.normal(size=(n_other, d))
    indptr, indices, targets = [0], [], []
    for r in range(n_rows):
        cols = rng.choice(n_other, size=r, replace=False)  # row 0 has no observations
        indices += list(cols)
        targets += list(rng.normal(size=r))
        indptr.append(len(indices))
    return np.array(indptr), np.array(indices, dtype=np.int64), np.array(targets), design


def _spd(rng, d):
    M = rng.normal(size=(d, d))
    return M @ M.T + d * np.eye(d)


def test_conditional_posterior_matches_dense_formula():
    rng = np.random.default_rng(0)
    n_rows, d, alpha = 5, 3, 1.7
    indptr, indices, targets, design = _random_rows(rng, n_rows, 8, d)
    prior_prec, prior_mean = _spd(rng, d), rng.normal(size=d)
    means = sample_rows(indptr, indices, targets, design, prior_prec, prior_mean, alpha,
                        np.zeros((n_rows, d)))
    for r in range(n_rows):
        X, y = design[indices[indptr[r]:indptr[r + 1]]], targets[indptr[r]:indptr[r + 1]]
        post_prec = prior_prec + alpha * X.T @ X
        post_cov = np.linalg.inv(post_prec)
        expected_mean = post_cov @ (alpha * X.T @ y + prior_prec @ prior_mean)
        np.testing.assert_allclose(means[r], expected_mean, rtol=1e-10, atol=1e-12)
        # the draw is mean + M z: recover M column by column, then M M^T must be the covariance
        rows = np.full(d, r)
        sub_ptr = np.r_[0, np.cumsum(indptr[rows + 1] - indptr[rows])]
        sub_idx = np.concatenate([indices[indptr[r]:indptr[r + 1]]] * d).astype(np.int64)
        sub_y = np.concatenate([y] * d)
        draws = sample_rows(sub_ptr, sub_idx, sub_y, design, prior_prec, prior_mean, alpha,
                            np.eye(d))
        M = (draws - expected_mean).T
        np.testing.assert_allclose(M @ M.T, post_cov, rtol=1e-9, atol=1e-12)
    # a row without observations is drawn from the prior
    np.testing.assert_allclose(means[0], prior_mean, rtol=1e-12)


def test_wishart_moments():
    rng = np.random.default_rng(1)
    scale, df = np.array([[1.0, 0.3], [0.3, 0.5]]), 5.0
    draws = np.array([sample_wishart(scale, df, rng) for _ in range(20000)])
    np.testing.assert_allclose(draws.mean(0), df * scale, rtol=0.03, atol=0.02)
    # Var(Lambda_jl) = df (W_jl^2 + W_jj W_ll)
    expected_var = df * (scale**2 + np.outer(np.diag(scale), np.diag(scale)))
    np.testing.assert_allclose(draws.var(0), expected_var, rtol=0.08)
    assert all(np.linalg.eigvalsh(w).min() > 0 for w in draws[:100])


def test_wishart_needs_enough_degrees_of_freedom():
    with pytest.raises(ValueError, match="df == 1.0"):
        sample_wishart(np.eye(3), 1.0, np.random.default_rng(0))


def test_normal_wishart_posterior_in_one_dimension_is_normal_gamma():
    # d = 1: the Normal-Wishart is a Normal-Gamma; its update written with sums of squares
    x = np.array([0.5, 1.5, 2.0, -0.5])
    mu0, beta0, nu0, w0 = 0.3, 2.0, 1.0, 0.8
    mu, beta, nu, W = normal_wishart_posterior(x[:, None], np.array([mu0]), beta0, nu0,
                                               np.array([[1.0 / w0]]))
    n, xbar = len(x), x.mean()
    assert beta == beta0 + n and nu == nu0 + n
    assert mu[0] == pytest.approx((beta0 * mu0 + x.sum()) / (beta0 + n))
    inv_w = 1 / w0 + ((x - xbar) ** 2).sum() + beta0 * n * (xbar - mu0) ** 2 / (beta0 + n)
    assert W[0, 0] == pytest.approx(1 / inv_w)


def test_normal_wishart_draws_centre_on_the_posterior():
    rng = np.random.default_rng(2)
    X = rng.normal([1.0, -2.0], [0.5, 1.0], size=(30, 2))
    args = (X, np.zeros(2), 2.0, 2.0, np.eye(2))
    mu_star, beta_star, nu_star, W_star = normal_wishart_posterior(*args)
    draws = [sample_normal_wishart(*args, rng) for _ in range(5000)]
    mus, lams = np.array([m for m, _ in draws]), np.array([lam for _, lam in draws])
    np.testing.assert_allclose(lams.mean(0), nu_star * W_star, rtol=0.05, atol=0.05)
    np.testing.assert_allclose(mus.mean(0), mu_star, atol=0.03)
    # E[(beta* Lambda)^-1] = W*^-1 / (beta* (nu* - d - 1))
    expected_cov = np.linalg.inv(W_star) / (beta_star * (nu_star - 3))
    np.testing.assert_allclose(np.cov(mus.T), expected_cov, rtol=0.1, atol=1e-4)


@pytest.fixture(scope="module")
def planted_data():
    return reclib.Interactions.from_dataframe(planted_frame())


def test_prediction_is_the_average_over_samples(planted_data):
    model = BayesianMF(n_factors=3, n_samples=4, burn_in=2, random_state=0).fit(planted_data)
    S, k = 4, 3
    assert model.user_factors_.shape == (planted_data.n_users, S * k)
    assert len(model.train_rmse_history_) == 6
    u, i = planted_data.users[:20], planted_data.items[:20]
    P = model.user_factors_.reshape(-1, S, k) * np.sqrt(S)
    Q = model.item_factors_.reshape(-1, S, k) * np.sqrt(S)
    per_sample = np.einsum("nsk,nsk->ns", P[u], Q[i])
    expected = model.mean_ + model.user_bias_[u] + model.item_bias_[i] + per_sample.mean(1)
    np.testing.assert_allclose(model._predict(u, i), expected, rtol=1e-12)


def test_fits_planted_ratings_better_than_the_mean(planted_data):
    model = BayesianMF(n_factors=3, n_samples=30, burn_in=10, random_state=0).fit(planted_data)
    frame = planted_frame(seed=0)
    pred = model.predict(frame.user_id, frame.item_id)
    base = GlobalMean().fit(planted_data).predict(frame.user_id, frame.item_id)
    rmse = lambda y: np.sqrt(np.mean((frame.rating - y) ** 2))  # noqa: E731
    assert rmse(pred) < 0.5 * rmse(base)


def test_seed_fixes_every_draw(planted_data):
    a = BayesianMF(n_factors=3, n_samples=3, burn_in=1, random_state=5).fit(planted_data)
    b = BayesianMF(n_factors=3, n_samples=3, burn_in=1, random_state=5).fit(planted_data)
    c = BayesianMF(n_factors=3, n_samples=3, burn_in=1, random_state=6).fit(planted_data)
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
    np.testing.assert_array_equal(a.item_bias_, b.item_bias_)
    assert not np.allclose(a.user_factors_, c.user_factors_)


def test_unbiased_variant_keeps_zero_biases(planted_data):
    model = BayesianMF(n_factors=2, n_samples=3, burn_in=1, biased=False,
                       random_state=0).fit(planted_data)
    assert not model.user_bias_.any() and not model.item_bias_.any()
    pred = model.predict(["nobody"], ["i0"], allow_unknown=True)
    assert pred[0] == pytest.approx(model.mean_)


def test_unknown_user_gets_mean_plus_item_bias(planted_data):
    model = BayesianMF(n_factors=2, n_samples=3, burn_in=1, random_state=0).fit(planted_data)
    i = model.item_index(["i3"])[0]
    pred = model.predict(["nobody"], ["i3"], allow_unknown=True)
    assert pred[0] == pytest.approx(model.mean_ + model.item_bias_[i])


@pytest.mark.parametrize("params, error, match", [
    ({"n_factors": 0}, ValueError, "n_factors == 0"),
    ({"n_samples": 0}, ValueError, "n_samples == 0"),
    ({"burn_in": -1}, ValueError, "burn_in == -1"),
    ({"alpha": 0.0}, ValueError, "alpha == 0.0"),
    ({"beta0": -1.0}, ValueError, "beta0 == -1.0"),
    ({"w0": 0.0}, ValueError, "w0 == 0.0"),
    ({"nu0": 2.0, "n_factors": 5}, ValueError, "nu0 == 2.0"),
    ({"biased": "yes"}, TypeError, "biased must be"),
])
def test_bad_hyper_parameters_are_named(planted_data, params, error, match):
    with pytest.raises(error, match=match):
        BayesianMF(**params).fit(planted_data)
