r"""Bayesian personalised ranking: matrix factorisation trained on pairwise preferences.

Reference: S. Rendle, C. Freudenthaler, Z. Gantner, L. Schmidt-Thieme, "BPR: Bayesian
personalized ranking from implicit feedback", UAI 2009, https://arxiv.org/abs/1205.2618.
"""

from __future__ import annotations

import numba
import numpy as np
from .._progress import tqdm

from .._random import scaled_normal
from .._validation import check_bool, check_float, check_int, check_random_state
from ..interactions import Interactions
from .base import Recommender


class BPR(Recommender):
    r"""Matrix factorisation with the BPR pairwise loss, trained by SGD with uniform negatives.

    The score is :math:`\hat x_{ui} = x_u^\top y_i + b_i` (:math:`b_i = 0` when
    ``item_bias=False``). For a user :math:`u`, an item :math:`i` they interacted with and an
    item :math:`j` they did not, BPR maximises the log-likelihood that :math:`u` prefers
    :math:`i` to :math:`j`:

    .. math::

        \max_\Theta \sum_{(u,i,j)} \ln \sigma(\hat x_{uij})
        - \tfrac{\lambda}{2} \lVert \Theta \rVert^2,
        \qquad \hat x_{uij} = \hat x_{ui} - \hat x_{uj}.

    Each SGD step draws :math:`(u, i)` uniformly from the training interactions and
    :math:`j` uniformly from the items :math:`u` has not interacted with, then with
    :math:`g = \sigma(-\hat x_{uij}) = 1 - \sigma(\hat x_{uij})` moves every parameter along
    its gradient:

    .. math::

        x_u \mathrel{+}= \eta\,(g\,(y_i - y_j) - \lambda x_u), \quad
        y_i \mathrel{+}= \eta\,(g\, x_u - \lambda y_i), \quad
        y_j \mathrel{+}= \eta\,(-g\, x_u - \lambda y_j), \quad
        b_i \mathrel{+}= \eta\,(g - \lambda b_i), \quad
        b_j \mathrel{+}= \eta\,(-g - \lambda b_j),

    all evaluated at the parameters before the step. An epoch is as many steps as there are
    training interactions.

    Parameters
    ----------
    n_factors : int
        Latent dimension :math:`f`.
    lr : float
        Step size :math:`\eta`.
    reg : float
        :math:`\lambda \ge 0`.
    n_epochs : int
    item_bias : bool
        Learn :math:`b_i` (it captures popularity, which BPR otherwise must put in the factors).
    init_std : float
        Factors start as :math:`\mathcal{N}(0, \text{init\_std}^2 / f)`.
    random_state : int, optional
    verbose : bool
        Show a progress bar over epochs.

    Attributes
    ----------
    user_factors_, item_factors_ : ndarray of float32
    item_bias_ : ndarray of float32, shape (n_items,)
    loss_history_ : ndarray
        Mean of :math:`-\ln\sigma(\hat x_{uij})` over each epoch's sampled triples.
    """

    def __init__(self, n_factors: int = 64, lr: float = 0.02, reg: float = 0.01,
                 n_epochs: int = 150, item_bias: bool = True, init_std: float = 0.1,
                 random_state=None, verbose: bool = False):
        self.n_factors = n_factors
        self.lr = lr
        self.reg = reg
        self.n_epochs = n_epochs
        self.item_bias = item_bias
        self.init_std = init_std
        self.random_state = random_state
        self.verbose = verbose

    def _validate_params(self) -> None:
        check_int("n_factors", self.n_factors, minimum=1)
        check_float("lr", self.lr, strictly_positive=True)
        check_float("reg", self.reg, minimum=0.0)
        check_int("n_epochs", self.n_epochs, minimum=1)
        check_float("init_std", self.init_std, strictly_positive=True)
        check_bool("item_bias", self.item_bias)

    def _fit(self, data: Interactions) -> None:
        X = self.seen_            # users x items; only its structure (indptr, indices) is read
        n_users, n_items = X.shape
        full = np.flatnonzero(np.diff(X.indptr) >= n_items)
        if len(full) == n_users:
            raise ValueError("every user has interacted with every item: BPR has no negatives "
                             "to sample")
        rng = check_random_state(self.random_state)
        scale = self.init_std / np.sqrt(self.n_factors)
        # float32 tables, as implicit's: half the memory traffic of a step, and SGD noise is
        # far above float32 rounding
        P = scaled_normal(rng, n_users, self.n_factors, scale)
        Q = scaled_normal(rng, n_items, self.n_factors, scale)
        bias = np.zeros(n_items, dtype=np.float32)
        users = np.repeat(np.arange(n_users), np.diff(X.indptr))
        history = []
        for epoch in tqdm(range(self.n_epochs), desc=type(self).__name__,
                          disable=not self.verbose):
            seed = int(rng.integers(2**31 - 1))
            if n_items >= _N_STRATA * _MIN_GROUP:
                plan_rng = np.random.default_rng(seed)
                plan = _strata_plan(X.indptr, X.indices, users, n_items, _N_STRATA, plan_rng)
                previous = numba.set_parallel_chunksize(1)   # blocks to free threads
                try:
                    loss = _bpr_epoch_strata(X.indptr, X.indices, users, P, Q, bias, self.lr,
                                             self.reg, bool(self.item_bias), *plan, _N_STRATA,
                                             plan_rng.permutation(_N_STRATA),
                                             plan_rng.integers(0, 2**31 - 1, _N_STRATA ** 2))
                finally:
                    numba.set_parallel_chunksize(previous)
            else:
                loss = _bpr_epoch_batched(X.indptr, X.indices, users, P, Q, bias, self.lr,
                                          self.reg, bool(self.item_bias), seed)
            if not (np.isfinite(loss) and np.isfinite(P).all() and np.isfinite(Q).all()):
                raise FloatingPointError(f"BPR diverged at epoch {epoch + 1}; lower lr "
                                         f"(now {self.lr})")
            history.append(loss)
        self.user_factors_, self.item_factors_, self.item_bias_ = P, Q, bias
        self.loss_history_ = np.array(history)

    def _score_users(self, users):
        # float64 products of the float32 tables: a score does not depend on how many users
        # are scored together (float32 matrix-vector and matrix-matrix products round apart)
        P = self.user_factors_[users].astype(np.float64)
        return P @ self.item_factors_.T.astype(np.float64) + self.item_bias_.astype(np.float64)

    def _item_vectors(self):
        return self.item_factors_


@numba.njit(cache=True, inline="always", error_model="numpy")
def _sigmoid_neg_and_loss(x_uij):  # pragma: no cover - jit
    r""":math:`g = \sigma(-x)` and the loss :math:`-\ln\sigma(x)`, written so that neither
    branch overflows."""
    if x_uij >= 0:
        e = np.exp(-x_uij)
        return e / (1.0 + e), np.log1p(e)
    e = np.exp(x_uij)
    return 1.0 / (1.0 + e), -x_uij + np.log1p(e)


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def bpr_step(p_u, q_i, q_j, bias, i, j, lr, reg, use_bias):  # pragma: no cover - jit
    r"""One SGD step on :math:`-\ln\sigma(\hat x_{uij}) + \frac{\lambda}{2}\lVert\theta\rVert^2`.

    Updates ``p_u``, ``q_i``, ``q_j`` and ``bias`` in place and returns the loss before the step.
    """
    x_uij = 0.0
    for k in range(p_u.shape[0]):
        x_uij += p_u[k] * (q_i[k] - q_j[k])
    if use_bias:
        x_uij += bias[i] - bias[j]
    g, loss = _sigmoid_neg_and_loss(x_uij)
    for k in range(p_u.shape[0]):
        pu, qi, qj = p_u[k], q_i[k], q_j[k]
        p_u[k] += lr * (g * (qi - qj) - reg * pu)
        q_i[k] += lr * (g * pu - reg * qi)
        q_j[k] += lr * (-g * pu - reg * qj)
    if use_bias:
        bi, bj = bias[i], bias[j]
        bias[i] += lr * (g - reg * bi)
        bias[j] += lr * (-g - reg * bj)
    return loss


@numba.njit(cache=True, fastmath=True, inline="always", error_model="numpy")
def _bpr_step_rows(P, Q, bias, u, i, j, lr, reg, use_bias):  # pragma: no cover - jit
    r""":func:`bpr_step` on rows ``P[u]``, ``Q[i]``, ``Q[j]`` of float32 tables, in float32.

    The margin's exponential and logarithm are taken in float64; the row updates use
    :math:`\eta`, :math:`\lambda` and :math:`g` rounded to float32, so no element is widened
    and narrowed again. It equals :func:`bpr_step` to float32 rounding (tested).
    """
    f = P.shape[1]
    x = np.float32(0.0)
    for k in range(f):
        x += P[u, k] * (Q[i, k] - Q[j, k])
    if use_bias:
        x += bias[i] - bias[j]
    g64, loss = _sigmoid_neg_and_loss(np.float64(x))
    g, a, r = np.float32(g64), np.float32(lr), np.float32(reg)
    for k in range(f):
        pu, qi, qj = P[u, k], Q[i, k], Q[j, k]
        P[u, k] = pu + a * (g * (qi - qj) - r * pu)
        Q[i, k] = qi + a * (g * pu - r * qi)
        Q[j, k] = qj + a * (-g * pu - r * qj)
    if use_bias:
        bi, bj = bias[i], bias[j]
        bias[i] = bi + a * (g - r * bi)
        bias[j] = bj + a * (-g - r * bj)
    return loss


@numba.njit(cache=True, inline="always")
def _next_u64(state):  # pragma: no cover - jit
    """SplitMix64 (Steele, Lea and Flood, 2014): the next 64 random bits of ``state[0]``."""
    z = state[0] + np.uint64(0x9E3779B97F4A7C15)
    state[0] = z
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(cache=True, inline="always")
def _uniform_below(state, n):  # pragma: no cover - jit
    """An integer uniform on ``[0, n)`` for ``0 < n < 2**32``, exactly.

    Lemire's (2019) multiply-shift: the high half of ``x * n`` for 32 random bits ``x``,
    redrawn in the rare case that the low half falls below ``2**32 mod n``, which is what
    makes every value equally likely. A draw costs one multiplication, not a division.
    """
    m = (_next_u64(state) >> np.uint64(32)) * np.uint64(n)
    low = m & np.uint64(0xFFFFFFFF)
    if low < np.uint64(n):
        threshold = (np.uint64(0x100000000) - np.uint64(n)) % np.uint64(n)
        while low < threshold:
            m = (_next_u64(state) >> np.uint64(32)) * np.uint64(n)
            low = m & np.uint64(0xFFFFFFFF)
    return np.int64(m >> np.uint64(32))


@numba.njit(cache=True, error_model="numpy")
def _bpr_epoch(indptr, indices, users, P, Q, bias, lr, reg, use_bias, seed):  # pragma: no cover
    """The plain epoch: draw a triple, step, repeat. :func:`_bpr_epoch_batched` is the one
    the model runs; the tests hold it to this."""
    np.random.seed(seed)
    n_items = Q.shape[0]
    n = len(indices)
    total = 0.0
    for _ in range(n):
        idx = np.random.randint(n)
        u = users[idx]
        i = indices[idx]
        start, stop = indptr[u], indptr[u + 1]
        if stop - start >= n_items:
            continue
        while True:                                   # uniform over the user's non-items
            j = np.random.randint(n_items)
            pos = np.searchsorted(indices[start:stop], j)
            if pos == stop - start or indices[start + pos] != j:
                break
        total += bpr_step(P[u], Q[i], Q[j], bias, i, j, lr, reg, use_bias)
    return total / n


@numba.njit(cache=True, inline="always")
def _contains(indices, start, stop, j):  # pragma: no cover - jit
    """Whether the sorted ``indices[start:stop]`` holds ``j`` (binary search, no slice)."""
    lo, hi = start, stop
    while lo < hi:
        mid = (lo + hi) >> 1
        if indices[mid] < j:
            lo = mid + 1
        else:
            hi = mid
    return lo < stop and indices[lo] == j


@numba.njit(cache=True, error_model="numpy")
def _bpr_epoch_batched(indptr, indices, users, P, Q, bias, lr, reg, use_bias, seed,
                       batch=256):  # pragma: no cover - jit
    """:func:`_bpr_epoch` with the same draws in the same order and the same steps.

    The triples are drawn ``batch`` at a time before their steps are taken. The draws do not
    depend on the parameters, so this changes no number; it lets the processor overlap the
    cache misses of many independent look-ups (the sampled rating, the user's item list, the
    binary search for the negative) instead of waiting for each in turn, and the rows a step
    needs are known ahead of it.
    """
    np.random.seed(seed)
    n_items = Q.shape[0]
    n = len(indices)
    us = np.empty(batch, dtype=np.int64)
    is_ = np.empty(batch, dtype=np.int64)
    js = np.empty(batch, dtype=np.int64)
    total = 0.0
    done = 0
    while done < n:
        size = min(batch, n - done)
        m = 0
        for _ in range(size):
            idx = np.random.randint(n)
            u = users[idx]
            start, stop = indptr[u], indptr[u + 1]
            if stop - start >= n_items:
                continue
            while True:
                j = np.random.randint(n_items)
                if not _contains(indices, start, stop, j):
                    break
            us[m], is_[m], js[m] = u, indices[idx], j
            m += 1
        for t in range(m):
            u, i, j = us[t], is_[t], js[t]
            total += bpr_step(P[u], Q[i], Q[j], bias, i, j, lr, reg, use_bias)
        done += size
    return total / n


#: Groups of users and of items for the stratified parallel epoch (fixed, so the result does
#: not depend on the number of threads); catalogues under ``_MIN_GROUP * _N_STRATA`` items
#: run as one stratum.
_N_STRATA = 16
_MIN_GROUP = 64


def _strata_plan(indptr: np.ndarray, indices: np.ndarray, users: np.ndarray, n_items: int,
                 n_strata: int, rng: np.random.Generator):
    """One epoch's random groups: users cut by equal rating counts, items by equal sizes.

    Returns ``(pairs, block_starts, item_members, member_starts)``: the ratings'
    ``(user, item)`` pairs sorted by block ``g_u * S + g_i`` (one row read per draw), each
    block's start, and the items of each group.
    """
    n_users = len(indptr) - 1
    perm_u = rng.permutation(n_users)
    counts = np.diff(indptr)[perm_u]
    g_u = np.empty(n_users, dtype=np.int64)
    g_u[perm_u] = np.minimum((np.cumsum(counts) - counts) * n_strata // max(len(users), 1),
                             n_strata - 1)
    item_members = rng.permutation(n_items).astype(np.int64)
    g_i = np.empty(n_items, dtype=np.int64)
    g_i[item_members] = np.arange(n_items) * n_strata // n_items
    member_starts = (np.arange(n_strata + 1) * n_items + n_strata - 1) // n_strata
    pairs, block_starts = _block_sort(g_u, g_i, users, indices, n_strata)
    return pairs, block_starts, item_members, member_starts.astype(np.int64)


@numba.njit(cache=True)
def _block_sort(g_u, g_i, users, indices, n_strata):  # pragma: no cover - jit
    """``(user, item)`` rows sorted by block ``g_u * S + g_i`` (a stable counting sort, O(n))."""
    n_blocks = n_strata * n_strata
    starts = np.zeros(n_blocks + 1, dtype=np.int64)
    for r in range(len(users)):
        starts[g_u[users[r]] * n_strata + g_i[indices[r]] + 1] += 1
    for b in range(n_blocks):
        starts[b + 1] += starts[b]
    fill = starts[:-1].copy()
    pairs = np.empty((len(users), 2), dtype=np.int32)
    for r in range(len(users)):
        b = g_u[users[r]] * n_strata + g_i[indices[r]]
        pairs[fill[b], 0] = users[r]
        pairs[fill[b], 1] = indices[r]
        fill[b] += 1
    return pairs, starts


# reassoc and contract: the step is inlined here, so these are the flags its float32 dot
# product and row updates compile under; without them the dot product's 64 additions run in
# a serial chain (no SIMD, no fused multiply-add), a third of the epoch at 100k interactions
@numba.njit(parallel=True, cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _bpr_epoch_strata(indptr, indices, users, P, Q, bias, lr, reg, use_bias, pairs,
                      block_starts, item_members, member_starts, n_strata, schedule,
                      seeds):  # pragma: no cover - jit
    r"""An epoch in strata: the blocks of a stratum share no user and no item, so they run on
    separate threads without locks, and the numbers do not depend on the thread count.

    Block :math:`(a, b)` (users of group :math:`a`, items of group :math:`b`) takes as many
    steps as it holds ratings; each step draws one of its ratings :math:`(u, i)` uniformly and
    a negative :math:`j` uniformly from item group :math:`b` outside :math:`u`'s items. Over
    the :math:`S` strata every rating is drawn once per epoch in expectation, as in
    :func:`_bpr_epoch`; and as the item groups are a fresh random partition into equal sizes
    each epoch, :math:`j` given :math:`(u, i)` is again uniform over the items :math:`u` has
    not interacted with. A user who holds every item of the group gets no step there.

    Each block draws from its own SplitMix64 stream seeded by ``seeds`` (:func:`_uniform_below`),
    and steps through :func:`_bpr_step_rows` on the float32 tables.
    """
    S = n_strata
    totals = np.zeros(S * S)
    for s_idx in range(len(schedule)):
        s = schedule[s_idx]
        for a in numba.prange(S):
            b = (a + s) % S
            blk = a * S + b
            state = np.empty(1, dtype=np.uint64)             # the block's own stream
            state[0] = np.uint64(seeds[blk])
            lo, size = block_starts[blk], block_starts[blk + 1] - block_starts[blk]
            g_lo, g_size = member_starts[b], member_starts[b + 1] - member_starts[b]
            total = 0.0
            for _ in range(size):
                row = lo + _uniform_below(state, size)
                u = np.int64(pairs[row, 0])
                i = np.int64(pairs[row, 1])
                start, stop = indptr[u], indptr[u + 1]
                tries = 0
                while True:
                    j = item_members[g_lo + _uniform_below(state, g_size)]
                    if not _contains(indices, start, stop, j):
                        break
                    tries += 1
                    if tries == 32:                    # is the group all positives?
                        held = 0
                        for m in range(g_lo, g_lo + g_size):
                            if _contains(indices, start, stop, item_members[m]):
                                held += 1
                        if held == g_size:
                            j = -1
                            break
                if j >= 0:
                    total += _bpr_step_rows(P, Q, bias, u, i, j, lr, reg, use_bias)
            totals[blk] = total
    grand = 0.0
    for blk in range(S * S):
        grand += totals[blk]
    return grand / len(indices)
