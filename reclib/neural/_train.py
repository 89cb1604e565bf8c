"""The one training loop every neural model in reclib uses.

It owns the steps that are the same for every model, so that a model file holds only its
mathematics: the device (``"auto"`` picks CUDA, then Apple's MPS, then the CPU), seeding
(``random_state`` seeds torch and the NumPy generator the batches are drawn with), the Adam
optimiser, a tqdm bar behind ``verbose``, early stopping on a validation score with the best
checkpoint restored, and a hard stop when the loss stops being a finite number.

>>> config = TrainConfig(n_epochs=20, lr=1e-3)                       # doctest: +SKIP
>>> result = train_module(module, batches, loss_fn, config, validate)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from .._validation import check_choice, check_float, check_int, check_random_state

logger = logging.getLogger(__name__)

DEVICES = {"auto", "cpu", "cuda", "mps"}
#: Torch threads for training and scoring. One: the models' tensors are small, and on a
#: shared two-core machine two intra-op threads measured up to 60 times slower than one.
N_THREADS = 1


@dataclass
class TrainConfig:
    """Hyper-parameters of the training loop (the model's own ones live on the model).

    Attributes
    ----------
    n_epochs : int
        Passes over the training data (the most, when early stopping is on).
    lr : float
        Adam's learning rate.
    weight_decay : float
        Adam's L2 penalty on every parameter.
    patience : int or None
        Stop after this many validations without improvement and restore the best
        checkpoint; ``None`` trains for ``n_epochs`` and keeps the last weights.
    eval_every : int
        Validate every this many epochs.
    higher_is_better : bool
        Direction of the validation score (nDCG: True; RMSE or loss: False).
    device : {"auto", "cpu", "cuda", "mps"}
    random_state : int or None
    verbose : bool
        Show a progress bar over epochs with the loss and validation score.
    """

    n_epochs: int = 20
    lr: float = 1e-3
    weight_decay: float = 0.0
    patience: int | None = None
    eval_every: int = 1
    higher_is_better: bool = True
    device: str = "auto"
    random_state: int | None = None
    verbose: bool = False

    def validate(self) -> "TrainConfig":
        """Check every field; return ``self`` so the call chains."""
        check_int("n_epochs", self.n_epochs, minimum=1)
        check_float("lr", self.lr, strictly_positive=True)
        check_float("weight_decay", self.weight_decay, minimum=0.0)
        if self.patience is not None:
            check_int("patience", self.patience, minimum=1)
        check_int("eval_every", self.eval_every, minimum=1)
        check_choice("device", self.device, DEVICES)
        check_random_state(self.random_state)
        return self


@dataclass
class TrainResult:
    """What the loop learnt about the run.

    Attributes
    ----------
    loss_history : list of float
        Mean training loss of each epoch.
    val_history : list of float
        Validation score after each validation (empty without ``validate``).
    best_epoch : int
        1-based epoch whose weights the module holds at the end.
    best_score : float or None
    """

    loss_history: list = field(default_factory=list)
    val_history: list = field(default_factory=list)
    best_epoch: int = 0
    best_score: float | None = None


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
    """Seed torch from ``random_state`` and return the NumPy generator for the batches."""
    rng = check_random_state(random_state)
    torch.manual_seed(int(rng.integers(2**63 - 1)))
    return rng


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
        rng = seed_everything(config.random_state)
    with limited_threads():
        return _loop(module, batches, loss_fn, config, validate, rng)


def _loop(module, batches, loss_fn, config, validate, rng) -> TrainResult:
    optimiser = torch.optim.Adam(module.parameters(), lr=config.lr,
                                 weight_decay=config.weight_decay)
    result = TrainResult()
    best_state, since_best = None, 0
    sign = 1.0 if config.higher_is_better else -1.0
    bar = tqdm(range(1, config.n_epochs + 1), disable=not config.verbose, desc="epochs")
    for epoch in bar:
        module.train()
        total, count = 0.0, 0
        for batch in batches(rng):
            loss = loss_fn(module, batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"the training loss became {loss.item()} at epoch {epoch} (batch "
                    f"{count + 1}) with lr == {config.lr}; the model diverged. Lower lr, "
                    f"raise the regularisation, or check the inputs for NaN/inf")
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += loss.item()
            count += 1
        result.loss_history.append(total / max(count, 1))
        postfix = {"loss": f"{result.loss_history[-1]:.4f}"}
        if validate is not None and (epoch % config.eval_every == 0 or epoch == config.n_epochs):
            module.eval()
            with torch.no_grad():
                score = float(validate(module))
            result.val_history.append(score)
            postfix["val"] = f"{score:.4f}"
            if result.best_score is None or sign * score > sign * result.best_score:
                result.best_score, result.best_epoch, since_best = score, epoch, 0
                best_state = copy.deepcopy(module.state_dict())
            else:
                since_best += 1
            if config.patience is not None and since_best >= config.patience:
                logger.info("early stop at epoch %d; best epoch %d (score %.4f)", epoch,
                            result.best_epoch, result.best_score)
                break
        bar.set_postfix(postfix)
    if config.patience is not None and best_state is not None:
        module.load_state_dict(best_state)
    else:
        result.best_epoch = len(result.loss_history)
    module.eval()
    if result.loss_history and not math.isfinite(result.loss_history[-1]):
        raise FloatingPointError(f"the training loss is {result.loss_history[-1]} after epoch "
                                 f"{len(result.loss_history)} with lr == {config.lr}")
    return result
