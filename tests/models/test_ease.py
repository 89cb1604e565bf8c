"""EASE: the closed form against a column-by-column ridge regression, the zero diagonal."""

import numpy as np
import pytest
import scipy.sparse as sp

import reclib
from reclib.models import EASE


def small_matrix(n_users=30, n_items=12, density=0.3, seed=0):
    rng = np.random.default_rng(seed)
    X = (rng.random((n_users, n_items)) < density).astype(float)
    X[0] = 1.0                                      # no all-zero item column
    return X


def ridge_without_self(X, reg):
    """Slow reference without Lagrange multipliers: the objective separates by column, and
    column j of B is the ridge regression of X[:, j] on every other column."""
    n_items = X.shape[1]
    B = np.zeros((n_items, n_items))
    for j in range(n_items):
        others = np.delete(np.arange(n_items), j)
        Z = X[:, others]
        B[others, j] = np.linalg.solve(Z.T @ Z + reg * np.eye(n_items - 1), Z.T @ X[:, j])
    return B


@pytest.mark.parametrize("reg", [0.5, 10.0, 200.0])
def test_closed_form_matches_slow_reference(reg):
    X = small_matrix()
    model = EASE(reg=reg).fit(sp.csr_matrix(X))
    np.testing.assert_array_equal(np.diag(model.weights_), 0.0)
    np.testing.assert_allclose(model.weights_, ridge_without_self(X, reg), rtol=1e-8, atol=1e-10)


def test_closed_form_is_the_dense_formula():
    X = small_matrix(seed=1)
    P = np.linalg.inv(X.T @ X + 5.0 * np.eye(X.shape[1]))
    B = np.eye(X.shape[1]) - P / np.diag(P)                 # I - P diag(1 / diag(P))
    model = EASE(reg=5.0).fit(sp.csr_matrix(X))
    np.testing.assert_allclose(np.diag(B), 0.0, atol=1e-12)
    np.testing.assert_allclose(model.weights_, B, rtol=1e-8, atol=1e-10)


def test_scores_are_x_times_b():
    X = small_matrix(seed=2)
    model = EASE(reg=3.0).fit(sp.csr_matrix(X))
    users = np.array([0, 5, 7])
    np.testing.assert_allclose(model.score_block(users, exclude_seen=False),
                               X[users] @ model.weights_, rtol=1e-10)


def test_ratings_instead_of_binary():
    X = small_matrix(seed=3) * np.random.default_rng(3).integers(1, 6, (30, 12))
    model = EASE(reg=2.0, binary=False).fit(sp.csr_matrix(X))
    np.testing.assert_allclose(model.weights_, ridge_without_self(X, 2.0), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("reg", [0.0, -1.0])
def test_bad_reg_is_named(planted, reg):
    with pytest.raises(ValueError, match=f"reg == {reg}"):
        EASE(reg=reg).fit(planted)


def test_bad_binary_is_named(planted):
    with pytest.raises(TypeError, match="binary"):
        EASE(binary="yes").fit(planted)


@pytest.mark.slow
def test_movielens_beats_popularity(ml100k_topn):
    train, test = ml100k_topn
    pop = reclib.evaluation.evaluate_ranking(reclib.models.Popularity().fit(train), train, test)
    ease = reclib.evaluation.evaluate_ranking(EASE().fit(train), train, test)
    assert ease["ndcg@10"] > pop["ndcg@10"] + 0.15
