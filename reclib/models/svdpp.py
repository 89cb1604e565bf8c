"""SVD++: biased matrix factorisation plus the implicit feedback of *which* items a user rated.

Reference: Y. Koren, "Factorization meets the neighborhood: a multifaceted collaborative
filtering model", KDD 2008, section 4 (eq. 15).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..interactions import Interactions
from ._factor_base import FactorModel
from ._sgd_kernels import svdpp_epoch, svdpp_loss


class SVDpp(FactorModel):
    r"""SVD++ (Koren, 2008): a user is their factors plus the items they chose to rate.

    .. math::

        \hat r_{ui} = \mu + b_u + b_i + q_i^\top \Big(p_u + |N(u)|^{-1/2}
                      \sum_{j \in N(u)} y_j\Big),

    where :math:`N(u)` is the set of items :math:`u` rated in training (the implicit feedback)
    and :math:`y_j` is a second factor vector per item. Write
    :math:`z_u = |N(u)|^{-1/2} \sum_{j \in N(u)} y_j` and :math:`e_{ui} = r_{ui} - \hat r_{ui}`.
    The objective (Koren, 2008, eq. 15) puts the regulariser inside the sum over ratings:

    .. math::

        J = \tfrac12 \sum_{(u,i) \in \mathcal{R}} \Big[ e_{ui}^2
            + \lambda_b (b_u^2 + b_i^2)
            + \lambda \big(\lVert p_u\rVert^2 + \lVert q_i\rVert^2
            + \textstyle\sum_{j \in N(u)} \lVert y_j \rVert^2\big) \Big].

    SGD on one rating steps against that rating's gradient:

    .. math::

        b_u &\leftarrow b_u + \eta (e_{ui} - \lambda_b b_u), \qquad
        b_i \leftarrow b_i + \eta (e_{ui} - \lambda_b b_i), \\
        p_u &\leftarrow p_u + \eta (e_{ui} q_i - \lambda p_u), \qquad
        q_i \leftarrow q_i + \eta \big(e_{ui} (p_u + z_u) - \lambda q_i\big), \\
        y_j &\leftarrow y_j + \eta \big(e_{ui} |N(u)|^{-1/2} q_i - \lambda y_j\big)
        \quad \text{for all } j \in N(u).

    Done literally, the last line costs :math:`O(|N(u)|\,k)` per rating. Here the ratings are
    visited one user at a time (users in random order, each user's ratings shuffled): every
    :math:`y_j` of the block receives the *same* shift and decay, so :math:`z_u` is updated
    in :math:`O(k)` per rating (:math:`z_u \leftarrow z_u + \eta(e_{ui} q_i - \lambda z_u)`)
    and the :math:`y_j` are written once at the end of the block. The result equals the
    per-rating algorithm with that visiting order (checked in the tests), at the cost of
    plain biased MF. Surprise's ``SVDpp`` also visits the ratings user by user, unshuffled.

    The defaults were chosen on a validation split carved from a MovieLens 100K training
    fold. Unknown ids drop the terms they would need: :math:`\mu + b_i` for an unknown user and
    :math:`\mu + b_u` for an unknown item.

    Parameters
    ----------
    n_factors : int
        :math:`k`.
    n_epochs : int
        Passes over the training ratings.
    lr : float
        Step size :math:`\eta`.
    reg : float
        :math:`\lambda \ge 0` for :math:`p_u, q_i, y_j`.
    reg_bias : float
        :math:`\lambda_b \ge 0`.
    init_std : float
        :math:`p_u, q_i, y_j` start as :math:`\mathcal{N}(0, \texttt{init\_std}^2)`.
    random_state : int, optional
        Seeds the initialisation and the visiting order.
    verbose : bool
        Show a progress bar over epochs.

    Attributes
    ----------
    mean_ : float
    user_bias_, item_bias_ : ndarray
    user_factors_, item_factors_, implicit_factors_ : ndarray
        :math:`P`, :math:`Q` and :math:`Y`.
    user_vectors_ : ndarray of shape (n_users, k)
        :math:`p_u + z_u`, the vector each user's scores are a dot product with.
    loss_history_ : ndarray of shape (n_epochs,)
        :math:`J` after each epoch.
    """

    def __init__(self, n_factors: int = 20, n_epochs: int = 40, lr: float = 0.01,
                 reg: float = 0.1, reg_bias: float = 0.02, init_std: float = 0.01,
                 random_state=None, verbose: bool = False):
        self.n_factors = n_factors
        self.n_epochs = n_epochs
        self.lr = lr
        self.reg = reg
        self.reg_bias = reg_bias
        self.init_std = init_std
        self.random_state = random_state
        self.verbose = verbose

    def _validate_params(self) -> None:
        self._validate_common()

    def _fit(self, data: Interactions) -> None:
        self.mean_ = float(data.ratings.mean())
        self._implicit = data.to_csr(binary=True)  # rows are the sets N(u)
        self._by_user = data.to_csr()
        self._run_epochs(data)
        self.user_vectors_ = self.user_factors_ + implicit_sum(self._implicit,
                                                               self.implicit_factors_)
        del self._implicit

    def _init_state(self, data, rng) -> None:
        k = self.n_factors
        self.user_factors_ = rng.normal(0.0, self.init_std, (data.n_users, k))
        self.item_factors_ = rng.normal(0.0, self.init_std, (data.n_items, k))
        self.implicit_factors_ = rng.normal(0.0, self.init_std, (data.n_items, k))
        self.user_bias_ = np.zeros(data.n_users)
        self.item_bias_ = np.zeros(data.n_items)

    def _epoch(self, data, rng) -> None:
        order, block_starts = user_blocks(data.users, data.n_users, rng)
        svdpp_epoch(self._implicit.indptr, self._implicit.indices, order, block_starts,
                    data.users, data.items, data.ratings, self.mean_, self.user_bias_,
                    self.item_bias_, self.user_factors_, self.item_factors_,
                    self.implicit_factors_, self.lr, self.reg, self.reg_bias)

    def _loss(self, data) -> float:
        R, N = self._by_user, self._implicit
        return svdpp_loss(R.indptr, R.indices, R.data, N.indptr, N.indices, self.mean_,
                          self.user_bias_, self.item_bias_, self.user_factors_,
                          self.item_factors_, self.implicit_factors_, self.reg, self.reg_bias)

    def _user_vectors(self) -> np.ndarray:
        return self.user_vectors_


def implicit_sum(implicit: sp.csr_matrix, Y: np.ndarray) -> np.ndarray:
    r""":math:`z_u = |N(u)|^{-1/2} \sum_{j \in N(u)} y_j` for every user (rows of ``implicit``)."""
    n = np.diff(implicit.indptr)
    return (implicit @ Y) / np.sqrt(np.maximum(n, 1))[:, None]


def svdpp_objective(users, items, ratings, implicit, mean, user_bias, item_bias, P, Q, Y,
                    reg, reg_bias) -> float:
    """The objective :math:`J` of :class:`SVDpp` (``implicit``: users x items CSR of N(u))."""
    z = implicit_sum(implicit, Y)
    y_hat = (mean + user_bias[users] + item_bias[items]
             + np.einsum("nk,nk->n", P[users] + z[users], Q[items]))
    e = ratings - y_hat
    n_u = np.bincount(users, minlength=len(P))
    n_i = np.bincount(items, minlength=len(Q))
    y_weight = implicit.T @ n_u  # sum of n_u over the users whose N(u) holds j
    penalty = (reg * (n_u @ np.einsum("uk,uk->u", P, P) + n_i @ np.einsum("ik,ik->i", Q, Q)
                      + y_weight @ np.einsum("jk,jk->j", Y, Y))
               + reg_bias * (n_u @ user_bias**2 + n_i @ item_bias**2))
    return float(0.5 * (e @ e + penalty))


def user_blocks(users, n_users, rng):
    """A visiting order that takes users in random order and each user's ratings shuffled.

    Returns ``(order, block_starts)``: ``order[block_starts[b]:block_starts[b+1]]`` are the
    rating positions of the ``b``-th user visited.
    """
    shuffled = rng.permutation(len(users))
    user_rank = rng.permutation(n_users)
    order = shuffled[np.argsort(user_rank[users[shuffled]], kind="stable")]
    counts = np.bincount(user_rank[users], minlength=n_users)
    block_starts = np.r_[0, np.cumsum(counts[counts > 0])]
    return order, block_starts
