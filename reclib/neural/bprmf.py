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
* a negative that is one of the user's positives is redrawn, by a ``searchsorted`` in the
  sorted keys :math:`u |I| + i` of the training pairs, a fixed ``3`` times without a sync; the
  chance that one survives is the user's density to the fourth power;
* the tables are ``nn.Embedding(sparse=True)``, so a step reads and writes only the rows of
  the batch, with :class:`torch.optim.SparseAdam` or the row-wise Adagrad of
  :class:`~reclib.neural.RowWiseAdagrad` (``optimizer``); the cost per interaction is then a
  few rows of :math:`f` floats and their optimiser state (:mod:`reclib.roofline`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .._validation import check_bool, check_float, check_int
from ..interactions import Interactions
from .estimator import NeuralRecommender

#: Redraws of a negative that hit a positive (no host sync: a fixed count).
_REDRAWS = 3


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


class BPRMF(NeuralRecommender):
    r"""BPR matrix factorisation in PyTorch with sparse tables and on-device batches.

    See :mod:`reclib.neural.bprmf` for the loss. The defaults (row-wise Adagrad, ``lr=0.1``,
    ``reg=0.01``, 40 epochs) won a small grid on a validation split carved from the MovieLens
    100K training set (``benchmarks/tune_bprmf.py``; 40 epochs is the grid's edge and the score
    was still rising there). :class:`reclib.models.BPR` (numba, per-example SGD) is the CPU
    reference of the same model.

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

    def _build_module(self) -> nn.Module:
        return BPRMFModule(self.n_users, self.n_items, self.n_factors, self.sparse,
                           self.item_bias, self.init_std)

    def _device_pairs(self, train: Interactions):
        """(users, items, sorted keys u * |I| + i) of ``train`` on the device, built once."""
        cached = getattr(self, "_pairs_cache", None)
        if cached is not None and cached[0] is train:
            return cached[1]
        users = torch.as_tensor(train.users, dtype=torch.int64, device=self._device)
        items = torch.as_tensor(train.items, dtype=torch.int64, device=self._device)
        keys = torch.sort(users * self.n_items + items).values
        self._pairs_cache = (train, (users, items, keys))
        return users, items, keys

    def _batches(self, train: Interactions, rng: np.random.Generator):
        users, items, keys = self._device_pairs(train)
        n, n_items = len(users), self.n_items
        generator = torch.Generator(device=self._device)
        generator.manual_seed(int(rng.integers(2**62)))
        order = torch.randperm(n, generator=generator, device=self._device)
        last = len(keys) - 1
        for start in range(0, n, self.batch_size):
            rows = order[start:start + self.batch_size]
            u, i = users[rows], items[rows]
            j = torch.randint(n_items, (len(rows),), generator=generator, device=self._device)
            for _ in range(_REDRAWS):
                query = u * n_items + j
                hit = keys[torch.searchsorted(keys, query).clamp_(max=last)] == query
                redraw = torch.randint(n_items, (len(rows),), generator=generator,
                                       device=self._device)
                j = torch.where(hit, redraw, j)
            yield u, i, j

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
