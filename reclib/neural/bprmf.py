r"""Matrix factorisation with the BPR loss in PyTorch, built to keep a device busy.

The model is :class:`reclib.models.BPR`'s (Rendle et al., 2009), the score
:math:`\hat x_{ui} = x_u^\top y_i + b_i` and, for a user :math:`u`, a positive :math:`i` and a
sampled negative :math:`j`, the loss of one triple

.. math::

    \ell_{uij} = -\ln \sigma(\hat x_{ui} - \hat x_{uj})
        + \lambda \left(\lVert x_u \rVert^2 + \lVert y_i \rVert^2 + \lVert y_j \rVert^2
        + b_i^2 + b_j^2\right),

averaged over a batch. What differs from the numba model is how it is trained, which is what
chapter 9 measures:

* the interactions live on the device as two index tensors; each epoch draws its permutation
  and its negatives there (``torch.randperm``/``torch.randint`` under a generator seeded from
  ``random_state``), so no batch is built in Python or copied from the host;
* a negative that is one of the user's positives is redrawn, a fixed ``3`` times without a
  sync: each triple draws ``4`` items uniformly, the first ``3`` are looked up by one
  ``searchsorted`` in the sorted keys :math:`u |I| + i` of the training pairs, and the
  negative is the first of them that is not a positive, else the fourth, exactly as if each
  hit were redrawn in turn; the chance that a positive survives is the user's density to
  the fourth power. A batch's triples are put in the order of their keys (their user, then
  their positive), which changes the step only by the order of its floating-point sums and
  makes the searches and the reads and writes of the user rows nearly sequential;
* the tables are ``nn.Embedding(sparse=True)``, so a step reads and writes only the rows of
  the batch, with :class:`torch.optim.SparseAdam` or the row-wise Adagrad of
  :class:`~reclib.neural.RowWiseAdagrad` (``optimizer``); the cost per interaction is then a
  few rows of :math:`f` floats and their optimiser state (:mod:`reclib.roofline`);
* with row-wise Adagrad in float32 on one process, the step is *fused*
  (:func:`fused_bpr_step`): the gradients come from their closed form instead of autograd
  and go straight into :func:`~reclib.neural._train.rowwise_adagrad_rows_`, with no sparse
  gradient tensor, no coalesce and no sync inside the epoch.

The gradients of the fused step, with :math:`m_k = \hat x_{u_k i_k} - \hat x_{u_k j_k}` and
:math:`d_k = \partial L / \partial m_k = -\sigma(-m_k) / B` for the batch mean :math:`L`,
are, for triple :math:`k`'s copies of its rows,

.. math::

    g_{x_u} = d_k (y_i - y_j) + \tfrac{2\lambda}{B} x_u, \quad
    g_{y_i} = d_k x_u + \tfrac{2\lambda}{B} y_i, \quad
    g_{y_j} = -d_k x_u + \tfrac{2\lambda}{B} y_j, \quad
    g_{b_i} = d_k + \tfrac{2\lambda}{B} b_i, \quad
    g_{b_j} = -d_k + \tfrac{2\lambda}{B} b_j ,

and a row's gradient is the sum of its copies' (autograd's, up to rounding). The update
is :func:`~reclib.neural._train.rowwise_adagrad_rows_`'s: a row that occurs once in the
batch gets exactly :class:`~reclib.neural.RowWiseAdagrad`'s step; a row that occurs more
than once (a popular item) takes the same step direction and denominator, but its
accumulator grows by the sum of its copies' squared gradient norms, not by the squared norm
of their sum.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._training import check_finite_loss
from .._validation import check_bool, check_float, check_int
from ..interactions import Interactions
from ._train import Trainer, _world, rowwise_adagrad_rows_
from .estimator import NeuralRecommender

#: Redraws of a negative that hit a positive (a fixed count: no host sync on a GPU).
_REDRAWS = 3
#: :math:`\epsilon` of the row-wise Adagrad (``RowWiseAdagrad``'s default).
_EPS = 1e-8


def _first_negative(keys: torch.Tensor, base: torch.Tensor, draws: torch.Tensor,
                    compact: bool) -> torch.Tensor:
    """For each triple, the first of its draws ``0..R`` that is not a positive (else draw R).

    ``keys`` are the sorted keys :math:`u |I| + i` of the positive pairs, ``base`` is
    :math:`u |I|` per triple and ``draws`` is (B, R + 1). Both ways choose the same negatives.
    With ``compact=False`` (on an accelerator) all B R keys are looked up at once, so nothing
    waits on the device; a triple's look-ups are adjacent in one search. With
    ``compact=True`` (on the CPU, where reading a count costs nothing) draw ``r + 1`` is
    looked up only for the triples whose draw ``r`` hit a positive (few: the hit rate is
    about the density), so about a third of the searches.
    """
    last = len(keys) - 1
    if not compact:
        query = (base[:, None] + draws[:, :_REDRAWS]).view(-1)
        found = keys.index_select(0, torch.searchsorted(keys, query).clamp_(max=last))
        ok = torch.ones_like(draws, dtype=torch.uint8)
        ok[:, :_REDRAWS] = (found != query).view(-1, _REDRAWS)
        return draws.gather(1, ok.argmax(dim=1, keepdim=True)).squeeze(1)
    negatives = draws[:, 0].clone()
    pending = torch.arange(len(draws), device=draws.device)   # triples whose draw r is a hit
    for r in range(_REDRAWS):
        query = base.index_select(0, pending) + draws[pending, r]
        found = keys.index_select(0, torch.searchsorted(keys, query).clamp_(max=last))
        pending = pending[found == query]
        if len(pending) == 0:
            break
        negatives[pending] = draws[pending, r + 1]
    return negatives


class BPRMFModule(nn.Module):
    """User and item tables (and item biases); ``forward`` scores pairs, ``score_all`` all items."""

    def __init__(self, n_users: int, n_items: int, n_factors: int, sparse: bool,
                 item_bias: bool, init_std: float):
        super().__init__()
        self.user = nn.Embedding(n_users, n_factors, sparse=sparse)
        self.item = nn.Embedding(n_items, n_factors, sparse=sparse)
        std = init_std / np.sqrt(n_factors)
        nn.init.normal_(self.user.weight, std=std)
        nn.init.normal_(self.item.weight, std=std)
        self.bias = nn.Embedding(n_items, 1, sparse=sparse) if item_bias else None
        if self.bias is not None:
            nn.init.zeros_(self.bias.weight)

    def _item_bias(self, items: torch.Tensor) -> torch.Tensor:
        return 0.0 if self.bias is None else self.bias(items).squeeze(-1)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        # users (B,), items (B, c) -> (B, c)
        scores = (self.item(items) @ self.user(users)[:, :, None]).squeeze(-1)
        return scores + self._item_bias(items)

    def score_all(self, users: torch.Tensor) -> torch.Tensor:
        scores = self.user(users) @ self.item.weight.T
        return scores if self.bias is None else scores + self.bias.weight.T

    def triple_loss(self, users, positives, negatives, reg: float) -> torch.Tensor:
        """Mean of :math:`\\ell_{uij}` over a batch of triples (see the module docstring)."""
        x_u, y_i, y_j = self.user(users), self.item(positives), self.item(negatives)
        b_i, b_j = self._item_bias(positives), self._item_bias(negatives)
        margin = (x_u * (y_i - y_j)).sum(dim=1) + b_i - b_j
        loss = F.softplus(-margin).mean()       # -ln sigma(m) = softplus(-m), stable
        if reg:
            norms = x_u.pow(2).sum(1) + y_i.pow(2).sum(1) + y_j.pow(2).sum(1)
            if self.bias is not None:
                norms = norms + b_i.pow(2) + b_j.pow(2)
            loss = loss + reg * norms.mean()
        return loss


@torch.no_grad()
def fused_bpr_step(module: BPRMFModule, state: dict, users: torch.Tensor,
                   positives: torch.Tensor, negatives: torch.Tensor, lr: float, reg: float,
                   eps: float = _EPS) -> torch.Tensor:
    """One row-wise Adagrad step on a batch of triples without autograd; the batch's loss.

    The gradients are the closed form of the module docstring and the update is
    :func:`~reclib.neural._train.rowwise_adagrad_rows_` on each table (users, items, item
    biases), the item table's rows being the positives followed by the negatives. ``state``
    holds the accumulators (``"user"``, ``"item"``, ``"bias"``: one number per row, created
    as zeros on the first call) and reusable buffers; pass the same dict to every step of a
    fit. The returned loss is :meth:`BPRMFModule.triple_loss`'s before the step, a 0-d tensor
    on the device (reading it is left to the caller, so the step never waits).
    """
    user_w, item_w = module.user.weight, module.item.weight
    bias_w = None if module.bias is None else module.bias.weight
    if "user" not in state:
        state["user"] = user_w.new_zeros(user_w.shape[0])
        state["item"] = item_w.new_zeros(item_w.shape[0])
        state["bias"] = None if bias_w is None else bias_w.new_zeros(bias_w.shape[0])
    n, f = len(users), user_w.shape[1]
    buffers = state.get("buffers")
    if buffers is None or buffers[0].shape[0] < n:
        # (n, f) user rows, (n, f) their gradient, (2n, f) item rows and their gradient:
        # reused, because a fresh large tensor per step costs page faults on the CPU
        buffers = tuple(user_w.new_empty((k * n, f)) for k in (1, 1, 2, 2))
        state["buffers"] = buffers
    x, g_x, y, g_y = (b[:k * n] for b, k in zip(buffers, (1, 1, 2, 2)))
    rows = torch.cat([positives, negatives])
    torch.index_select(user_w, 0, users, out=x)
    torch.index_select(item_w, 0, rows, out=y)
    y_i, y_j = y[:n], y[n:]
    torch.sub(y_i, y_j, out=g_x)                                   # y_i - y_j
    margin = torch.linalg.vecdot(x, g_x)
    b = None
    if bias_w is not None:
        b = bias_w.view(-1).index_select(0, rows)                   # (b_i, b_j)
        margin = margin + b[:n] - b[n:]
    loss = F.softplus(-margin).mean()
    c = 2.0 * reg / n
    if reg:
        norms = (torch.linalg.vector_norm(x, dim=1).square().sum()
                 + torch.linalg.vector_norm(y, dim=1).square().sum())
        if b is not None:
            norms = norms + b.square().sum()
        loss = loss + reg * norms / n
    d = torch.sigmoid(-margin).mul_(-1.0 / n)                      # dL / dm_k
    torch.mul(x, d[:, None], out=g_y[:n])                          # d_k x_u
    torch.neg(g_y[:n], out=g_y[n:])                                # -d_k x_u
    g_y.add_(y, alpha=c)
    g_x.mul_(d[:, None]).add_(x, alpha=c)                          # d_k (y_i - y_j) + c x_u
    rowwise_adagrad_rows_(user_w, state["user"], users, g_x, lr, eps)
    rowwise_adagrad_rows_(item_w, state["item"], rows, g_y, lr, eps)
    if b is not None:
        g_b = torch.cat([d, -d]).add_(b, alpha=c)
        rowwise_adagrad_rows_(bias_w, state["bias"], rows, g_b, lr, eps)
    return loss


class _FusedTrainer(Trainer):
    """The :class:`~reclib.neural.Trainer` with :func:`fused_bpr_step` as the step.

    Everything around the step is the trainer's (threads, seeding, the epoch loop,
    validation, early stopping). The batch losses are read once per epoch: a loss that is
    not finite stops the fit after the epoch in which it appeared, naming its first batch.
    Inside a process group (``torchrun``) it is the plain trainer, with autograd and
    :class:`~reclib.neural.RowWiseAdagrad`.
    """

    def __init__(self, config, reg: float):
        super().__init__(config, optimizer="rowwise_adagrad", precision="fp32")
        self.reg = reg

    def _loop(self, module, batches, loss_fn, validate, rng):
        if _world()[1] > 1:
            return super()._loop(module, batches, loss_fn, validate, rng)
        config, state = self.config, {}

        def run_epoch(epoch: int) -> float:
            module.train()
            losses = torch.stack([fused_bpr_step(module, state, *batch, lr=config.lr,
                                                 reg=self.reg) for batch in batches(rng)])
            total = float(losses.sum())                             # the epoch's one sync
            if not math.isfinite(total):
                bad = int(torch.nonzero(~torch.isfinite(losses))[0, 0])
                check_finite_loss(float(losses[bad]), epoch, bad + 1, config.lr)
            return total / len(losses)

        return self._run_epochs(module, run_epoch, validate)


class BPRMF(NeuralRecommender):
    r"""BPR matrix factorisation in PyTorch with sparse tables and on-device batches.

    See :mod:`reclib.neural.bprmf` for the loss. The defaults (row-wise Adagrad, ``lr=0.1``,
    ``reg=0.01``, 40 epochs) won a small grid on a validation split carved from the MovieLens
    100K training set (``benchmarks/tune_bprmf.py``; 40 epochs is the grid's edge and the score
    was still rising there). :class:`reclib.models.BPR` (numba, per-example SGD) is the CPU
    reference of the same model.

    With ``optimizer="rowwise_adagrad"`` and ``precision="fp32"`` a single process trains
    with the fused step (:func:`fused_bpr_step`; its update rule for rows that occur more
    than once in a batch is in the module docstring); a non-finite loss then stops the fit
    at the end of its epoch. Other settings, and data-parallel runs, train through autograd
    and the optimiser.

    Parameters
    ----------
    n_factors : int
        :math:`f`.
    n_epochs : int
    batch_size : int
        Triples per optimiser step.
    lr : float
        Learning rate of the optimiser.
    reg : float
        :math:`\lambda \ge 0` on the rows of each batch.
    sparse : bool
        Sparse gradients for the tables (``nn.Embedding(sparse=True)``); needs
        ``optimizer="sparse_adam"`` or ``"rowwise_adagrad"``.
    optimizer : {"rowwise_adagrad", "sparse_adam", "adam"}
        ``"adam"`` needs ``sparse=False``.
    precision : {"fp32", "bf16"}
        bfloat16 autocast of the forward pass (see :class:`~reclib.neural.Trainer`).
    item_bias : bool
        Learn :math:`b_i`.
    init_std : float
        Factors start as :math:`\mathcal{N}(0, \text{init\_std}^2 / f)`.
    weight_decay : float
        Adam's L2 penalty (``optimizer="adam"`` only).
    patience : int or None
        Early stopping on validation nDCG@10 (needs ``validation_fraction > 0``).
    validation_fraction : float
    device : {"auto", "cpu", "cuda", "mps"}
    random_state : int, optional
    verbose : bool
    """

    def __init__(self, n_factors: int = 64, n_epochs: int = 40, batch_size: int = 4096,
                 lr: float = 0.1, reg: float = 1e-2, sparse: bool = True,
                 optimizer: str = "rowwise_adagrad", precision: str = "fp32",
                 item_bias: bool = True, init_std: float = 0.1, weight_decay: float = 0.0,
                 patience: int | None = None, validation_fraction: float = 0.0,
                 device: str = "auto", random_state=None, verbose: bool = False):
        self.n_factors = n_factors
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.reg = reg
        self.sparse = sparse
        self.optimizer = optimizer
        self.precision = precision
        self.item_bias = item_bias
        self.init_std = init_std
        self.weight_decay = weight_decay
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _validate_params(self) -> None:
        super()._validate_params()
        check_int("n_factors", self.n_factors, minimum=1)
        check_bool("sparse", self.sparse)
        check_bool("item_bias", self.item_bias)
        check_float("init_std", self.init_std, strictly_positive=True)
        if self.sparse and self.optimizer == "adam":
            raise ValueError("sparse == True needs optimizer='sparse_adam' or "
                             "'rowwise_adagrad' (Adam takes no sparse gradients); or set "
                             "sparse=False")
        if not self.sparse and self.optimizer == "sparse_adam":
            raise ValueError("optimizer == 'sparse_adam' needs sparse=True")

    def _fused(self) -> bool:
        return self.optimizer == "rowwise_adagrad" and self.precision == "fp32"

    def trainer(self) -> Trainer:
        if self._fused():
            return _FusedTrainer(self.train_config(), self.reg)
        return super().trainer()

    def _build_module(self) -> nn.Module:
        return BPRMFModule(self.n_users, self.n_items, self.n_factors, self.sparse,
                           self.item_bias, self.init_std)

    def _device_pairs(self, train: Interactions):
        """Keys u |I| + i of ``train``'s pairs (in its order, and sorted) on the device, once."""
        cached = getattr(self, "_pairs_cache", None)
        if cached is not None and cached[0] is train:
            return cached[1]
        users = torch.as_tensor(train.users, dtype=torch.int64, device=self._device)
        items = torch.as_tensor(train.items, dtype=torch.int64, device=self._device)
        pairs = users * self.n_items + items
        self._pairs_cache = (train, (pairs, torch.sort(pairs).values))
        return self._pairs_cache[1]

    def _batches(self, train: Interactions, rng: np.random.Generator):
        pairs, keys = self._device_pairs(train)
        n, n_items = len(pairs), self.n_items
        generator = torch.Generator(device=self._device)
        generator.manual_seed(int(rng.integers(2**62)))
        order = torch.randperm(n, generator=generator, device=self._device)
        for start in range(0, n, self.batch_size):
            batch = pairs.index_select(0, order[start:start + self.batch_size]).sort().values
            u, i = batch // n_items, batch % n_items                    # in key order
            draws = torch.randint(n_items, (len(batch), _REDRAWS + 1), generator=generator,
                                  device=self._device)
            yield u, i, _first_negative(keys, u * n_items, draws,
                                        compact=draws.device.type == "cpu")

    def _batch_loss(self, module: nn.Module, batch) -> torch.Tensor:
        users, positives, negatives = batch
        return module.triple_loss(users, positives, negatives, self.reg)

    def _fit(self, data: Interactions) -> None:
        try:
            super()._fit(data)
        finally:
            self._pairs_cache = None

    def _item_vectors(self):
        return self._get_module().item.weight.detach().cpu().numpy()
