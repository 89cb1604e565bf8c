r"""iALS's frequency-scaled regulariser, checked from the outside.

With ``solver="exact"`` the last half-step of a sweep solves every item's ridge regression
exactly, so the fitted item factors must equal a dense NumPy solve of

.. math::

    y_i = \big(X^\top C^i X + \lambda_i I\big)^{-1} X^\top C^i p(i), \qquad
    \lambda_i = \lambda\,(|U| + \textstyle\sum_u (c_{ui} - 1))^{\nu},

where :math:`|U| + \sum_u (c_{ui} - 1) = \sum_u c_{ui}` is the item's total confidence (every
user counts with confidence 1, the observed ones with :math:`\alpha` more). Dropping the
:math:`|U|` term, or the exponent, changes the answer, and this test fails.
"""

import numpy as np
import pytest

import reclib
from reclib.models import ImplicitALS
from tests.conftest import planted_frame


@pytest.mark.parametrize("nu", [0.0, 0.5, 1.0])
def test_exact_item_step_uses_the_total_confidence(nu):
    data = reclib.Interactions.from_dataframe(planted_frame())
    alpha, reg = 3.0, 0.05 if nu else 2.0
    model = ImplicitALS(n_factors=3, n_epochs=4, reg=reg, alpha=alpha, reg_exponent=nu,
                        solver="exact", random_state=0).fit(data)
    X = model.user_factors_.astype(np.float64)
    R = data.to_csr(binary=True).toarray()                   # p_ui
    conf = 1.0 + alpha * R                                   # c_ui, every pair
    n_users = R.shape[0]
    for i in range(R.shape[1]):
        lam = reg * (n_users + alpha * R[:, i].sum()) ** nu
        A = X.T @ (conf[:, i, None] * X) + lam * np.eye(3)
        expected = np.linalg.solve(A, X.T @ (conf[:, i] * R[:, i]))
        np.testing.assert_allclose(model.item_factors_[i], expected, rtol=2e-4, atol=1e-6)

