"""The one training loop every neural model in reclib uses.

It owns the steps that are the same for every model, so that a model file holds only its
mathematics: the device (``"auto"`` picks CUDA, then Apple's MPS, then the CPU), seeding
(``random_state`` seeds a forked torch random state and the NumPy generator the batches are
drawn with; the process's global seed is left as it was), the optimiser (Adam, or a
sparse one for large embedding tables), bfloat16 autocast, data-parallel training under
``torchrun``, a tqdm bar behind ``verbose``, early stopping on a validation score with the best
checkpoint restored, and a hard stop when the loss stops being a finite number.

>>> config = TrainConfig(n_epochs=20, lr=1e-3)                       # doctest: +SKIP
>>> result = Trainer(config).fit(module, batches, loss_fn, validate)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Callable, Iterable

import numpy as np
import torch

from .._training import DEVICES, TrainConfig, TrainResult, check_finite_loss, run_epochs
from .._validation import check_choice, check_float, check_random_state

logger = logging.getLogger(__name__)

#: Torch threads for training and scoring. One: the models' tensors are small, and on a
#: shared two-core machine two intra-op threads measured up to 60 times slower than one.
N_THREADS = 1


def resolve_device(device: str) -> torch.device:
    """The torch device for ``device``; a clear error when the one asked for is missing."""
    check_choice("device", device, DEVICES)
    has_mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if has_mps else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device == 'cuda' but torch sees no CUDA GPU on this machine; "
                           "use device='cpu' or device='auto'")
    if device == "mps" and not has_mps:
        raise RuntimeError("device == 'mps' but Apple's MPS backend is not available here; "
                           "use device='cpu' or device='auto'")
    return torch.device(device)


def seed_everything(random_state) -> np.random.Generator:
    """Seed torch's *global* generator from ``random_state``; return a NumPy generator.

    For scripts that want one seed for everything. reclib itself never calls it: fitting
    uses :func:`scoped_seed`, which leaves the global state as it found it.
    """
    rng = check_random_state(random_state)
    torch.manual_seed(int(rng.integers(2**63 - 1)))
    return rng


@contextlib.contextmanager
def scoped_seed(seed: int, device: torch.device | None = None):
    """Run the block under torch's random state seeded with ``seed``, then restore it.

    Weight initialisation and dropout inside the block are reproducible, and code outside
    it sees the global random state exactly as before (``torch.random.fork_rng``).
    """
    devices = []
    if device is not None and device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def limited_threads(n_threads: int = N_THREADS):
    """Run torch with at most ``n_threads`` intra-op threads inside the block."""
    before = torch.get_num_threads()
    torch.set_num_threads(min(before, n_threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


Batch = tuple
BatchSource = Callable[[np.random.Generator], Iterable[Batch]]

#: Numeric precisions of the forward pass: full float32, or bfloat16 autocast.
PRECISIONS = {"fp32", "bf16"}
#: Optimisers the trainer builds. ``sparse_adam`` and ``rowwise_adagrad`` take the sparse
#: gradients of ``nn.Embedding(sparse=True)`` tables and touch only the rows of a batch.
OPTIMIZERS = {"adam", "sparse_adam", "rowwise_adagrad"}


class RowWiseAdagrad(torch.optim.Optimizer):
    r"""Adagrad with one accumulator per row: the optimiser of large embedding tables.

    For a table :math:`E \in \mathbb{R}^{n \times f}` and the gradient :math:`g_r` of a row
    :math:`r` that the batch touched,

    .. math::

        s_r \leftarrow s_r + \tfrac{1}{f} \lVert g_r \rVert^2, \qquad
        e_r \leftarrow e_r - \frac{\eta}{\sqrt{s_r} + \epsilon}\, g_r ,

    so the state is :math:`n` numbers instead of Adam's :math:`2 n f`, and rows the batch did
    not touch are neither read nor written. Dense parameters (1-D or with dense gradients)
    get the same rule with one accumulator per row of their first dimension (a scalar for
    a 0-D parameter). This is the row-wise Adagrad of large-scale recommender training
    (e.g. Naumov et al., 2019, DLRM).

    Parameters
    ----------
    params : iterable of tensors
    lr : float
        :math:`\eta > 0`.
    eps : float
        :math:`\epsilon > 0`.
    """

    def __init__(self, params, lr: float = 0.05, eps: float = 1e-8):
        check_float("lr", lr, strictly_positive=True)
        check_float("eps", eps, strictly_positive=True)
        super().__init__(params, {"lr": lr, "eps": eps})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None if closure is None else closure()
        for group in self.param_groups:
            lr, eps = group["lr"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "sum" not in state:
                    rows = p.shape[0] if p.dim() > 0 else 1
                    state["sum"] = torch.zeros(rows, dtype=p.dtype, device=p.device)
                acc = state["sum"]
                grad = p.grad
                if grad.is_sparse:
                    grad = grad.coalesce()
                    rows, values = grad.indices()[0], grad.values()        # (r,), (r, f)
                    acc.index_add_(0, rows, values.pow(2).mean(dim=1))
                    step = values / (acc[rows].sqrt() + eps)[:, None]
                    p.index_add_(0, rows, step, alpha=-lr)
                else:
                    acc.add_(grad.reshape(acc.shape[0], -1).pow(2).mean(dim=1))
                    shape = (-1,) + (1,) * (p.dim() - 1) if p.dim() else ()
                    p.sub_(lr * grad / (acc.sqrt() + eps).reshape(shape))
        return loss


@torch.no_grad()
def rowwise_adagrad_rows_(weight: torch.Tensor, acc: torch.Tensor, rows: torch.Tensor,
                          grads: torch.Tensor, lr: float, eps: float = 1e-8) -> None:
    r"""Row-wise Adagrad from per-occurrence gradients, in place and without autograd.

    ``rows`` (length :math:`m`) may repeat a row; ``grads[o]`` is the gradient of the loss
    with respect to occurrence :math:`o`'s copy of row :math:`r_o`, so that
    :math:`\sum_{o : r_o = r} g_o = \nabla_{e_r}` is the row's gradient. The rule is

    .. math::

        s_r \leftarrow s_r + \tfrac{1}{f} \sum_{o : r_o = r} \lVert g_o \rVert^2, \qquad
        e_r \leftarrow e_r - \frac{\eta}{\sqrt{s_r} + \epsilon} \sum_{o : r_o = r} g_o ,

    which is :class:`RowWiseAdagrad`'s step (the same direction :math:`\nabla_{e_r}` and the
    same :math:`s_r` in the denominator, updated first) except that a row that occurs more
    than once adds the sum of its occurrences' squared norms to :math:`s_r` instead of the
    squared norm of their sum. A row that occurs once gets exactly :class:`RowWiseAdagrad`'s
    update. No sort or coalesce: one ``index_add_`` into ``acc``, one gather of it, one
    ``index_add_`` into ``weight``; nothing waits on the device.

    Parameters
    ----------
    weight : tensor (n, ...)
        The table; updated in place.
    acc : tensor (n,)
        :math:`s`, one accumulator per row; updated in place.
    rows : int64 tensor (m,)
    grads : tensor (m, ...)
        Overwritten (it ends as the steps that were added to ``weight``).
    lr, eps : float
        :math:`\eta` and :math:`\epsilon`.
    """
    flat = grads.view(len(rows), -1)
    f = flat.shape[1]
    acc.index_add_(0, rows, torch.linalg.vector_norm(flat, dim=1).square_().div_(f))
    scale = acc.index_select(0, rows).sqrt_().add_(eps).reciprocal_().mul_(-lr)
    flat.mul_(scale[:, None])
    weight.view(weight.shape[0], -1).index_add_(0, rows, flat)


def sparse_parameters(module: torch.nn.Module) -> list:
    """The weight tables of ``module``'s ``nn.Embedding(sparse=True)`` layers."""
    return [p for m in module.modules() if isinstance(m, torch.nn.Embedding) and m.sparse
            for p in m.parameters(recurse=False)]


def average_gradients(module: torch.nn.Module, world: int) -> None:
    r"""Replace every gradient of ``module`` by its mean over the ``world`` processes.

    Called by every process after ``loss.backward()`` and before the step, from the main
    thread, so no collective runs while autograd is still writing gradients. Dense
    gradients are all-reduced. A sparse gradient (the rows :math:`R_p` of an embedding table
    that process :math:`p`'s shard touched, with values :math:`G_p`) travels as rows: the
    processes all-gather their row counts, then their row indices and values padded to the
    largest count, and each process sums the gathered rows in rank order,

    .. math::

        \bar g = \frac{1}{P} \sum_{p=1}^{P} \operatorname{sparse}(R_p, G_p),

    so every process builds the same tensor from the same numbers and the weights stay
    identical. What travels per step is :math:`\sum_p |R_p| (f + 1)` numbers, not the
    :math:`n \times f` table. A parameter without a gradient on some process counts as zero
    there.
    """
    dist = torch.distributed
    sparse_ids = {id(p) for p in sparse_parameters(module)}
    for param in module.parameters():
        if not param.requires_grad:
            continue
        if id(param) not in sparse_ids:
            grad = torch.zeros_like(param) if param.grad is None else param.grad
            dist.all_reduce(grad)
            param.grad = grad.div_(world)
            continue
        if param.grad is None:
            grad = torch.sparse_coo_tensor(
                torch.zeros((1, 0), dtype=torch.long, device=param.device),
                torch.zeros((0,) + tuple(param.shape[1:]), dtype=param.dtype,
                            device=param.device), tuple(param.shape))
        else:
            grad = param.grad
        grad = grad.coalesce()
        indices, values = grad.indices(), grad.values()
        count = torch.tensor([indices.shape[1]], dtype=torch.long, device=param.device)
        counts = [torch.empty_like(count) for _ in range(world)]
        dist.all_gather(counts, count)
        counts = [int(c) for c in counts]
        width = max(counts)
        pad = width - counts[dist.get_rank()]
        indices = torch.nn.functional.pad(indices, (0, pad))
        values = torch.cat([values, values.new_zeros((pad,) + tuple(values.shape[1:]))])
        all_indices = [torch.empty_like(indices) for _ in range(world)]
        all_values = [torch.empty_like(values) for _ in range(world)]
        dist.all_gather(all_indices, indices)
        dist.all_gather(all_values, values)
        merged = torch.sparse_coo_tensor(
            torch.cat([i[:, :c] for i, c in zip(all_indices, counts)], dim=1),
            torch.cat([v[:c] for v, c in zip(all_values, counts)]) / world,
            tuple(param.shape))
        param.grad = merged.coalesce()


def make_optimizer(module: torch.nn.Module, name: str, lr: float,
                   weight_decay: float = 0.0) -> list:
    """The optimisers for ``module``'s parameters (a list: SparseAdam needs a dense partner).

    ``adam``: :class:`torch.optim.Adam` on everything (sparse gradients are refused, with a
    message that says which optimiser takes them). ``sparse_adam``:
    :class:`torch.optim.SparseAdam` on the parameters of sparse embedding tables and Adam on
    the rest. ``rowwise_adagrad``: :class:`RowWiseAdagrad` on everything.
    """
    check_choice("optimizer", name, OPTIMIZERS)
    sparse = sparse_parameters(module)
    ids = {id(p) for p in sparse}
    dense = [p for p in module.parameters() if id(p) not in ids and p.requires_grad]
    if name == "rowwise_adagrad":
        if weight_decay:
            raise ValueError(f"weight_decay == {weight_decay} is not supported with "
                             f"optimizer='rowwise_adagrad'; put the penalty in reg instead")
        return [RowWiseAdagrad(sparse + dense, lr=lr)]
    if name == "adam":
        if sparse:
            raise ValueError("the module has sparse embedding tables (nn.Embedding(sparse="
                             "True)) and optimizer == 'adam' cannot take sparse gradients; use "
                             "optimizer='sparse_adam' or 'rowwise_adagrad', or sparse=False")
        return [torch.optim.Adam(dense, lr=lr, weight_decay=weight_decay)]
    if not sparse:
        raise ValueError("optimizer == 'sparse_adam' but the module has no sparse embedding "
                         "table; use optimizer='adam' or build the tables with sparse=True")
    if weight_decay:
        raise ValueError(f"weight_decay == {weight_decay} is not supported with "
                         f"optimizer='sparse_adam' (SparseAdam has none); use reg instead")
    optimisers = [torch.optim.SparseAdam(sparse, lr=lr)]
    if dense:
        optimisers.append(torch.optim.Adam(dense, lr=lr))
    return optimisers


class _LossModule(torch.nn.Module):
    """``loss_fn(module, batch)`` as a module, so DistributedDataParallel can wrap it."""

    def __init__(self, module: torch.nn.Module, loss_fn):
        super().__init__()
        self.module = module
        self.loss_fn = loss_fn

    def forward(self, *batch):
        return self.loss_fn(self.module, batch)


def _world() -> tuple[int, int]:
    """(rank, world size) of the running process group; (0, 1) without one."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard_batch(batch: Batch, rank: int, world: int) -> Batch:
    """This process's share of a batch: rows ``rank, rank + world, ...`` of each tensor.

    A batch is a tuple of row-aligned tensors (their first dimension is the batch size,
    that of the first tensor); other entries (scalars, tensors of another length) are
    passed unchanged. Every process draws the same global batch from the same seed and
    keeps its stride, so the processes together see each row exactly once.
    """
    if world == 1:
        return batch
    n = batch[0].shape[0]
    return tuple(t[rank::world] if torch.is_tensor(t) and t.dim() > 0 and t.shape[0] == n
                 else t for t in batch)


class Trainer:
    r"""Fits a torch module: device, precision, optimiser and data parallelism in one place.

    Every neural model in reclib trains through this class. What it owns:

    * **device**: the module and its batches are already on ``config.device`` (resolved by
      :func:`resolve_device`); the trainer never moves data back to the CPU except one scalar
      loss per batch.
    * **precision**: ``"bf16"`` runs the forward pass and the loss under
      ``torch.autocast(dtype=torch.bfloat16)`` (matrix products in bfloat16, weights and
      optimiser state in float32); ``"fp32"`` runs everything in float32.
    * **optimiser**: see :func:`make_optimizer`.
    * **data parallelism**: inside a ``torch.distributed`` process group (``torchrun``;
      see :mod:`reclib.neural.distributed`) every process draws the same global batch and
      keeps its :func:`shard_batch` share, and the gradients are averaged over the
      processes before each step, so all processes hold the same weights throughout, and
      the update is the single-process update of the global batch up to the order of
      floating-point sums. Dense models are wrapped in
      :class:`~torch.nn.parallel.DistributedDataParallel`, which overlaps the all-reduce
      with the backward pass. Models with sparse embedding tables are not: DDP's
      asynchronous sparse all-reduce over gloo crashed the process with heap corruption
      in 1 of about 36 two-process runs on torch 2.13, so their gradients are averaged by
      :func:`average_gradients` after the backward pass, row by row.
    * the epoch loop, validation, early stopping and the NaN stop
      (:func:`reclib._training.run_epochs`).

    Parameters
    ----------
    config : TrainConfig
    optimizer : {"adam", "sparse_adam", "rowwise_adagrad"}
    precision : {"fp32", "bf16"}

    Examples
    --------
    >>> trainer = Trainer(TrainConfig(n_epochs=5, lr=1e-2), precision="bf16")  # doctest: +SKIP
    >>> result = trainer.fit(module, batches, loss_fn, validate)               # doctest: +SKIP
    """

    def __init__(self, config: TrainConfig, optimizer: str = "adam", precision: str = "fp32"):
        self.config = config.validate()
        self.optimizer = check_choice("optimizer", optimizer, OPTIMIZERS)
        self.precision = check_choice("precision", precision, PRECISIONS)

    def fit(self, module: torch.nn.Module, batches: BatchSource,
            loss_fn: Callable[[torch.nn.Module, Batch], torch.Tensor],
            validate: Callable[[torch.nn.Module], float] | None = None,
            rng: np.random.Generator | None = None) -> TrainResult:
        """Train ``module`` in place; return the histories and the epoch kept.

        Parameters
        ----------
        module : torch.nn.Module
            Already on its device.
        batches : callable
            ``batches(rng)`` yields one epoch of batches (tuples of row-aligned tensors on
            the device).
        loss_fn : callable
            ``loss_fn(module, batch)`` -> scalar tensor to minimise (a mean over the rows).
        validate : callable, optional
            ``validate(module)`` -> float, called in eval mode under ``torch.no_grad()``.
            Required when ``config.patience`` is set.
        rng : numpy.random.Generator, optional
            Drawn from by ``batches``; default seeds from ``config.random_state``.

        Raises
        ------
        FloatingPointError
            When a batch's loss is NaN or infinite; the message names the epoch and the
            learning rate. The module is then left as it was at that batch.
        """
        config = self.config
        if config.patience is not None and validate is None:
            raise ValueError("patience is set but there is no validation data to stop on; "
                             "pass validate= or set patience=None")
        if rng is None:
            rng = check_random_state(config.random_state)
            with scoped_seed(int(rng.integers(2**63 - 1))), limited_threads():
                return self._loop(module, batches, loss_fn, validate, rng)
        with limited_threads():
            return self._loop(module, batches, loss_fn, validate, rng)

    def _autocast(self, device: torch.device):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                              enabled=self.precision == "bf16")

    def _loop(self, module, batches, loss_fn, validate, rng) -> TrainResult:
        config = self.config
        optimisers = make_optimizer(module, self.optimizer, config.lr, config.weight_decay)
        device = next(module.parameters()).device
        rank, world = _world()
        step_module = _LossModule(module, loss_fn)
        # sparse tables: gradients averaged by hand after backward (average_gradients)
        by_hand = world > 1 and bool(sparse_parameters(module))
        if world > 1 and not by_hand:
            from torch.nn.parallel import DistributedDataParallel
            # sparse buffers (feature matrices) cannot be broadcast; every process builds
            # them from the same data, so DDP leaves them alone
            DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
                step_module, [name for name, b in step_module.named_buffers() if b.is_sparse])
            step_module = DistributedDataParallel(
                step_module, device_ids=[device.index] if device.type == "cuda" else None)

        def run_epoch(epoch: int) -> float:
            module.train()
            total, count = 0.0, 0
            for batch in batches(rng):
                with self._autocast(device):
                    loss = step_module(*shard_batch(batch, rank, world))
                for optimiser in optimisers:
                    optimiser.zero_grad(set_to_none=True)
                loss.backward()
                if by_hand:
                    average_gradients(module, world)
                for optimiser in optimisers:
                    optimiser.step()
                value = loss.detach().float()
                if world > 1:   # the mean over the processes, for the log and the NaN stop
                    torch.distributed.all_reduce(value)
                    value = value / world
                value = value.item()
                check_finite_loss(value, epoch, count + 1, config.lr)
                total += value
                count += 1
            return total / max(count, 1)

        return self._run_epochs(module, run_epoch, validate)

    def _run_epochs(self, module, run_epoch, validate):
        """The epoch loop around ``run_epoch``: validation in eval mode without gradients,
        best-state snapshots for early stopping, and the module left in eval mode."""
        def validated() -> float:
            module.eval()
            with torch.no_grad():
                return validate(module)

        result = run_epochs(self.config, run_epoch, None if validate is None else validated,
                            snapshot=lambda: copy.deepcopy(module.state_dict()),
                            restore=module.load_state_dict)
        module.eval()
        return result


def train_module(module: torch.nn.Module, batches: BatchSource,
                 loss_fn: Callable[[torch.nn.Module, Batch], torch.Tensor],
                 config: TrainConfig, validate: Callable[[torch.nn.Module], float] | None = None,
                 rng: np.random.Generator | None = None, optimizer: str = "adam",
                 precision: str = "fp32") -> TrainResult:
    """``Trainer(config, optimizer, precision).fit(module, batches, loss_fn, validate, rng)``."""
    return Trainer(config, optimizer, precision).fit(module, batches, loss_fn, validate, rng)
