"""Shared machinery of the explicit-rating factor models: the objective, the ALS step, the
epoch loop with its divergence check, and prediction with unknown ids.

The objective of every model here puts the regulariser inside the sum over ratings, as in
Koren (2008, eq. 5) and in the per-rating SGD updates of Funk and of Surprise:

.. math::

    J = \\tfrac12 \\sum_{(u,i) \\in \\mathcal{R}} \\Big[ e_{ui}^2
        + \\lambda (\\lVert p_u \\rVert^2 + \\lVert q_i \\rVert^2)
        + \\lambda_b (b_u^2 + b_i^2) \\Big],
    \\qquad e_{ui} = r_{ui} - \\hat r_{ui},

that is, a user with :math:`n_u` ratings pays :math:`\\tfrac{\\lambda}{2} n_u \\lVert p_u
\\rVert^2` (the "weighted-lambda" regulariser of Zhou et al., 2008). SGD on one rating and the
exact ALS minimiser then optimise the same :math:`J`.
"""

from __future__ import annotations

import numpy as np
from .._progress import tqdm

from .._validation import check_float, check_int, check_random_state
from .base import Recommender

#: A loss this many times the loss at initialisation counts as divergence.
_DIVERGED = 1e6


def mf_objective(users, items, ratings, mean, user_bias, item_bias, P, Q, reg, reg_bias):
    """The objective :math:`J` above, for index arrays ``users``/``items`` (no ``-1``).

    Pass ``user_bias = item_bias = None`` (and ``mean = 0``) for MF without biases.
    """
    y_hat = np.einsum("nk,nk->n", P[users], Q[items]) + mean
    n_u = np.bincount(users, minlength=len(P))
    n_i = np.bincount(items, minlength=len(Q))
    penalty = reg * (n_u @ np.einsum("uk,uk->u", P, P) + n_i @ np.einsum("ik,ik->i", Q, Q))
    if user_bias is not None:
        y_hat = y_hat + user_bias[users] + item_bias[items]
        penalty += reg_bias * (n_u @ user_bias**2 + n_i @ item_bias**2)
    e = ratings - y_hat
    return float(0.5 * (e @ e + penalty))


def mf_gradient(users, items, ratings, mean, user_bias, item_bias, P, Q, reg, reg_bias):
    r"""Gradient of :func:`mf_objective`, derived by hand.

    .. math::

        \frac{\partial J}{\partial p_u} = \sum_{i \in \mathcal{R}(u)} (-e_{ui} q_i + \lambda p_u),
        \quad
        \frac{\partial J}{\partial q_i} = \sum_{u \in \mathcal{R}(i)} (-e_{ui} p_u + \lambda q_i),
        \quad
        \frac{\partial J}{\partial b_u} = \sum_{i \in \mathcal{R}(u)} (-e_{ui} + \lambda_b b_u).

    Returns ``(d_user_bias, d_item_bias, dP, dQ)`` (the bias terms are ``None`` without biases).
    SGD steps along one rating's share of each sum.
    """
    y_hat = np.einsum("nk,nk->n", P[users], Q[items]) + mean
    if user_bias is not None:
        y_hat = y_hat + user_bias[users] + item_bias[items]
    e = ratings - y_hat
    n_u = np.bincount(users, minlength=len(P))[:, None]
    n_i = np.bincount(items, minlength=len(Q))[:, None]
    dP = reg * n_u * P
    dQ = reg * n_i * Q
    np.add.at(dP, users, -e[:, None] * Q[items])
    np.add.at(dQ, items, -e[:, None] * P[users])
    if user_bias is None:
        return None, None, dP, dQ
    d_bu = np.bincount(users, -e, len(P)) + reg_bias * n_u[:, 0] * user_bias
    d_bi = np.bincount(items, -e, len(Q)) + reg_bias * n_i[:, 0] * item_bias
    return d_bu, d_bi, dP, dQ


def als_solve_rows(indptr, indices, targets, design, reg_diag):
    r"""Exact minimiser, row by row, of a weighted-lambda ridge regression.

    Row ``r`` owns ``targets[indptr[r]:indptr[r+1]]`` observed against the rows
    ``indices[...]`` of ``design`` (``X_r``, shape ``(n_r, d)``). With
    :math:`\Lambda = \mathrm{diag}(\texttt{reg\_diag})`, its solution satisfies the normal
    equations

    .. math::

        (X_r^\top X_r + n_r \Lambda)\, w_r = X_r^\top y_r .

    Returns ``W`` of shape ``(n_rows, d)``; a row with no observations gets zeros.

    This is the readable reference; the models call its compiled twin
    :func:`reclib.models._sgd_kernels.als_rows`, which the tests hold to it.
    """
    n_rows, d = len(indptr) - 1, design.shape[1]
    W = np.zeros((n_rows, d))
    penalty = np.diag(reg_diag)
    for r in range(n_rows):
        start, stop = indptr[r], indptr[r + 1]
        if start == stop:
            continue
        X = design[indices[start:stop]]  # (n_r, d)
        A = X.T @ X + (stop - start) * penalty  # (d, d)
        W[r] = np.linalg.solve(A, X.T @ targets[start:stop])
    return W


class FactorModel(Recommender):
    """Base of the factor models: the epoch loop, the divergence check and prediction.

    Subclasses set ``self._init_state(data)`` and ``self._epoch(data, rng)`` and keep the
    fitted parameters ``mean_``, ``user_bias_``/``item_bias_`` (or ``None``),
    ``user_factors_`` and ``item_factors_``; :meth:`_user_vectors` may add to the user factors
    (SVD++ adds the implicit term).
    """

    _abstract = True

    def predicts_ratings(self) -> bool:
        return True

    def unknown_fallback(self) -> str:
        if getattr(self, "user_bias_", None) is None:
            return "the global mean mu (without biases nothing else is known)"
        return ("mu plus the bias it knows (mu + b_i for an unknown user, mu + b_u for an "
                "unknown item, mu for both); the factor term is dropped")

    def _validate_common(self) -> None:
        check_int("n_factors", self.n_factors, minimum=1)
        check_int("n_epochs", self.n_epochs, minimum=1)
        check_float("reg", self.reg, minimum=0.0)
        check_float("init_std", self.init_std, minimum=0.0)
        if hasattr(self, "lr"):
            check_float("lr", self.lr, strictly_positive=True)
        if hasattr(self, "reg_bias"):
            check_float("reg_bias", self.reg_bias, minimum=0.0)

    def _run_epochs(self, data) -> None:
        rng = check_random_state(self.random_state)
        self._init_state(data, rng)
        start = self._loss(data)
        history = []
        for epoch in tqdm(range(self.n_epochs), desc=type(self).__name__,
                          disable=not self.verbose):
            self._epoch(data, rng)
            with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported below
                loss = self._loss(data)
            if not np.isfinite(loss) or loss > _DIVERGED * max(start, 1.0):
                rate = f"lr (now {self.lr})" if hasattr(self, "lr") else "reg or init_std"
                raise FloatingPointError(
                    f"{type(self).__name__} diverged at epoch {epoch + 1}: the objective went "
                    f"from {start:.4g} to {loss:.4g}; lower {rate}")
            history.append(loss)
        self.loss_history_ = np.array(history)
        for scratch in ("_by_user", "_by_item"):  # ALS's copies of the training matrix
            self.__dict__.pop(scratch, None)

    def _user_vectors(self) -> np.ndarray:
        return self.user_factors_

    def _predict(self, users, items):
        known_u, known_i = users >= 0, items >= 0
        u, i = np.maximum(users, 0), np.maximum(items, 0)
        if self.user_bias_ is None:  # no biases: nothing is left of an unknown pair but the mean
            dot = np.einsum("nk,nk->n", self._user_vectors()[u], self.item_factors_[i])
            return np.where(known_u & known_i, dot, self.mean_)
        y_hat = np.full(len(users), self.mean_)
        y_hat += np.where(known_u, self.user_bias_[u], 0.0)
        y_hat += np.where(known_i, self.item_bias_[i], 0.0)
        both = known_u & known_i
        y_hat[both] += np.einsum("nk,nk->n", self._user_vectors()[u[both]],
                                 self.item_factors_[i[both]])
        return y_hat

    def _score_users(self, users):
        scores = self._user_vectors()[users] @ self.item_factors_.T  # (n_users, n_items)
        if self.user_bias_ is not None:
            scores += self.mean_ + self.user_bias_[users][:, None] + self.item_bias_[None, :]
        return scores

    def _item_vectors(self):
        return self.item_factors_
