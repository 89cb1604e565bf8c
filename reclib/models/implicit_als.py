r"""Implicit-feedback matrix factorisation by alternating least squares (iALS).

References
----------
Y. Hu, Y. Koren, C. Volinsky, "Collaborative filtering for implicit feedback datasets",
ICDM 2008 (the model, the confidence weights and the :math:`Y^\top Y` trick).
G. Takács, I. Pilászy, D. Tikk, "Applications of the conjugate gradient method for implicit
feedback collaborative filtering", RecSys 2011 (a few warm-started CG steps per solve).
S. Rendle, W. Krichene, L. Zhang, Y. Koren, "Revisiting the performance of iALS on item
recommendation benchmarks", RecSys 2022 (frequency-scaled regularisation).
Y. Zhou, D. Wilkinson, R. Schreiber, R. Pan, "Large-scale parallel collaborative filtering for
the Netflix Prize", AAIM 2008 (ALS-WR: the ridge weight scaled by the row's rating count).
Apache Spark, ``mllib/src/main/scala/org/apache/spark/ml/recommendation/ALS.scala``,
``ALS.computeFactors`` (the implicit normal equations and ``numExplicits * regParam``).
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp
from .._progress import tqdm

from .._random import scaled_normal
from .._validation import check_bool, check_choice, check_float, check_int, check_random_state
from ..interactions import Interactions
from .base import Recommender


class ImplicitALS(Recommender):
    r"""Weighted matrix factorisation of implicit feedback (Hu, Koren and Volinsky, 2008).

    Every (user, item) pair is a training example. The *preference* is
    :math:`p_{ui} = 1` when the user interacted with the item and :math:`0` otherwise; the
    *confidence* :math:`c_{ui}` says how much that preference is trusted. A missing entry is
    not a dislike, only weak evidence against, so it gets :math:`c_{ui} = 1` while an observed
    one gets more:

    .. math::

        c_{ui} = 1 + \alpha\, r_{ui} \quad (\texttt{confidence="linear"}), \qquad
        c_{ui} = 1 + \alpha \log(1 + r_{ui}/\epsilon) \quad (\texttt{confidence="log"}),

    where :math:`r_{ui}` is the stored value (``1`` for every interaction when ``binary=True``,
    the rating otherwise). The objective over user factors :math:`x_u` and item factors
    :math:`y_i` is

    .. math::

        J = \sum_{u,i} c_{ui}\,(p_{ui} - x_u^\top y_i)^2
            + \sum_u \lambda_u \lVert x_u \rVert^2 + \sum_i \lambda_i \lVert y_i \rVert^2 .

    With the items fixed, :math:`J` is a ridge regression per user with the closed form

    .. math::

        x_u = \big(Y^\top Y + Y^\top (C^u - I) Y + \lambda_u I\big)^{-1} Y^\top C^u p(u),

    and :math:`Y^\top Y` is the same for every user, so it is computed once per sweep; the
    correction :math:`Y^\top (C^u - I) Y` only involves the :math:`n_u` items the user has,
    which turns an :math:`O(|I| f^2)` solve into :math:`O(f^2 n_u + f^3)`. ``solver="exact"``
    does exactly this (Cholesky per user). ``solver="cg"`` instead runs ``cg_steps`` conjugate
    gradient steps on the same linear system, warm-started from the previous factors; each step
    costs :math:`O(f^2 + f\, n_u)` and after a few sweeps it tracks the exact answer (Takács et
    al., 2011). Items are updated the same way with the roles swapped.

    Regularisation: ``reg_exponent=0`` gives the classic :math:`\lambda_u = \lambda_i =
    \lambda`. Rendle et al. (2022) scale it with how much data each row has; here
    :math:`\lambda_u = \lambda\, (\sum_i c_{ui})^{\nu}` (the total confidence of the row, which
    is :math:`|I| + \alpha n_u` in the binary case) and likewise for items, with
    :math:`\nu` = ``reg_exponent`` in :math:`[0, 1]`. ``reg_basis="count"`` scales by the
    row's *number* of interactions instead,

    .. math::

        \lambda_u = \lambda\, n_u^{\nu}, \qquad \lambda_i = \lambda\, n_i^{\nu},

    which at :math:`\nu = 1` is the weighted-:math:`\lambda` rule ("ALS-WR", Zhou et al.,
    2008) that Spark MLlib applies to implicit feedback as well. In Spark's
    ``ml/recommendation/ALS.scala`` (``computeFactors``), each row's normal equation starts
    from the Gram matrix :math:`Y^\top Y`, every stored rating :math:`r` adds
    :math:`c - 1 = \alpha |r|` times :math:`y y^\top` and, when :math:`r > 0`,
    :math:`(1 + \alpha |r|)\, y` to the right-hand side; the ridge term is
    ``numExplicits * regParam``, with ``numExplicits`` the number of ratings :math:`r > 0` of
    the row. With ``binary=True`` (every :math:`r = 1`), ``confidence="linear"``,
    ``reg_basis="count"`` and ``reg_exponent=1`` this class therefore solves the same
    per-row systems as Spark's ``ALS(implicitPrefs=True, regParam=reg, alpha=alpha)``. Here
    :math:`n_u` counts the row's stored interactions (all of them are positives); a row with
    none has a zero right-hand side, so its factor goes to zero.

    Parameters
    ----------
    n_factors : int
        :math:`f`, the number of latent factors.
    reg : float
        :math:`\lambda \ge 0`. With the default ``reg_exponent=1`` it multiplies the row's
        total confidence, so it is small; with ``reg_exponent=0`` useful values on MovieLens
        100K are in the tens to hundreds.
    alpha : float
        :math:`\alpha \ge 0`, the extra confidence of observed entries.
    confidence : {"linear", "log"}
    epsilon : float
        :math:`\epsilon > 0` of the log confidence.
    binary : bool
        Treat every interaction as :math:`r_{ui} = 1` (default) or use the stored ratings.
    reg_basis : {"confidence", "count"}
        What :math:`\lambda` is scaled by: the row's total confidence :math:`\sum_i c_{ui}`
        (default) or its number of interactions :math:`n_u` (Spark MLlib's rule at
        ``reg_exponent=1``). It does nothing when ``reg_exponent=0``.
    reg_exponent : float
        :math:`\nu \in [0, 1]`, the frequency scaling of the regularisation. The defaults
        (:math:`\nu = 1`, :math:`\lambda = 0.03`, :math:`\alpha = 10`) won the binary,
        linear-confidence part of the validation grid carved from the MovieLens 100K training set
        (``benchmarks/ranking_ml100k.py``); that grid also tries ``confidence="log"`` on the star
        ratings (``binary=False``), and its overall winner is listed with the results.
    n_epochs : int
        Sweeps (users then items).
    solver : {"cg", "exact"}
        Conjugate gradient (fast) or the exact per-row solve (readable reference).
    cg_steps : int
        CG steps per row and sweep.
    init_std : float
        Factors start as :math:`\mathcal{N}(0, \text{init\_std}^2 / f)`.
    random_state : int, optional
    verbose : bool
        Show a progress bar over sweeps.

    Attributes
    ----------
    user_factors_ : ndarray of shape (n_users, factors), float32
    item_factors_ : ndarray of shape (n_items, factors), float32
    loss_history_ : ndarray
        :math:`J` after each sweep.
    """

    #: Floating type of the factors, the confidences and the solves. Not a hyper-parameter:
    #: float32 always, except where a test of :class:`reclib.neural.TorchImplicitALS` sets
    #: float64 on an instance to compare the two implementations at full precision.
    _dtype = np.float32

    def __init__(self, n_factors: int = 64, reg: float = 0.03, alpha: float = 10.0,
                 confidence: str = "linear", epsilon: float = 1.0, binary: bool = True,
                 reg_exponent: float = 1.0, n_epochs: int = 15, solver: str = "cg",
                 cg_steps: int = 3, init_std: float = 0.1, random_state=None,
                 verbose: bool = False, reg_basis: str = "confidence"):
        self.n_factors = n_factors
        self.reg = reg
        self.alpha = alpha
        self.confidence = confidence
        self.epsilon = epsilon
        self.binary = binary
        self.reg_exponent = reg_exponent
        self.n_epochs = n_epochs
        self.solver = solver
        self.cg_steps = cg_steps
        self.init_std = init_std
        self.random_state = random_state
        self.verbose = verbose
        self.reg_basis = reg_basis

    def _validate_params(self) -> None:
        check_ials_params(self, solvers={"cg", "exact"})

    def confidence_matrix(self, X: sp.csr_matrix) -> sp.csr_matrix:
        """:math:`C - 1` on the observed entries of ``X`` (so :math:`c_{ui} = 1 +` stored value)."""
        return ials_confidence(X, self.alpha, self.confidence, self.epsilon, self.binary,
                               self._dtype)

    def _fit(self, data: Interactions) -> None:
        # binary: every confidence is one constant, so C can share seen_'s index arrays
        C = self.confidence_matrix(self.seen_ if self.binary else data.to_csr(binary=False))
        Ct = C.T.tocsr()
        Ct.sort_indices()
        n_users, n_items = C.shape
        f = self.n_factors
        rng = check_random_state(self.random_state)
        scale = self.init_std / np.sqrt(f)
        dtype = self._dtype
        X = scaled_normal(rng, n_users, f, scale, dtype=dtype)
        Y = scaled_normal(rng, n_items, f, scale, dtype=dtype)
        reg_u, reg_i = ials_regularisers(C, Ct, self.reg, self.reg_exponent, self.reg_basis,
                                         dtype)
        if self.solver == "cg":
            chunks_u = _balanced_chunks(C.indptr, f)
            chunks_i = _balanced_chunks(Ct.indptr, f)
            terms_u, terms_i = np.empty(n_users), np.empty(n_items)
            gram_y = _gram(Y)
        history = []
        for sweep in tqdm(range(self.n_epochs), desc=type(self).__name__, disable=not self.verbose):
            if self.solver == "exact":
                for A, B, M, reg in ((X, Y, C, reg_u), (Y, X, Ct, reg_i)):
                    gram = (B.T @ B).astype(dtype)               # Y^T Y, once per sweep
                    _solve_exact(M.indptr, M.indices, M.data, A, B, gram, reg)
                loss = ials_objective(C, X, Y, reg_u, reg_i)
            else:
                # the fused kernel also returns each row's share of J (its regulariser and,
                # for the items, the observed terms), and the two Gram matrices it needs are
                # the final ones of the sweep, so J costs two traces on top of the solves
                previous = numba.set_parallel_chunksize(1)    # chunks go to idle threads
                try:
                    _cg_sweep(C.indptr, C.indices, C.data, X, Y, gram_y, reg_u, self.cg_steps,
                              chunks_u, False, terms_u)
                    gram_x = _gram(X)
                    _cg_sweep(Ct.indptr, Ct.indices, Ct.data, Y, X, gram_x, reg_i,
                              self.cg_steps, chunks_i, True, terms_i)
                finally:
                    numba.set_parallel_chunksize(previous)
                gram_y = _gram(Y)
                loss = float(np.sum(gram_x.astype(np.float64) * gram_y)
                             + terms_u.sum() + terms_i.sum())
            if not (np.isfinite(loss) and np.isfinite(X).all() and np.isfinite(Y).all()):
                raise FloatingPointError(
                    f"{type(self).__name__} diverged at sweep {sweep + 1} (loss {loss}); "
                    f"raise reg (now {self.reg}) or lower alpha (now {self.alpha})")
            history.append(loss)
        self.user_factors_, self.item_factors_ = X, Y
        self.loss_history_ = np.array(history)

    def _score_users(self, users):
        return self.user_factors_[users] @ self.item_factors_.T    # (len(users), n_items)

    def _item_vectors(self):
        return self.item_factors_


def check_ials_params(model, solvers) -> None:
    """The hyper-parameter checks of :class:`ImplicitALS`, for any model with its arguments.

    ``solvers`` is the set of ``solver`` values the model accepts. Shared with
    :class:`reclib.neural.TorchImplicitALS`, so that both refuse the same values alike.
    """
    check_int("n_factors", model.n_factors, minimum=1)
    check_float("reg", model.reg, minimum=0.0)
    check_float("alpha", model.alpha, minimum=0.0)
    check_choice("confidence", model.confidence, {"linear", "log"})
    check_float("epsilon", model.epsilon, strictly_positive=True)
    check_float("reg_exponent", model.reg_exponent, minimum=0.0, maximum=1.0)
    check_int("n_epochs", model.n_epochs, minimum=1)
    check_choice("solver", model.solver, solvers)
    check_int("cg_steps", model.cg_steps, minimum=1)
    check_float("init_std", model.init_std, strictly_positive=True)
    check_bool("binary", model.binary)
    check_choice("reg_basis", model.reg_basis, {"confidence", "count"})


def ials_confidence(X: sp.csr_matrix, alpha: float, confidence: str, epsilon: float,
                    binary: bool, dtype=np.float32) -> sp.csr_matrix:
    r""":math:`C - 1` on the stored entries of ``X``, sorted, with values of type ``dtype``.

    :math:`\alpha r` (``"linear"``) or :math:`\alpha \log(1 + r / \epsilon)` (``"log"``),
    with :math:`r = 1` for every entry when ``binary``; see :class:`ImplicitALS`.
    """
    if binary:           # one constant: no temporaries of the size of X
        extra = np.full(X.nnz, alpha if confidence == "linear"
                        else alpha * np.log1p(1.0 / epsilon), dtype=dtype)
    elif confidence == "linear":
        extra = alpha * X.data
    else:
        extra = alpha * np.log1p(X.data / epsilon)
    if np.any(extra < 0):
        raise ValueError("confidence must not fall below 1: ratings are negative; use "
                         "binary=True or non-negative ratings")
    C = sp.csr_matrix((extra.astype(dtype), X.indices, X.indptr), shape=X.shape)
    C.sort_indices()
    return C


def ials_regularisers(C: sp.csr_matrix, Ct: sp.csr_matrix, reg: float, reg_exponent: float,
                      reg_basis: str, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    r""":math:`\lambda_u` and :math:`\lambda_i` of every row of ``C`` and of ``Ct = C^T``.

    ``reg_basis="confidence"``: :math:`\lambda (\sum_i c_{ui})^{\nu}` (the row's total
    confidence, unobserved entries counting 1); ``"count"``: :math:`\lambda\, n_u^{\nu}`.
    Returned as ``dtype`` (the sums are taken in the type of ``C``'s values).
    """
    n_users, n_items = C.shape
    nu = reg_exponent
    if reg_basis == "confidence":
        reg_u = reg * (n_items + np.asarray(C.sum(axis=1)).ravel()) ** nu
        reg_i = reg * (n_users + np.asarray(Ct.sum(axis=1)).ravel()) ** nu
    else:                                       # lambda n^nu, n = stored entries of the row
        reg_u = reg * np.diff(C.indptr).astype(np.float64) ** nu
        reg_i = reg * np.diff(Ct.indptr).astype(np.float64) ** nu
    return reg_u.astype(dtype), reg_i.astype(dtype)


def ials_objective(C: sp.csr_matrix, X: np.ndarray, Y: np.ndarray, reg_u, reg_i) -> float:
    r"""The iALS objective :math:`J`, in :math:`O(\text{nnz}\, f + (|U| + |I|) f^2)`.

    ``C`` holds :math:`c_{ui} - 1` on the observed entries. The sum over *all* pairs of
    :math:`\hat p_{ui}^2` is :math:`\operatorname{tr}(X^\top X\, Y^\top Y)`; the observed
    entries then add :math:`(c_{ui} - 1)\hat p^2_{ui} + c_{ui}(1 - 2 \hat p_{ui})`.
    """
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    loss = np.sum((X64.T @ X64) * (Y64.T @ Y64))
    loss += _observed_terms(C.indptr, C.indices, C.data, X, Y)
    loss += np.dot(reg_u, np.einsum("uf,uf->u", X64, X64))
    loss += np.dot(reg_i, np.einsum("if,if->i", Y64, Y64))
    return float(loss)


@numba.njit(cache=True, fastmath=True)
def _observed_terms(indptr, indices, extra, X, Y):  # pragma: no cover - jit
    total = 0.0
    for u in range(X.shape[0]):
        for n in range(indptr[u], indptr[u + 1]):
            i = indices[n]
            s = X[u, 0] * 0                      # a zero of the factors' dtype keeps SIMD
            for k in range(X.shape[1]):
                s += X[u, k] * Y[i, k]
            total += extra[n] * s * s + (extra[n] + 1.0) * (1.0 - 2.0 * s)
    return total


@numba.njit(parallel=True, cache=True, fastmath=True)
def _solve_exact(indptr, indices, extra, A, B, gram, reg):  # pragma: no cover - jit
    """Rows of ``A``: (B^T B + B^T (C_u - I) B + reg_u I) a_u = B^T C_u p_u, by Cholesky."""
    f = A.shape[1]
    for u in numba.prange(A.shape[0]):
        lhs = gram.astype(np.float64)
        rhs = np.zeros(f)
        for n in range(indptr[u], indptr[u + 1]):
            b = B[indices[n]].astype(np.float64)
            c_minus_1 = extra[n]
            lhs += c_minus_1 * np.outer(b, b)
            rhs += (c_minus_1 + 1.0) * b                    # c_ui * p_ui, p_ui = 1
        for k in range(f):
            lhs[k, k] += reg[u]
        A[u] = np.linalg.solve(lhs, rhs)


@numba.njit(parallel=True, cache=True, fastmath=True)
def _solve_cg(indptr, indices, extra, A, B, gram, reg, cg_steps):  # pragma: no cover - jit
    """``cg_steps`` conjugate-gradient steps on the same system, warm-started from ``A[u]``.

    The matrix is never formed: ``lhs @ v = gram @ v + reg_u v + sum_i (c_ui - 1)(b_i . v) b_i``.
    """
    f = A.shape[1]
    for u in numba.prange(A.shape[0]):
        x = A[u].copy()
        r = np.empty(f, dtype=A.dtype)
        _lhs_times(x, indptr[u], indptr[u + 1], indices, extra, B, gram, reg[u], r)
        for k in range(f):
            r[k] = -r[k]
        for n in range(indptr[u], indptr[u + 1]):       # + B^T C_u p_u
            b = B[indices[n]]
            c = extra[n] + 1.0
            for k in range(f):
                r[k] += c * b[k]
        p = r.copy()
        Ap = np.empty(f, dtype=A.dtype)
        rs_old = _dot(r, r)
        for _ in range(cg_steps):
            if rs_old < 1e-20:
                break
            _lhs_times(p, indptr[u], indptr[u + 1], indices, extra, B, gram, reg[u], Ap)
            step = rs_old / _dot(p, Ap)
            for k in range(f):
                x[k] += step * p[k]
                r[k] -= step * Ap[k]
            rs_new = _dot(r, r)
            for k in range(f):
                p[k] = r[k] + (rs_new / rs_old) * p[k]
            rs_old = rs_new
        A[u] = x


@numba.njit(cache=True, fastmath=True, inline="always")
def _dot(a, b):  # pragma: no cover - jit
    total = a[0] * 0                             # a zero of the factors' dtype keeps SIMD
    for k in range(a.shape[0]):
        total += a[k] * b[k]
    return total


@numba.njit(cache=True, fastmath=True)
def _lhs_times(v, start, stop, indices, extra, B, gram, reg_row, out):  # pragma: no cover - jit
    """``out = (gram + reg_row I) v + sum_{n in [start, stop)} extra_n (b_n . v) b_n``."""
    f = v.shape[0]
    for k in range(f):
        total = reg_row * v[k]
        for m in range(f):
            total += gram[k, m] * v[m]
        out[k] = total
    for n in range(start, stop):
        b = B[indices[n]]
        w = extra[n] * _dot(b, v)
        for k in range(f):
            out[k] += w * b[k]


def _gram(A: np.ndarray) -> np.ndarray:
    r""":math:`A^\top A` in the factors' float type (one BLAS call)."""
    return (A.T @ A).astype(A.dtype, copy=False)


def _balanced_chunks(indptr: np.ndarray, n_factors: int) -> np.ndarray:
    r"""Row boundaries of chunks with about equal CG work, :math:`\sum_r (f + 2 n_r)`.

    A CG step on row ``r`` costs :math:`f^2` for the Gram product and :math:`2 f n_r` for its
    entries. Popular items hold thousands of entries, so equal *row* counts would leave one
    thread with most of the work; 64 chunks of equal cost per thread, handed out one at a
    time, do not (and a busy core simply takes fewer of them).
    """
    n_rows = len(indptr) - 1
    if n_rows == 0:
        return np.zeros(1, dtype=np.int64)
    cost = np.cumsum(n_factors + 2 * np.diff(indptr).astype(np.int64))
    n_chunks = min(n_rows, 64 * numba.get_num_threads())
    bounds = np.searchsorted(cost, np.linspace(0, cost[-1], n_chunks + 1)[1:-1], side="right")
    return np.unique(np.r_[0, bounds, n_rows]).astype(np.int64)


@numba.njit(parallel=True, cache=True, fastmath=True)
def _cg_sweep(indptr, indices, extra, A, B, gram, reg, cg_steps, chunks, observed,
              row_terms):  # pragma: no cover - jit
    r""":func:`_solve_cg` for every row, fused, in load-balanced chunks; also writes J's terms.

    The same ``cg_steps`` warm-started CG steps as :func:`_solve_cg` (which the tests hold
    it to), with three changes that do not alter the arithmetic: the start residual
    :math:`r = B^\top C_u p_u - (\text{lhs})\,a_u` takes one pass over the row's entries
    instead of two; the scratch vectors are allocated once per chunk, not per row; and the
    products :math:`s_n = b_n^\top a` are carried through the steps
    (:math:`s_n \leftarrow s_n + \text{step}\; b_n^\top p`, with :math:`b_n^\top p`
    already computed for :math:`\text{lhs}\, p`), so that at the end
    ``row_terms[r]`` :math:`= \lambda_r \lVert a_r \rVert^2` plus, when ``observed``, the
    row's observed terms :math:`\sum_n (c_n - 1) s_n^2 + c_n (1 - 2 s_n)` of
    :func:`ials_objective` come at no extra pass.
    """
    f = A.shape[1]
    for c in numba.prange(len(chunks) - 1):
        lo, hi = chunks[c], chunks[c + 1]
        longest = 0
        for row in range(lo, hi):
            longest = max(longest, indptr[row + 1] - indptr[row])
        x = np.empty(f, dtype=A.dtype)
        r = np.empty(f, dtype=A.dtype)
        p = np.empty(f, dtype=A.dtype)
        Ap = np.empty(f, dtype=A.dtype)
        s = np.empty(longest)                   # b_n . x, float64
        q = np.empty(longest)                   # b_n . p of the current step
        for row in range(lo, hi):
            start, stop = indptr[row], indptr[row + 1]
            reg_row = reg[row]
            for k in range(f):
                x[k] = A[row, k]
            _gram_times(gram, reg_row, x, r)
            for k in range(f):
                r[k] = -r[k]
            for n in range(start, stop):
                b = B[indices[n]]
                d = _dot(b, x)
                s[n - start] = d
                w = (extra[n] + 1.0) - extra[n] * d
                for k in range(f):
                    r[k] += w * b[k]
            for k in range(f):
                p[k] = r[k]
            rs_old = _dot(r, r)
            for _ in range(cg_steps):
                if rs_old < 1e-20:
                    break
                _gram_times(gram, reg_row, p, Ap)
                for n in range(start, stop):
                    b = B[indices[n]]
                    d = _dot(b, p)
                    q[n - start] = d
                    w = extra[n] * d
                    for k in range(f):
                        Ap[k] += w * b[k]
                step = rs_old / _dot(p, Ap)
                for k in range(f):
                    x[k] += step * p[k]
                    r[k] -= step * Ap[k]
                for n in range(stop - start):
                    s[n] += step * q[n]
                rs_new = _dot(r, r)
                for k in range(f):
                    p[k] = r[k] + (rs_new / rs_old) * p[k]
                rs_old = rs_new
            norm = 0.0
            for k in range(f):
                A[row, k] = x[k]
                norm += np.float64(x[k]) * x[k]
            term = reg_row * norm
            if observed:
                for n in range(start, stop):
                    e = np.float64(extra[n])
                    term += e * s[n - start] ** 2 + (e + 1.0) * (1.0 - 2.0 * s[n - start])
            row_terms[row] = term


@numba.njit(cache=True, fastmath=True, inline="always")
def _gram_times(gram, reg_row, v, out):  # pragma: no cover - jit
    """``out = (gram + reg_row I) v`` for a symmetric ``gram``, four columns at a time.

    Summed as columns (``out += v_m gram[m]``) rather than as dot products of rows: the
    inner loop then has no reduction, and SIMD lanes run over ``k`` without shuffles.
    """
    f = v.shape[0]
    for k in range(f):
        out[k] = reg_row * v[k]
    m = 0
    while m + 4 <= f:
        v0, v1, v2, v3 = v[m], v[m + 1], v[m + 2], v[m + 3]
        g0, g1, g2, g3 = gram[m], gram[m + 1], gram[m + 2], gram[m + 3]
        for k in range(f):
            out[k] += g0[k] * v0 + g1[k] * v1 + g2[k] * v2 + g3[k] * v3
        m += 4
    while m < f:
        vm = v[m]
        for k in range(f):
            out[k] += gram[m, k] * vm
        m += 1
