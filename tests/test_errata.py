"""The corrections of book/errata.md that a few lines of arithmetic can check."""

import numpy as np
import pytest

import reclib


def test_worked_prediction_of_source_000_is_4_58():
    # R_12 = 2.0 + 2.0 + 0.5 x 0.6 + 0.7 x 0.4, printed there as 3.1
    assert 2.0 + 2.0 + 0.5 * 0.6 + 0.7 * 0.4 == pytest.approx(4.58)


def test_printed_losses_of_source_000_are_exact_powers_of_two():
    printed = [0.0625, 0.015625, 0.0078125, 0.00390625]
    exponents = np.log2(printed)
    np.testing.assert_array_equal(exponents, np.round(exponents))   # 2^-4, 2^-6, 2^-7, 2^-8
    assert printed[2] / printed[1] == printed[3] / printed[2] == 0.5


def test_zero_gradient_of_the_unregularised_objective_is_not_a_unique_minimum():
    # sum (r - p_u q_i)^2 without a penalty: any rescaling p -> c p, q -> q / c keeps J, so the
    # stationary points form a continuum and "set the derivative to zero" fixes nothing
    rng = np.random.default_rng(0)
    P, Q = rng.normal(size=(4, 2)), rng.normal(size=(5, 2))
    R = P @ Q.T
    assert np.allclose((2 * P) @ (Q / 2).T, R)
    # and J is not convex: the midpoint of two minimisers (P, Q) and (-P, -Q) has J > 0
    mid_P, mid_Q = (P + -P) / 2, (Q + -Q) / 2
    assert np.sum((R - mid_P @ mid_Q.T) ** 2) > 0


def test_movielens_100k_sizes():
    data = reclib.Interactions.from_dataframe(reclib.datasets.load_movielens("100k"))
    assert (data.n_users, data.n_items, data.n_interactions) == (943, 1682, 100_000)


def test_standardised_mse_of_0_912_is_close_to_predicting_the_mean():
    ratings = reclib.datasets.load_movielens("100k")["rating"].to_numpy(dtype=float)
    z = (ratings - ratings.mean()) / ratings.std()
    assert np.mean(z**2) == pytest.approx(1.0)     # the constant prediction 0 has MSE 1
    # 0.912 on that scale is an RMSE in stars of sqrt(0.912) * std, little below the std
    rmse_stars = np.sqrt(0.912) * ratings.std()
    assert ratings.std() - rmse_stars < 0.06
    assert rmse_stars > 1.05                        # the baseline predictor scores about 0.94


def test_gmf_sum_of_source_003_is_the_weighted_elementwise_product():
    rng = np.random.default_rng(1)
    u, v, w = rng.normal(size=4), rng.normal(size=4), rng.normal(size=4)
    assert sum(u[f] * v[f] * w[f] for f in range(4)) == pytest.approx(w @ (u * v))


def test_source_003_code_shapes_do_not_conform():
    m, n, k = 5, 7, 3
    U, V, W = np.ones((m, k)), np.ones((n, k)), np.ones((k, 1))
    with pytest.raises(ValueError):
        U @ V + W                                   # (m, k) @ (n, k)
    assert (U @ V.T).shape == (m, n)                 # what was meant, before any W


def test_source_003_gradient_step_ascends():
    # with error = R - pred, d/dU sum(error^2) = -2 error V; "dU = 2 error V; U -= a dU" climbs
    rng = np.random.default_rng(2)
    R, U, V = rng.normal(size=(5, 6)), rng.normal(size=(5, 2)), rng.normal(size=(6, 2))
    loss = lambda U: np.sum((R - U @ V.T) ** 2)
    error = R - U @ V.T
    source_step = U - 0.01 * (2 * error @ V)
    correct_step = U - 0.01 * (-2 * error @ V)
    assert loss(source_step) > loss(U) > loss(correct_step)
