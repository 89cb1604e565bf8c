r"""``ImplicitALS(reg_basis="count")``: the ridge weight :math:`\lambda\, n^{\nu}` (Spark's rule).

With ``solver="exact"`` the last half-step of a sweep solves every item's ridge regression
exactly, so the fitted item factors must equal a dense NumPy solve of

.. math::

    y_i = \big(X^\top C^i X + \lambda\, n_i^{\nu} I\big)^{-1} X^\top C^i p(i),

with :math:`n_i` the item's number of interactions and :math:`C^i` holding
:math:`c_{ui} = 1 + \alpha r_{ui}` over *all* users. The user half-step is checked the same way
by one more sweep from the fitted items, solved in NumPy. Using the total confidence instead of
the count, or dropping the exponent, changes the answer and these tests fail.
"""

import numpy as np
import pytest

import reclib
from reclib.models import ImplicitALS
from tests.conftest import planted_frame


def _ridge_rows(fixed, P, conf, lam):
    """Row by row: (F^T C_r F + lam_r I)^{-1} F^T C_r p_r, dense, float64."""
    f = fixed.shape[1]
    out = np.empty((P.shape[0], f))
    for r in range(P.shape[0]):
        A = fixed.T @ (conf[r, :, None] * fixed) + lam[r] * np.eye(f)
        out[r] = np.linalg.solve(A, fixed.T @ (conf[r] * P[r]))
    return out


@pytest.mark.parametrize("nu", [0.5, 1.0])
def test_exact_solver_matches_a_dense_ridge_solve_per_row(nu):
    data = reclib.Interactions.from_dataframe(planted_frame())
    alpha, reg = 4.0, 0.3
    model = ImplicitALS(n_factors=3, n_epochs=4, reg=reg, alpha=alpha, reg_exponent=nu,
                        reg_basis="count", solver="exact", random_state=0).fit(data)
    X = model.user_factors_.astype(np.float64)
    Y = model.item_factors_.astype(np.float64)
    R = data.to_csr(binary=True).toarray()                   # p_ui
    conf = 1.0 + alpha * R
    lam_items = reg * R.sum(axis=0) ** nu
    np.testing.assert_allclose(Y, _ridge_rows(X, R.T, conf.T, lam_items), rtol=2e-4, atol=1e-6)

    # one more sweep from these factors: its user step must be the dense per-user solve
    lam_users = reg * R.sum(axis=1) ** nu
    expected_users = _ridge_rows(Y, R, conf, lam_users)
    more = ImplicitALS(n_factors=3, n_epochs=5, reg=reg, alpha=alpha, reg_exponent=nu,
                       reg_basis="count", solver="exact", random_state=0).fit(data)
    # the 5-sweep fit replays the 4-sweep one, then solves the users from the same Y
    np.testing.assert_allclose(more.user_factors_, expected_users, rtol=2e-4, atol=1e-6)


def test_count_basis_differs_from_the_confidence_basis():
    data = reclib.Interactions.from_dataframe(planted_frame())
    kw = dict(n_factors=3, n_epochs=3, reg=0.3, alpha=4.0, solver="exact", random_state=0)
    by_count = ImplicitALS(reg_basis="count", **kw).fit(data)
    by_conf = ImplicitALS(**kw).fit(data)
    assert not np.allclose(by_count.item_factors_, by_conf.item_factors_, atol=1e-4)


def test_count_basis_with_nu_zero_is_the_plain_ridge():
    data = reclib.Interactions.from_dataframe(planted_frame())
    kw = dict(n_factors=3, n_epochs=3, reg=2.0, alpha=4.0, reg_exponent=0.0, solver="exact",
              random_state=0)
    np.testing.assert_array_equal(ImplicitALS(reg_basis="count", **kw).fit(data).item_factors_,
                                  ImplicitALS(**kw).fit(data).item_factors_)


def test_cg_solver_tracks_the_exact_one_under_the_count_basis():
    data = reclib.Interactions.from_dataframe(planted_frame())
    kw = dict(n_factors=3, n_epochs=30, reg=0.3, alpha=4.0, reg_basis="count", random_state=0)
    exact = ImplicitALS(solver="exact", **kw).fit(data)
    cg = ImplicitALS(solver="cg", cg_steps=3, **kw).fit(data)
    np.testing.assert_allclose(cg.loss_history_[-1], exact.loss_history_[-1], rtol=1e-3)


@pytest.mark.parametrize("bad", ["counts", "", None, 1])
def test_bad_reg_basis_is_named(bad):
    data = reclib.Interactions.from_dataframe(planted_frame())
    with pytest.raises(ValueError, match="reg_basis"):
        ImplicitALS(reg_basis=bad).fit(data)


def test_reg_basis_survives_get_params_and_save_load(tmp_path):
    data = reclib.Interactions.from_dataframe(planted_frame())
    model = ImplicitALS(n_factors=3, n_epochs=2, reg_basis="count", random_state=0).fit(data)
    assert model.get_params()["reg_basis"] == "count"
    path = model.save(tmp_path / "ials")
    loaded = ImplicitALS.load(path)
    assert loaded.reg_basis == "count"
    np.testing.assert_array_equal(loaded.item_factors_, model.item_factors_)
