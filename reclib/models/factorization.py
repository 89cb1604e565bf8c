"""Matrix factorisation for explicit ratings: FunkSVD, biased MF (SGD or ALS) and ALS.

Every model minimises the regularised squared error over the *observed* ratings only (the
objective :math:`J` of :mod:`reclib.models._factor_base`), which is what separates them from
a truncated SVD of a filled-in matrix.

References
----------
S. Funk, "Netflix Update: Try This at Home", 2006, https://sifter.org/~simon/journal/20061211.html
Y. Koren, R. Bell, C. Volinsky, "Matrix factorization techniques for recommender systems",
IEEE Computer 42(8), 2009.
Y. Zhou, D. Wilkinson, R. Schreiber, R. Pan, "Large-scale parallel collaborative filtering for
the Netflix Prize", AAIM 2008 (ALS with weighted-lambda regularisation).
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp

from .._validation import check_choice
from ..interactions import Interactions
from ._factor_base import FactorModel
from ._sgd_kernels import (als_rows, block_records, mf_epoch_records, mf_loss_chunked,
                          shuffle_block_records)

#: Groups of users (and of items) for the stratified SGD pass; fixed, so that the result
#: does not depend on the number of threads.
_N_STRATA = 4


class FunkSVD(FactorModel):
    r"""Plain matrix factorisation fitted by SGD, :math:`\hat r_{ui} = p_u^\top q_i`.

    Minimises

    .. math::

        J = \tfrac12 \sum_{(u,i) \in \mathcal{R}}
            \big[(r_{ui} - p_u^\top q_i)^2 + \lambda (\lVert p_u\rVert^2 + \lVert q_i\rVert^2)\big]

    by visiting the ratings in random order and stepping against one rating's gradient,
    with :math:`e_{ui} = r_{ui} - p_u^\top q_i`:

    .. math::

        p_u \leftarrow p_u + \eta\,(e_{ui} q_i - \lambda p_u), \qquad
        q_i \leftarrow q_i + \eta\,(e_{ui} p_u - \lambda q_i).

    The defaults are those of Surprise's ``SVD(biased=False)``. A pair with an unknown user
    or item gets the global mean (the model has nothing else to say about it).

    Parameters
    ----------
    n_factors : int
        :math:`k`, the length of :math:`p_u` and :math:`q_i`.
    n_epochs : int
        Passes over the training ratings.
    lr : float
        Step size :math:`\eta`.
    reg : float
        :math:`\lambda \ge 0`.
    init_std : float
        Factors start as :math:`\mathcal{N}(0, \texttt{init\_std}^2)`.
    random_state : int, optional
        Seeds the initialisation and the visiting order.
    verbose : bool
        Show a progress bar over epochs.

    Attributes
    ----------
    user_factors_, item_factors_ : ndarray of shape (n_users, k), (n_items, k)
        :math:`P` and :math:`Q`.
    mean_ : float
        The mean training rating (used only for unknown pairs).
    loss_history_ : ndarray of shape (n_epochs,)
        :math:`J` after each epoch.
    """

    def __init__(self, n_factors: int = 100, n_epochs: int = 20, lr: float = 0.005,
                 reg: float = 0.02, init_std: float = 0.1, random_state=None,
                 verbose: bool = False):
        self.n_factors = n_factors
        self.n_epochs = n_epochs
        self.lr = lr
        self.reg = reg
        self.init_std = init_std
        self.random_state = random_state
        self.verbose = verbose

    _biased = False

    def _validate_params(self) -> None:
        self._validate_common()

    def _fit(self, data: Interactions) -> None:
        self.mean_ = float(data.ratings.mean())
        try:
            self._run_epochs(data)
        finally:
            self.__dict__.pop("_strata", None)

    def _init_state(self, data, rng) -> None:
        k = self.n_factors
        self.user_factors_ = rng.normal(0.0, self.init_std, (data.n_users, k))
        self.item_factors_ = rng.normal(0.0, self.init_std, (data.n_items, k))
        self.user_bias_ = np.zeros(data.n_users) if self._biased else None
        self.item_bias_ = np.zeros(data.n_items) if self._biased else None
        if hasattr(self, "lr") and getattr(self, "solver", "sgd") == "sgd":
            order, block_starts = sgd_strata(data.users, data.items, data.n_users,
                                             data.n_items, _N_STRATA, rng)
            self._strata = (block_records(data.users, data.items, data.ratings, order),
                            block_starts)

    def _epoch(self, data, rng) -> None:
        records, block_starts = self._strata
        shuffle_block_records(records, block_starts,
                              rng.integers(0, 2**31 - 1, len(block_starts) - 1))
        dummy = np.zeros(1)
        previous = numba.set_parallel_chunksize(1)     # a block to whichever thread is free
        try:
            mf_epoch_records(records, block_starts, _N_STRATA, rng.permutation(_N_STRATA),
                            self.mean_ if self._biased else 0.0,
                            self.user_bias_ if self._biased else dummy,
                            self.item_bias_ if self._biased else dummy,
                            self.user_factors_, self.item_factors_, self.lr, self.reg,
                            getattr(self, "reg_bias", 0.0), self._biased)
        finally:
            numba.set_parallel_chunksize(previous)

    def _loss(self, data) -> float:
        dummy = np.zeros(1)
        return mf_loss_chunked(data.users, data.items, data.ratings,
                               self.mean_ if self._biased else 0.0,
                               self.user_bias_ if self._biased else dummy,
                               self.item_bias_ if self._biased else dummy,
                               self.user_factors_, self.item_factors_, self.reg,
                               getattr(self, "reg_bias", 0.0), self._biased,
                               np.bincount(data.users, minlength=data.n_users),
                               np.bincount(data.items, minlength=data.n_items))


def sgd_strata(users, items, n_users, n_items, n_strata, rng):
    r"""Blocks of ratings for :func:`~reclib.models._sgd_kernels.mf_epoch_strata`.

    Users, in a random order, are cut into ``n_strata`` groups of about equal rating counts,
    and so are items; rating ``n`` falls in block ``g_u * n_strata + g_i``. Returns
    ``(order, block_starts)``: the rating indices sorted by block and each block's start.
    Every epoch shuffles each block and draws the order of the strata, so every rating is
    still visited once per epoch in a random order; only ratings of blocks that share neither
    users nor items are interleaved across threads.
    """
    perm_u, perm_i = rng.permutation(n_users), rng.permutation(n_items)
    g_u = np.empty(n_users, dtype=np.int64)
    g_i = np.empty(n_items, dtype=np.int64)
    for perm, ids, g in ((perm_u, users, g_u), (perm_i, items, g_i)):
        counts = np.bincount(ids, minlength=len(perm))[perm]
        before = np.cumsum(counts) - counts
        g[perm] = np.minimum(before * n_strata // max(len(ids), 1), n_strata - 1)
    block = g_u[users] * n_strata + g_i[items]
    order = np.argsort(block, kind="stable")
    block_starts = np.r_[0, np.cumsum(np.bincount(block, minlength=n_strata ** 2))]
    return order.astype(np.int64), block_starts.astype(np.int64)


class BiasedMF(FunkSVD):
    r"""Matrix factorisation with biases, :math:`\hat r_{ui} = \mu + b_u + b_i + p_u^\top q_i`.

    Minimises (Koren, Bell and Volinsky, 2009, eq. 5)

    .. math::

        J = \tfrac12 \sum_{(u,i) \in \mathcal{R}} \big[ e_{ui}^2
            + \lambda (\lVert p_u\rVert^2 + \lVert q_i\rVert^2) + \lambda_b (b_u^2 + b_i^2) \big],
        \qquad e_{ui} = r_{ui} - \hat r_{ui},

    with :math:`\mu` fixed at the mean training rating.

    ``solver="sgd"`` steps against one rating's gradient at a time (the updates of Surprise's
    ``SVD``):

    .. math::

        b_u \leftarrow b_u + \eta (e_{ui} - \lambda_b b_u), \quad
        b_i \leftarrow b_i + \eta (e_{ui} - \lambda_b b_i), \quad
        p_u \leftarrow p_u + \eta (e_{ui} q_i - \lambda p_u), \quad
        q_i \leftarrow q_i + \eta (e_{ui} p_u - \lambda q_i).

    ``solver="als"`` alternates exact minimisers: with the items fixed, each user's
    :math:`w_u = (p_u, b_u)` solves a ridge regression on :math:`x_i = (q_i, 1)` and
    :math:`y_{ui} = r_{ui} - \mu - b_i`,

    .. math::

        \Big(\sum_{i \in \mathcal{R}(u)} x_i x_i^\top + n_u \Lambda\Big) w_u
        = \sum_{i \in \mathcal{R}(u)} y_{ui}\, x_i, \qquad
        \Lambda = \mathrm{diag}(\lambda, \dots, \lambda, \lambda_b),

    and symmetrically for the items. Both solvers minimise the same :math:`J`.
    The defaults were chosen for the SGD solver on a validation split carved from a
    MovieLens 100K training fold (never its test fold); ALS wants a larger ``reg`` and fewer
    factors (about 0.1 to 0.2 and 10). A pair with an unknown user is predicted as :math:`\mu + b_i`, one with an unknown item as
    :math:`\mu + b_u`.

    Parameters
    ----------
    n_factors, n_epochs, lr, reg, init_std, random_state, verbose
        As in :class:`FunkSVD` (``lr`` is unused by ALS).
    reg_bias : float
        :math:`\lambda_b \ge 0`.
    solver : {"sgd", "als"}

    Attributes
    ----------
    mean_ : float
        :math:`\mu`.
    user_bias_, item_bias_ : ndarray
        :math:`b_u` and :math:`b_i`.
    user_factors_, item_factors_ : ndarray
        :math:`P` and :math:`Q`.
    loss_history_ : ndarray of shape (n_epochs,)
        :math:`J` after each epoch.
    """

    _biased = True

    def __init__(self, n_factors: int = 100, n_epochs: int = 60, lr: float = 0.01,
                 reg: float = 0.1, reg_bias: float = 0.02, init_std: float = 0.01,
                 solver: str = "sgd", random_state=None, verbose: bool = False):
        self.n_factors = n_factors
        self.n_epochs = n_epochs
        self.lr = lr
        self.reg = reg
        self.reg_bias = reg_bias
        self.init_std = init_std
        self.solver = solver
        self.random_state = random_state
        self.verbose = verbose

    def _validate_params(self) -> None:
        check_choice("solver", self.solver, {"sgd", "als"})
        self._validate_common()

    def _init_state(self, data, rng) -> None:
        super()._init_state(data, rng)
        if self.solver == "als":
            self._by_user = data.to_csr()
            self._by_item = sp.csr_matrix(self._by_user.T)

    def _epoch(self, data, rng) -> None:
        if self.solver == "sgd":
            return super()._epoch(data, rng)
        k = self.n_factors
        reg_diag = np.r_[np.full(k, self.reg), self.reg_bias]
        ones_u, ones_i = np.ones((data.n_users, 1)), np.ones((data.n_items, 1))
        R = self._by_user  # users first: they see the current items
        y = R.data - self.mean_ - self.item_bias_[R.indices]
        W = als_rows(R.indptr, R.indices, y, np.hstack([self.item_factors_, ones_i]), reg_diag)
        self.user_factors_, self.user_bias_ = W[:, :k], W[:, k].copy()
        R = self._by_item
        y = R.data - self.mean_ - self.user_bias_[R.indices]
        W = als_rows(R.indptr, R.indices, y, np.hstack([self.user_factors_, ones_u]), reg_diag)
        self.item_factors_, self.item_bias_ = W[:, :k], W[:, k].copy()


class ExplicitALS(FunkSVD):
    r"""Matrix factorisation :math:`\hat r_{ui} = p_u^\top q_i` fitted by alternating least
    squares (ALS-WR of Zhou et al., 2008).

    Minimises the same :math:`J` as :class:`FunkSVD`. With :math:`Q` fixed, :math:`J` is a
    sum of independent ridge regressions, one per user, whose minimiser solves the normal
    equations (set :math:`\partial J / \partial p_u = 0`)

    .. math::

        \Big(\sum_{i \in \mathcal{R}(u)} q_i q_i^\top + \lambda n_u I\Big) p_u
        = \sum_{i \in \mathcal{R}(u)} r_{ui}\, q_i ,

    and symmetrically for each :math:`q_i` with :math:`P` fixed. Every half-step is exact, so
    :math:`J` never increases and there is no step size to choose. A pair with an unknown user
    or item gets the global mean.

    Parameters
    ----------
    n_factors : int
        :math:`k`.
    n_epochs : int
        Alternations (each updates all users, then all items).
    reg : float
        :math:`\lambda \ge 0`.
    init_std : float
        Item factors start as :math:`\mathcal{N}(0, \texttt{init\_std}^2)`.
    random_state : int, optional
    verbose : bool

    Attributes
    ----------
    user_factors_, item_factors_ : ndarray
        :math:`P` and :math:`Q`.
    mean_ : float
        The mean training rating (used only for unknown pairs).
    loss_history_ : ndarray of shape (n_epochs,)
        :math:`J` after each alternation.
    """

    def __init__(self, n_factors: int = 20, n_epochs: int = 15, reg: float = 0.1,
                 init_std: float = 0.1, random_state=None, verbose: bool = False):
        self.n_factors = n_factors
        self.n_epochs = n_epochs
        self.reg = reg
        self.init_std = init_std
        self.random_state = random_state
        self.verbose = verbose

    def _init_state(self, data, rng) -> None:
        super()._init_state(data, rng)
        self._by_user = data.to_csr()
        self._by_item = sp.csr_matrix(self._by_user.T)

    def _epoch(self, data, rng) -> None:
        reg_diag = np.full(self.n_factors, self.reg)
        R = self._by_user
        self.user_factors_ = als_rows(R.indptr, R.indices, R.data, self.item_factors_, reg_diag)
        R = self._by_item
        self.item_factors_ = als_rows(R.indptr, R.indices, R.data, self.user_factors_, reg_diag)
