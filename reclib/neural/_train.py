"""The one training loop every neural model in reclib uses.

It owns the steps that are the same for every model, so that a model file holds only its
mathematics: the device (``"auto"`` picks CUDA, then Apple's MPS, then the CPU), seeding
(``random_state`` seeds a forked torch random state and the NumPy generator the batches are
drawn with; the process's global seed is left as it was), the Adam
optimiser, a tqdm bar behind ``verbose``, early stopping on a validation score with the best
checkpoint restored, and a hard stop when the loss stops being a finite number.

>>> config = TrainConfig(n_epochs=20, lr=1e-3)                       # doctest: +SKIP
>>> result = train_module(module, batches, loss_fn, config, validate)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Callable, Iterable

import numpy as np
import torch

from .._training import DEVICES, TrainConfig, TrainResult, check_finite_loss, run_epochs
from .._validation import check_choice, check_random_state

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


def train_module(module: torch.nn.Module, batches: BatchSource,
                 loss_fn: Callable[[torch.nn.Module, Batch], torch.Tensor],
                 config: TrainConfig, validate: Callable[[torch.nn.Module], float] | None = None,
                 rng: np.random.Generator | None = None) -> TrainResult:
    """Train ``module`` in place with Adam; return the histories and the epoch kept.

    Parameters
    ----------
    module : torch.nn.Module
        Already on its device.
    batches : callable
        ``batches(rng)`` yields one epoch of batches (tuples of tensors on the device).
    loss_fn : callable
        ``loss_fn(module, batch)`` -> scalar tensor to minimise.
    config : TrainConfig
    validate : callable, optional
        ``validate(module)`` -> float, called in eval mode under ``torch.no_grad()``.
        Required when ``config.patience`` is set.
    rng : numpy.random.Generator, optional
        Drawn from by ``batches``; default seeds from ``config.random_state``.

    Raises
    ------
    FloatingPointError
        When a batch's loss is NaN or infinite; the message names the epoch and the
        learning rate. The module is then left as it was at that batch, and must not be used.
    """
    config.validate()
    if config.patience is not None and validate is None:
        raise ValueError("patience is set but there is no validation data to stop on; "
                         "pass validate= or set patience=None")
    if rng is None:
        rng = check_random_state(config.random_state)
        with scoped_seed(int(rng.integers(2**63 - 1))), limited_threads():
            return _loop(module, batches, loss_fn, config, validate, rng)
    with limited_threads():
        return _loop(module, batches, loss_fn, config, validate, rng)


def _loop(module, batches, loss_fn, config, validate, rng) -> TrainResult:
    optimiser = torch.optim.Adam(module.parameters(), lr=config.lr,
                                 weight_decay=config.weight_decay)

    def run_epoch(epoch: int) -> float:
        module.train()
        total, count = 0.0, 0
        for batch in batches(rng):
            loss = loss_fn(module, batch)
            value = loss.item()
            check_finite_loss(value, epoch, count + 1, config.lr)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += value
            count += 1
        return total / max(count, 1)

    def validated() -> float:
        module.eval()
        with torch.no_grad():
            return validate(module)

    result = run_epochs(config, run_epoch, None if validate is None else validated,
                        snapshot=lambda: copy.deepcopy(module.state_dict()),
                        restore=module.load_state_dict)
    module.eval()
    return result
