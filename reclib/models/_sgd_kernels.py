"""Numba kernels: one SGD epoch of (biased) matrix factorisation and of SVD++.

Each loop reads like the update rules in the docstrings of
:class:`~reclib.models.BiasedMF` and :class:`~reclib.models.SVDpp`; the arrays are updated
in place. The visiting order is drawn by the caller (with its ``random_state``), so the
kernels themselves are deterministic.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def mf_epoch(users, items, ratings, order, mean, user_bias, item_bias, P, Q,
             lr, reg, reg_bias, biased):  # pragma: no cover - jit
    """One pass over the ratings in ``order``: a stochastic gradient step per rating."""
    n_factors = P.shape[1]
    for n in order:
        u, i = users[n], items[n]
        p_u, q_i = P[u], Q[i]  # row views, updated in place
        dot = 0.0
        for f in range(n_factors):
            dot += p_u[f] * q_i[f]
        if biased:
            e = ratings[n] - (mean + user_bias[u] + item_bias[i] + dot)
            user_bias[u] += lr * (e - reg_bias * user_bias[u])
            item_bias[i] += lr * (e - reg_bias * item_bias[i])
        else:
            e = ratings[n] - dot
        for f in range(n_factors):
            p, q = p_u[f], q_i[f]  # both steps use the values before this rating
            p_u[f] += lr * (e * q - reg * p)
            q_i[f] += lr * (e * p - reg * q)


@numba.njit(cache=True)
def mf_loss(users, items, ratings, mean, user_bias, item_bias, P, Q, reg, reg_bias,
            biased):  # pragma: no cover - jit
    """The objective J of ``_factor_base.mf_objective`` in one pass (no temporaries)."""
    total = 0.0
    n_factors = P.shape[1]
    for n in range(len(users)):
        u, i = users[n], items[n]
        dot, norms = 0.0, 0.0
        for f in range(n_factors):
            dot += P[u, f] * Q[i, f]
            norms += P[u, f] * P[u, f] + Q[i, f] * Q[i, f]
        if biased:
            e = ratings[n] - (mean + user_bias[u] + item_bias[i] + dot)
            total += reg_bias * (user_bias[u] ** 2 + item_bias[i] ** 2)
        else:
            e = ratings[n] - dot
        total += e * e + reg * norms
    return 0.5 * total


@numba.njit(cache=True)
def svdpp_epoch(indptr, indices, order, block_starts, users, items, ratings, mean,
                user_bias, item_bias, P, Q, Y, lr, reg, reg_bias):  # pragma: no cover - jit
    """One SVD++ pass, visiting the ratings of one user after another.

    ``order[block_starts[b]:block_starts[b + 1]]`` are the ratings of one user (shuffled);
    ``indptr``/``indices`` is the CSR of the implicit sets :math:`N(u)`.

    Per rating, Koren's update moves every :math:`y_j, j \\in N(u)`, by the same vector
    ``lr * e * |N(u)|^-1/2 * q_i`` and shrinks it by ``(1 - lr * reg)``. Within a user's
    block every :math:`y_j` therefore ends as ``decay * y_j + shift`` with a shift and decay
    shared by all :math:`j`, and the implicit sum :math:`z_u = |N(u)|^{-1/2}\\sum_j y_j`
    follows ``z += lr * (e * q_i - reg * z)``. Keeping ``z``, ``shift`` and ``decay`` up to
    date costs O(k) per rating, and the :math:`y_j` are written once per user in
    O(|N(u)| k): the same numbers as the per-rating algorithm, at the cost of plain MF.
    """
    n_factors = P.shape[1]
    z = np.empty(n_factors)
    shift = np.empty(n_factors)
    for b in range(len(block_starts) - 1):
        start, stop = block_starts[b], block_starts[b + 1]
        u = users[order[start]]
        implicit = indices[indptr[u]:indptr[u + 1]]
        norm = 1.0 / np.sqrt(max(len(implicit), 1))
        for f in range(n_factors):
            z[f] = 0.0
            shift[f] = 0.0
        for j in implicit:
            for f in range(n_factors):
                z[f] += Y[j, f]
        for f in range(n_factors):
            z[f] *= norm
        decay = 1.0
        for n in order[start:stop]:
            i = items[n]
            dot = 0.0
            for f in range(n_factors):
                dot += Q[i, f] * (P[u, f] + z[f])
            e = ratings[n] - (mean + user_bias[u] + item_bias[i] + dot)
            user_bias[u] += lr * (e - reg_bias * user_bias[u])
            item_bias[i] += lr * (e - reg_bias * item_bias[i])
            for f in range(n_factors):
                p, q, zf = P[u, f], Q[i, f], z[f]
                P[u, f] += lr * (e * q - reg * p)
                Q[i, f] += lr * (e * (p + zf) - reg * q)
                z[f] += lr * (e * q - reg * zf)
                shift[f] = (1.0 - lr * reg) * shift[f] + lr * e * norm * q
            decay *= 1.0 - lr * reg
        for j in implicit:
            for f in range(n_factors):
                Y[j, f] = decay * Y[j, f] + shift[f]


@numba.njit(cache=True)
def svdpp_loss(indptr, indices, values, implicit_indptr, implicit_indices, mean, user_bias,
               item_bias, P, Q, Y, reg, reg_bias):  # pragma: no cover - jit
    """The SVD++ objective J (``svdpp.svdpp_objective``) from the users x items rating CSR."""
    n_factors = P.shape[1]
    z = np.empty(n_factors)
    total = 0.0
    for u in range(len(indptr) - 1):
        implicit = implicit_indices[implicit_indptr[u]:implicit_indptr[u + 1]]
        norm = 1.0 / np.sqrt(max(len(implicit), 1))
        z[:] = 0.0
        y_norms = 0.0
        for j in implicit:
            for f in range(n_factors):
                z[f] += Y[j, f]
                y_norms += Y[j, f] * Y[j, f]
        p_norm = 0.0
        for f in range(n_factors):
            z[f] = P[u, f] + norm * z[f]  # p_u + z_u
            p_norm += P[u, f] * P[u, f]
        for n in range(indptr[u], indptr[u + 1]):
            i = indices[n]
            dot, q_norm = 0.0, 0.0
            for f in range(n_factors):
                dot += Q[i, f] * z[f]
                q_norm += Q[i, f] * Q[i, f]
            e = values[n] - (mean + user_bias[u] + item_bias[i] + dot)
            total += (e * e + reg * (p_norm + q_norm + y_norms)
                      + reg_bias * (user_bias[u] ** 2 + item_bias[i] ** 2))
    return 0.5 * total


@numba.njit(cache=True)
def als_rows(indptr, indices, targets, design, reg_diag):  # pragma: no cover - jit
    """Compiled :func:`reclib.models._factor_base.als_solve_rows` (same normal equations).

    Row ``r`` accumulates :math:`A = X_r^\\top X_r + n_r \\Lambda` and :math:`b = X_r^\\top y_r`
    straight from the CSR arrays, without gathering :math:`X_r`, then solves :math:`A w_r = b`.
    """
    n_rows, d = len(indptr) - 1, design.shape[1]
    W = np.zeros((n_rows, d))
    A = np.empty((d, d))
    b = np.empty(d)
    for r in range(n_rows):
        start, stop = indptr[r], indptr[r + 1]
        if start == stop:
            continue
        A[:] = 0.0
        b[:] = 0.0
        for n in range(start, stop):
            x = design[indices[n]]
            y = targets[n]
            for a in range(d):
                b[a] += y * x[a]
                for c in range(a + 1):
                    A[a, c] += x[a] * x[c]
        for a in range(d):
            A[a, a] += (stop - start) * reg_diag[a]
            for c in range(a):
                A[c, a] = A[a, c]
        W[r] = np.linalg.solve(A, b)
    return W


@numba.njit(cache=True, fastmath=True, inline="always")
def _mf_steps(users, items, ratings, order, mean, user_bias, item_bias, P, Q, lr, reg,
              reg_bias, biased):  # pragma: no cover - jit
    """The loop of :func:`mf_epoch` over ``order``, compiled with SIMD-friendly sums."""
    n_factors = P.shape[1]
    for n in order:
        u, i = users[n], items[n]
        dot = 0.0
        for f in range(n_factors):
            dot += P[u, f] * Q[i, f]
        if biased:
            e = ratings[n] - (mean + user_bias[u] + item_bias[i] + dot)
            user_bias[u] += lr * (e - reg_bias * user_bias[u])
            item_bias[i] += lr * (e - reg_bias * item_bias[i])
        else:
            e = ratings[n] - dot
        for f in range(n_factors):
            p, q = P[u, f], Q[i, f]
            P[u, f] = p + lr * (e * q - reg * p)
            Q[i, f] = q + lr * (e * p - reg * q)


@numba.njit(parallel=True, cache=True, fastmath=True)
def mf_epoch_strata(users, items, ratings, order, block_starts, n_strata, schedule, mean,
                    user_bias, item_bias, P, Q, lr, reg, reg_bias, biased):  # pragma: no cover
    r"""One SGD pass in strata (Gemulla et al., 2011): the same steps as :func:`mf_epoch`.

    Users and items are cut into ``S = n_strata`` groups; block ``a * S + b`` holds the
    ratings of user group ``a`` and item group ``b``, at
    ``order[block_starts[a * S + b]:block_starts[a * S + b + 1]]`` (in the order to visit).
    For each ``s`` in ``schedule`` the ``S`` blocks ``(a, (a + s) mod S)`` share no user and no
    item, so they run on different threads without a lock and give exactly the numbers of
    running them one after another: the result is that of :func:`mf_epoch` on the
    concatenated order, whatever the number of threads. Each thread also works on
    :math:`1/S` of ``P`` and of ``Q``, which stays in cache far longer than all of them.
    """
    S = n_strata
    for s in schedule:
        for a in numba.prange(S):
            blk = a * S + (a + s) % S
            _mf_steps(users, items, ratings, order[block_starts[blk]:block_starts[blk + 1]],
                      mean, user_bias, item_bias, P, Q, lr, reg, reg_bias, biased)


@numba.njit(parallel=True, cache=True)
def shuffle_blocks(order, block_starts, seeds):  # pragma: no cover - jit
    """Shuffle each block ``order[block_starts[b]:block_starts[b + 1]]`` in place
    (Fisher-Yates), block ``b`` from its own seed, so the result does not depend on which
    thread takes which block."""
    for b in numba.prange(len(block_starts) - 1):
        np.random.seed(seeds[b])
        start = block_starts[b]
        for k in range(block_starts[b + 1] - start - 1, 0, -1):
            j = np.random.randint(0, k + 1)
            t = order[start + k]
            order[start + k] = order[start + j]
            order[start + j] = t


def block_records(users, items, ratings, order):
    """The ratings as one ``(n, 3)`` float64 array of ``(user, item, rating)`` rows, in
    ``order``: an SGD step then reads one row (one cache line) instead of three arrays at a
    random position. Indices below :math:`2^{53}` are exact in float64."""
    return np.column_stack([users[order].astype(np.float64), items[order].astype(np.float64),
                            np.asarray(ratings, dtype=np.float64)[order]])


@numba.njit(parallel=True, cache=True)
def shuffle_block_records(records, block_starts, seeds):  # pragma: no cover - jit
    """:func:`shuffle_blocks` on the rows of ``records``: the same swaps from the same seeds,
    so the rows end in the order the indices would."""
    for b in numba.prange(len(block_starts) - 1):
        np.random.seed(seeds[b])
        start = block_starts[b]
        for k in range(block_starts[b + 1] - start - 1, 0, -1):
            j = np.random.randint(0, k + 1)
            for c in range(3):
                t = records[start + k, c]
                records[start + k, c] = records[start + j, c]
                records[start + j, c] = t


@numba.njit(cache=True, fastmath=True, inline="always")
def _mf_record_steps(records, lo, hi, mean, user_bias, item_bias, P, Q, lr, reg, reg_bias,
                     biased):  # pragma: no cover - jit
    """:func:`_mf_steps` over rows ``lo:hi`` of ``records`` (read in sequence)."""
    n_factors = P.shape[1]
    for n in range(lo, hi):
        u, i, r = np.int64(records[n, 0]), np.int64(records[n, 1]), records[n, 2]
        dot = 0.0
        for f in range(n_factors):
            dot += P[u, f] * Q[i, f]
        if biased:
            e = r - (mean + user_bias[u] + item_bias[i] + dot)
            user_bias[u] += lr * (e - reg_bias * user_bias[u])
            item_bias[i] += lr * (e - reg_bias * item_bias[i])
        else:
            e = r - dot
        for f in range(n_factors):
            p, q = P[u, f], Q[i, f]
            P[u, f] = p + lr * (e * q - reg * p)
            Q[i, f] = q + lr * (e * p - reg * q)


@numba.njit(parallel=True, cache=True, fastmath=True)
def mf_epoch_records(records, block_starts, n_strata, schedule, mean, user_bias, item_bias,
                     P, Q, lr, reg, reg_bias, biased):  # pragma: no cover - jit
    """:func:`mf_epoch_strata` over :func:`block_records` rows: the same steps in the same
    order, the rows of a block read one after another."""
    S = n_strata
    for s in schedule:
        for a in numba.prange(S):
            blk = a * S + (a + s) % S
            _mf_record_steps(records, block_starts[blk], block_starts[blk + 1], mean,
                             user_bias, item_bias, P, Q, lr, reg, reg_bias, biased)


@numba.njit(cache=True, fastmath=True)
def _penalty_part(A, bias, counts, reg, reg_bias, biased, lo, hi):  # pragma: no cover - jit
    total = 0.0
    for r in range(lo, hi):
        norm = 0.0
        for f in range(A.shape[1]):
            norm += A[r, f] * A[r, f]
        total += counts[r] * reg * norm
        if biased:
            total += counts[r] * reg_bias * bias[r] ** 2
    return total


@numba.njit(parallel=True, cache=True, fastmath=True)
def mf_loss_chunked(users, items, ratings, mean, user_bias, item_bias, P, Q, reg, reg_bias,
                    biased, user_counts, item_counts):  # pragma: no cover - jit
    r""":func:`mf_loss` on all cores, from 64 fixed chunks summed in order (so the value does
    not depend on the number of threads).

    The penalty is gathered per row rather than per rating,
    :math:`\sum_u n_u (\lambda \lVert p_u \rVert^2 + \lambda_b b_u^2)` and likewise for
    items (``user_counts`` :math:`= n_u`, ``item_counts`` :math:`= n_i`), which leaves one dot
    product per rating.
    """
    n_chunks = 64
    n = len(users)
    parts = np.zeros(3 * n_chunks)
    n_factors = P.shape[1]
    for c in numba.prange(n_chunks):
        total = 0.0
        for m in range(c * n // n_chunks, (c + 1) * n // n_chunks):
            u, i = users[m], items[m]
            dot = 0.0
            for f in range(n_factors):
                dot += P[u, f] * Q[i, f]
            if biased:
                e = ratings[m] - (mean + user_bias[u] + item_bias[i] + dot)
            else:
                e = ratings[m] - dot
            total += e * e
        parts[c] = total
        parts[n_chunks + c] = _penalty_part(P, user_bias, user_counts, reg, reg_bias, biased,
                                            c * len(P) // n_chunks, (c + 1) * len(P) // n_chunks)
        parts[2 * n_chunks + c] = _penalty_part(Q, item_bias, item_counts, reg, reg_bias, biased,
                                                c * len(Q) // n_chunks,
                                                (c + 1) * len(Q) // n_chunks)
    total = 0.0
    for c in range(3 * n_chunks):
        total += parts[c]
    return 0.5 * total
