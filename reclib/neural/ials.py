r"""Implicit ALS in PyTorch: every row's conjugate-gradient solve of a sweep at once.

The model, the objective, the confidences, the regularisers and the initialisation are
:class:`reclib.models.ImplicitALS`'s with ``solver="cg"`` (Hu, Koren and Volinsky, 2008;
Takács, Pilászy and Tikk, 2011); only the way a sweep is computed differs. The numba model
runs one CG solve per row on a thread; here one CG runs on *all* the rows of a side
together, as a handful of tensor operations, so that the same code fills a GPU.

With the item factors :math:`Y` fixed, user :math:`u`'s factor solves
:math:`A_u x_u = b_u` with

.. math::

    A_u = Y^\top Y + Y^\top (C^u - I) Y + \lambda_u I, \qquad
    b_u = Y^\top C^u p(u) = \sum_{i \in \mathcal{I}(u)} c_{ui}\, y_i ,

and CG needs :math:`A_u v_u` for one vector :math:`v_u` per user. Stacked as the rows of a
matrix :math:`V`, these products are

.. math::

    (A v)_u = (V\, Y^\top Y)_u + \lambda_u v_u
        + \sum_{i \in \mathcal{I}(u)} (c_{ui} - 1)\, (y_i^\top v_u)\, y_i ,

a dense :math:`|U| \times f` by :math:`f \times f` product (the Gram matrix is computed once
per half-sweep) plus a *sparse part* over the nonzeros: gather the item row :math:`y_i` and
the user row :math:`v_u` of each nonzero, take their dot products :math:`d_n`, scale them by
:math:`c_n - 1` and sum the scaled item rows back into their users, a CSR sparse-times-dense
product (:func:`torch.sparse.mm`; ``index_add_`` on Apple's MPS). The nonzeros are processed
in blocks whose gathered rows fit :data:`_GATHER_BUDGET`, so memory stays bounded at any
size. The start residual :math:`r = b - A x` takes one such pass with the weights
:math:`c_n - (c_n - 1) d_n`, each CG step one more; the step sizes, the residuals and the
search directions are per-row vectors, so a row whose residual has vanished
(:math:`\lVert r \rVert^2 < 10^{-20}`) simply stops, as in the numba kernel. The items are
updated the same way with :math:`C^\top`.

Besides the factors and one :math:`n \times f` matrix per CG vector (:math:`r, p, Ap`) of the
side being solved, the device holds, per nonzero and side, its row and column (int64) and
its confidence, and for the item side two more numbers (the carried dot products of the
objective and those of the current step).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import scipy.sparse as sp
import torch

from .._progress import tqdm
from .._random import scaled_normal
from .._validation import check_choice, check_random_state
from ..core.ranking import topk
from ..interactions import Interactions
from ..models.base import Recommender
from ..models.implicit_als import check_ials_params, ials_confidence, ials_regularisers
from ._train import limited_threads, resolve_device
from .estimator import _SCORE_BUDGET

#: Bytes of gathered rows one block of nonzeros may hold, by device type. A block of
#: :math:`m` nonzeros gathers two :math:`m \times f` matrices (the other side's row and the
#: row's own current vector of each nonzero; their elementwise product, inside the dot
#: products, is a third of that size), so ``m = budget // (2 f itemsize)``: 2,048 nonzeros
#: of 64 float32 factors on the CPU (1 MiB), where blocks that stay in the cache ran several
#: times faster than one block of 200,000 nonzeros; 256 MiB on a GPU, where fewer, larger
#: kernels win. Read at fit time, so a test can shrink it.
_GATHER_BUDGET = {"cpu": 2**20, "cuda": 2**28, "mps": 2**26}
#: How the scaled rows of a block are summed back into their rows: a CSR product, or
#: ``index_add_`` where the sparse kernels are missing (MPS).
_ACCUMULATE = {"cpu": "csr", "cuda": "csr", "mps": "index_add"}
#: A row's CG stops once :math:`\lVert r \rVert^2` falls below this (the numba kernel's rule).
_RESIDUAL_FLOOR = 1e-20
_DTYPES = {"float32": (torch.float32, np.float32), "float64": (torch.float64, np.float64)}


class _Nonzeros:
    """One side of the training matrix on the device: the nonzeros of its rows, in blocks.

    ``M`` holds :math:`c - 1` on its stored entries (sorted CSR). Every nonzero ``n`` has its
    row ``rows[n]``, its column ``cols[n]`` and ``extra[n]`` :math:`= c_n - 1`; a block is a
    range ``[n0, n1)`` of nonzeros with the rows ``[lo, hi)`` it touches (the first and the
    last may go on in the next block) and the CSR row offsets of that range.
    """

    def __init__(self, M: sp.csr_matrix, block_nnz: int, device: torch.device,
                 dtype: torch.dtype, accumulate: str):
        indptr = M.indptr.astype(np.int64)
        rows = np.repeat(np.arange(M.shape[0], dtype=np.int64), np.diff(indptr))
        self.nnz = len(rows)
        self.rows = torch.as_tensor(rows, device=device)
        self.cols = torch.as_tensor(M.indices.astype(np.int64), device=device)
        self.extra = torch.as_tensor(M.data, device=device).to(dtype)
        self.conf = self.extra + 1.0                                   # c_n
        self.csr = accumulate == "csr"
        self.local = torch.arange(min(block_nnz, self.nnz), device=device)
        self.blocks = []
        for n0 in range(0, self.nnz, block_nnz):
            n1 = min(n0 + block_nnz, self.nnz)
            lo, hi = int(rows[n0]), int(rows[n1 - 1]) + 1
            crow = np.clip(indptr[lo:hi + 1], n0, n1) - n0
            self.blocks.append((n0, n1, lo, hi, torch.as_tensor(crow, device=device)))

    def add_sparse_part(self, B: torch.Tensor, V: torch.Tensor, out: torch.Tensor,
                        start: bool, record: torch.Tensor | None = None) -> None:
        r"""``out[r] += sum_n w_n B[cols[n]]`` over the nonzeros ``n`` of each row ``r``.

        With :math:`d_n = b_{c_n}^\top v_{r_n}`, the weight is :math:`w_n = (c_n - 1) d_n`
        (the sparse part of :math:`A v`) or, when ``start``, :math:`w_n = c_n - (c_n - 1) d_n`
        (the sparse part of :math:`b - A v`). The :math:`d_n` are written to ``record``.
        """
        for n0, n1, lo, hi, crow in self.blocks:
            G = B.index_select(0, self.cols[n0:n1])                 # (m, f) gathered rows
            d = torch.linalg.vecdot(G, V.index_select(0, self.rows[n0:n1]))
            if record is not None:
                record[n0:n1] = d
            if start:
                w = torch.addcmul(self.conf[n0:n1], self.extra[n0:n1], d, value=-1.0)
            else:
                w = d.mul_(self.extra[n0:n1])
            if self.csr:
                S = torch.sparse_csr_tensor(crow, self.local[:n1 - n0], w, (hi - lo, n1 - n0),
                                            check_invariants=False)
                out[lo:hi].add_(torch.sparse.mm(S, G))
            else:
                out.index_add_(0, self.rows[n0:n1], G.mul_(w[:, None]))


def _cg_half(A: torch.Tensor, B: torch.Tensor, gram: torch.Tensor, reg: torch.Tensor,
             nz: _Nonzeros, cg_steps: int, observed: bool) -> torch.Tensor:
    r"""``cg_steps`` warm-started CG steps on every row of ``A`` at once, in place.

    Row :math:`r` solves :math:`(G + B^\top (C^r - I) B + \lambda_r I)\, a_r =
    B^\top C^r p(r)` with :math:`G` = ``gram`` :math:`= B^\top B`, from its current value.
    Returns the row terms of :math:`J` in float64, a 0-d tensor on the device:
    :math:`\sum_r \lambda_r \lVert a_r \rVert^2`, plus, when ``observed``, the observed terms
    :math:`\sum_n (c_n - 1) s_n^2 + c_n (1 - 2 s_n)` with :math:`s_n = b_{c_n}^\top a_{r_n}`,
    carried through the steps as the numba kernel does (:math:`s_n \leftarrow s_n +
    \text{step}_r\, b_{c_n}^\top p_r`), so they cost no extra pass over the nonzeros.
    """
    with warnings.catch_warnings():        # torch warns that its CSR tensors are "beta"
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return _batched_cg(A, B, gram, reg, nz, cg_steps, observed)


def _batched_cg(A, B, gram, reg, nz, cg_steps, observed):
    """:func:`_cg_half` itself: per-row step sizes, residuals and directions as vectors."""
    reg_col = reg[:, None]
    x = A
    r = torch.mm(x, gram).addcmul_(reg_col, x).neg_()
    s = torch.empty(nz.nnz, dtype=A.dtype, device=A.device) if observed else None
    q = torch.empty_like(s) if observed else None
    nz.add_sparse_part(B, x, r, start=True, record=s)                 # r = b - A x
    p = r.clone()
    Ap = torch.empty_like(x)
    rs_old = torch.linalg.vecdot(r, r)
    active = torch.ones_like(rs_old, dtype=torch.bool)
    for _ in range(cg_steps):
        active &= rs_old >= _RESIDUAL_FLOOR
        torch.mm(p, gram, out=Ap).addcmul_(reg_col, p)
        nz.add_sparse_part(B, p, Ap, start=False, record=q)           # Ap = A p
        p_ap = torch.linalg.vecdot(p, Ap)
        step = torch.where(active, rs_old / torch.where(active, p_ap, 1.0), 0.0)
        x.addcmul_(step[:, None], p)
        r.addcmul_(step[:, None], Ap, value=-1.0)
        if observed:
            s.addcmul_(step.index_select(0, nz.rows), q)
        rs_new = torch.linalg.vecdot(r, r)
        beta = torch.where(active, rs_new / torch.where(active, rs_old, 1.0), 0.0)
        p.mul_(beta[:, None]).add_(r)
        rs_old = rs_new
    terms = torch.dot(reg.double(), torch.linalg.vecdot(x, x).double())
    if observed:
        e, s = nz.extra.double(), s.double()
        terms = terms + (e * s * s + (e + 1.0) * (1.0 - 2.0 * s)).sum()
    return terms


class TorchImplicitALS(Recommender):
    r"""Implicit ALS with conjugate gradient in PyTorch, all rows of a sweep at once.

    The model of :class:`reclib.models.ImplicitALS` (its docstring has the derivation):
    confidences :math:`c_{ui} = 1 + \alpha\, r_{ui}` (``confidence="linear"``) or
    :math:`1 + \alpha \log(1 + r_{ui} / \epsilon)` (``"log"``), preferences
    :math:`p_{ui} = 1` on the observed entries and :math:`0` elsewhere, and the objective

    .. math::

        J = \sum_{u,i} c_{ui}\,(p_{ui} - x_u^\top y_i)^2
            + \sum_u \lambda_u \lVert x_u \rVert^2 + \sum_i \lambda_i \lVert y_i \rVert^2 ,

    with :math:`\lambda_u = \lambda (\sum_i c_{ui})^{\nu}` (``reg_basis="confidence"``) or
    :math:`\lambda\, n_u^{\nu}` (``"count"``), and likewise for items. A sweep updates the
    users, then the items, each by ``cg_steps`` conjugate-gradient steps on

    .. math::

        \big(Y^\top Y + Y^\top (C^u - I) Y + \lambda_u I\big)\, x_u = Y^\top C^u p(u),

    warm-started from the previous factors. Every row's CG runs at once: the products of
    all the rows' matrices with their search directions are one dense product with
    :math:`Y^\top Y` plus one blocked pass over the nonzeros (:mod:`reclib.neural.ials`), so
    the same code runs on a CPU or a GPU. Same hyper-parameters, same seed: the same starting
    factors and, up to the order of floating-point sums, the same factors after every sweep
    as ``ImplicitALS(solver="cg")``.

    Parameters
    ----------
    n_factors : int
        :math:`f`.
    reg : float
        :math:`\lambda \ge 0`.
    alpha : float
        :math:`\alpha \ge 0`.
    confidence : {"linear", "log"}
    epsilon : float
        :math:`\epsilon > 0` of the log confidence.
    binary : bool
        Treat every interaction as :math:`r_{ui} = 1` (default) or use the stored ratings.
    reg_exponent : float
        :math:`\nu \in [0, 1]`.
    n_epochs : int
        Sweeps (users then items).
    solver : {"cg"}
        Only conjugate gradient; for the exact solve use :class:`reclib.models.ImplicitALS`.
    cg_steps : int
        CG steps per row and sweep.
    init_std : float
        Factors start as :math:`\mathcal{N}(0, \text{init\_std}^2 / f)`, drawn as
        :class:`~reclib.models.ImplicitALS` draws them.
    random_state : int, optional
    verbose : bool
        Show a progress bar over sweeps.
    reg_basis : {"confidence", "count"}
    device : {"auto", "cpu", "cuda", "mps"}
        Where to train and score (:func:`~reclib.neural.resolve_device`).
    dtype : {"float32", "float64"}
        Floating type of training (float64 is for checks; MPS has none). Scores are
        computed in float64 (float32 on MPS).

    Attributes
    ----------
    user_factors_ : ndarray of shape (n_users, n_factors)
    item_factors_ : ndarray of shape (n_items, n_factors)
        In ``dtype``.
    loss_history_ : ndarray
        :math:`J` after each sweep.
    epoch_seconds_ : ndarray
        Wall-clock seconds of each sweep (the objective and the divergence check included).

    Examples
    --------
    >>> import reclib
    >>> from reclib.datasets.synthetic import synthetic_interactions
    >>> from reclib.neural import TorchImplicitALS
    >>> train = reclib.Interactions.from_dataframe(synthetic_interactions(200, 50, 2000))
    >>> model = TorchImplicitALS(n_factors=16, n_epochs=5, device="cpu", random_state=0)
    >>> items, scores = model.fit(train).recommend(train.user_ids[:2], k=5)
    >>> items.shape
    (2, 5)
    >>> bool(model.loss_history_[-1] < model.loss_history_[0])
    True
    """

    def __init__(self, n_factors: int = 64, reg: float = 0.03, alpha: float = 10.0,
                 confidence: str = "linear", epsilon: float = 1.0, binary: bool = True,
                 reg_exponent: float = 1.0, n_epochs: int = 15, solver: str = "cg",
                 cg_steps: int = 3, init_std: float = 0.1, random_state=None,
                 verbose: bool = False, reg_basis: str = "confidence", device: str = "auto",
                 dtype: str = "float32"):
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
        self.device = device
        self.dtype = dtype

    def _validate_params(self) -> None:
        if self.solver == "exact":
            raise ValueError("solver == 'exact' is not supported by TorchImplicitALS, which "
                             "solves by conjugate gradient only; use solver='cg', or "
                             "reclib.models.ImplicitALS(solver='exact')")
        check_ials_params(self, solvers={"cg"})
        check_choice("device", self.device, {"auto", "cpu", "cuda", "mps"})
        check_choice("dtype", self.dtype, set(_DTYPES))

    # ------------------------------------------------------------------ fitting
    def _fit(self, data: Interactions) -> None:
        device = resolve_device(self.device)
        if device.type == "mps" and self.dtype == "float64":
            raise ValueError("dtype == 'float64' is not supported on device 'mps' (Apple's "
                             "MPS backend has no float64); use dtype='float32'")
        dtype, np_dtype = _DTYPES[self.dtype]
        C = ials_confidence(self.seen_ if self.binary else data.to_csr(binary=False),
                            self.alpha, self.confidence, self.epsilon, self.binary, np_dtype)
        Ct = C.T.tocsr()
        Ct.sort_indices()
        n_users, n_items = C.shape
        f = self.n_factors
        reg_u, reg_i = ials_regularisers(C, Ct, self.reg, self.reg_exponent, self.reg_basis,
                                         np_dtype)
        rng = check_random_state(self.random_state)
        scale = self.init_std / np.sqrt(f)
        X0 = scaled_normal(rng, n_users, f, scale, dtype=np_dtype)    # ImplicitALS's draws
        Y0 = scaled_normal(rng, n_items, f, scale, dtype=np_dtype)
        itemsize = torch.empty((), dtype=dtype).element_size()
        block_nnz = max(1, _GATHER_BUDGET[device.type] // (2 * f * itemsize))
        accumulate = _ACCUMULATE[device.type]
        history, seconds = [], []
        with limited_threads():
            X = torch.as_tensor(X0, device=device)
            Y = torch.as_tensor(Y0, device=device)
            del X0, Y0
            by_user = _Nonzeros(C, block_nnz, device, dtype, accumulate)
            by_item = _Nonzeros(Ct, block_nnz, device, dtype, accumulate)
            reg_u = torch.as_tensor(reg_u, device=device)
            reg_i = torch.as_tensor(reg_i, device=device)
            gram_y = Y.T @ Y
            for sweep in tqdm(range(self.n_epochs), desc=type(self).__name__,
                              disable=not self.verbose):
                start = time.perf_counter()
                terms_u = _cg_half(X, Y, gram_y, reg_u, by_user, self.cg_steps, False)
                gram_x = X.T @ X
                terms_i = _cg_half(Y, X, gram_x, reg_i, by_item, self.cg_steps, True)
                gram_y = Y.T @ Y
                loss = (gram_x.double() * gram_y.double()).sum() + terms_u + terms_i
                finite = torch.isfinite(X).all() & torch.isfinite(Y).all()
                loss, finite = torch.stack([loss, finite.double()]).tolist()  # one sync
                seconds.append(time.perf_counter() - start)
                if not (np.isfinite(loss) and finite):
                    raise FloatingPointError(
                        f"{type(self).__name__} diverged at sweep {sweep + 1} (loss {loss}); "
                        f"raise reg (now {self.reg}) or lower alpha (now {self.alpha})")
                history.append(loss)
                self._after_sweep(sweep, X, Y)
            self.user_factors_ = X.cpu().numpy()
            self.item_factors_ = Y.cpu().numpy()
        self.loss_history_ = np.array(history)
        self.epoch_seconds_ = np.array(seconds)

    def _after_sweep(self, sweep: int, user_factors: torch.Tensor,
                     item_factors: torch.Tensor) -> None:
        """Called after each sweep with the factors on the device (default: nothing).

        A hook for monitoring, outside the timed part of the sweep: the scaling benchmark
        validates every sweep through it. It must not modify the factors.
        """

    # ------------------------------------------------------------------ scoring
    def _reset_lookups(self, user_map=None, item_map=None) -> None:
        super()._reset_lookups(user_map, item_map)
        self._scoring = None        # fit and load both start from fresh device factors

    def _scoring_factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The factors on the scoring device, in float64 (float32 on MPS), cached."""
        if getattr(self, "_scoring", None) is None:
            device = resolve_device(self.device)
            dtype = torch.float32 if device.type == "mps" else torch.float64
            self._scoring = tuple(torch.as_tensor(np.asarray(a), device=device).to(dtype)
                                  for a in (self.user_factors_, self.item_factors_))
        return self._scoring

    def _score_rows(self) -> int:
        return max(1, _SCORE_BUDGET // self.n_items)

    def _device_scores(self, users: np.ndarray) -> torch.Tensor:
        U, V = self._scoring_factors()
        rows = torch.as_tensor(np.asarray(users, dtype=np.int64), device=U.device)
        return U.index_select(0, rows) @ V.T

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        out = np.empty((len(users), self.n_items))
        step = self._score_rows()
        with torch.no_grad(), limited_threads():
            for b in range(0, len(users), step):
                out[b:b + step] = self._device_scores(users[b:b + step]).double().cpu().numpy()
        return out

    def _topk_block(self, rows: np.ndarray, k: int, exclude, candidates):
        """Top-k on the device through :func:`reclib.core.topk`; only the winners come back."""
        step = self._score_rows()
        idx = np.empty((len(rows), k), dtype=np.int64)
        vals = np.empty((len(rows), k))
        with torch.no_grad(), limited_threads():
            for b in range(0, len(rows), step):
                scores = self._device_scores(rows[b:b + step])
                i, v = topk(scores, k, exclude=None if exclude is None else exclude[b:b + step],
                            candidates=candidates, source=type(self).__name__)
                idx[b:b + len(scores)] = i.cpu().numpy()
                vals[b:b + len(scores)] = v.double().cpu().numpy()
        return idx, vals

    def _item_vectors(self):
        return self.item_factors_
