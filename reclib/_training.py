"""The framework-neutral part of training: the settings, the epoch loop, early stopping.

PyTorch (:mod:`reclib.neural`) and Keras (:mod:`reclib.keras`) models share this loop; each
framework supplies only what differs: one epoch of optimiser steps, and how to copy and
restore the weights. So both sides have the same options with the same meaning: the number
of epochs, validation every ``eval_every`` epochs, early stopping with ``patience`` and the
best checkpoint restored, a tqdm bar behind ``verbose``, and a hard stop when the loss is not
a finite number.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from ._progress import tqdm

from ._validation import check_bool, check_choice, check_float, check_int, check_random_state

logger = logging.getLogger(__name__)

DEVICES = {"auto", "cpu", "cuda", "mps"}


@dataclass
class TrainConfig:
    """Settings of the training loop; its field defaults are the package's training defaults.

    Attributes
    ----------
    n_epochs : int
        Passes over the training data (the most, when early stopping is on).
    lr : float
        Adam's learning rate.
    weight_decay : float
        Adam's L2 penalty on every parameter (PyTorch models).
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
        check_bool("higher_is_better", self.higher_is_better)
        check_choice("device", self.device, DEVICES)
        check_random_state(self.random_state)
        check_bool("verbose", self.verbose)
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
        1-based epoch whose weights the model holds at the end.
    best_score : float or None
    epoch_seconds : list of float
        Wall-clock seconds of each epoch's training steps (validation not included).
    """

    loss_history: list = field(default_factory=list)
    val_history: list = field(default_factory=list)
    best_epoch: int = 0
    best_score: float | None = None
    epoch_seconds: list = field(default_factory=list)


def check_finite_loss(loss: float, epoch: int, batch: int, lr: float) -> None:
    """Raise a ``FloatingPointError`` naming the epoch, batch and ``lr`` for a NaN/inf loss."""
    if not math.isfinite(loss):
        raise FloatingPointError(
            f"the training loss became {loss} at epoch {epoch} (batch {batch}) with "
            f"lr == {lr}; the model diverged. Lower lr, raise the regularisation, or check "
            f"the inputs for NaN/inf")


def run_epochs(config: TrainConfig, run_epoch: Callable[[int], float],
               validate: Callable[[], float] | None = None,
               snapshot: Callable[[], object] | None = None,
               restore: Callable[[object], None] | None = None) -> TrainResult:
    """The epoch loop with validation, early stopping and checkpoint restore.

    Parameters
    ----------
    config : TrainConfig
    run_epoch : callable
        ``run_epoch(epoch)`` trains one epoch and returns its mean loss.
    validate : callable, optional
        Returns the validation score of the current weights. Required with ``patience``.
    snapshot, restore : callable, optional
        Copy the weights, and put a copy back; needed with ``patience`` so the best
        checkpoint is restored at the end.
    """
    config.validate()
    if config.patience is not None and (validate is None or snapshot is None or restore is None):
        raise ValueError("patience is set but there is no validation data to stop on; "
                         "pass validate= (with snapshot/restore) or set patience=None")
    result = TrainResult()
    best_state, since_best = None, 0
    sign = 1.0 if config.higher_is_better else -1.0
    bar = tqdm(range(1, config.n_epochs + 1), disable=not config.verbose, desc="epochs")
    for epoch in bar:
        start = time.perf_counter()
        result.loss_history.append(float(run_epoch(epoch)))
        result.epoch_seconds.append(time.perf_counter() - start)
        postfix = {"loss": f"{result.loss_history[-1]:.4f}"}
        if validate is not None and (epoch % config.eval_every == 0 or epoch == config.n_epochs):
            score = float(validate())
            result.val_history.append(score)
            postfix["val"] = f"{score:.4f}"
            if result.best_score is None or sign * score > sign * result.best_score:
                result.best_score, result.best_epoch, since_best = score, epoch, 0
                if snapshot is not None:
                    best_state = snapshot()
            else:
                since_best += 1
            if config.patience is not None and since_best >= config.patience:
                logger.info("early stop at epoch %d; best epoch %d (score %.4f)", epoch,
                            result.best_epoch, result.best_score)
                break
        bar.set_postfix(postfix)
    if config.patience is not None and best_state is not None:
        restore(best_state)
    else:
        result.best_epoch = len(result.loss_history)
    if result.loss_history and not math.isfinite(result.loss_history[-1]):
        raise FloatingPointError(f"the training loss is {result.loss_history[-1]} after epoch "
                                 f"{len(result.loss_history)} with lr == {config.lr}")
    return result


def holdout_ndcg(rank: Callable[[np.ndarray], np.ndarray], valid_users: np.ndarray,
                 valid_items: np.ndarray, n_items: int) -> float:
    """nDCG@10 of full rankings on held-out pairs: the early-stopping score of both frameworks.

    ``rank(users)`` returns the top-10 item indices of each user (training items excluded).
    """
    from .evaluation.metrics import per_user_ndcg  # pure metric functions, no models

    users = np.unique(valid_users)
    top = rank(users)
    keys = np.unique(valid_users * np.int64(n_items) + valid_items)
    query = users[:, None] * np.int64(n_items) + top
    pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    hits = keys[pos] == query
    n_relevant = np.bincount(np.searchsorted(users, valid_users), minlength=len(users))
    return float(per_user_ndcg(hits, n_relevant).mean())
