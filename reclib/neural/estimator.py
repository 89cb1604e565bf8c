"""One estimator wrapper that gives any PyTorch scorer the common reclib API.

:class:`NeuralRecommender` is a :class:`~reclib.models.Recommender`: ``fit``, ``predict``,
``recommend``, ``get_params``/``set_params``, ``save``/``load`` (no pickle) and the base
class's errors all work unchanged. A model subclasses it, takes *every* hyper-parameter it
uses as a constructor argument (the training settings included: ``n_epochs``, ``batch_size``,
``lr``, ``weight_decay``, ``patience``, ``validation_fraction``, ``device``, ``random_state``,
``verbose``; with the default sampling also ``loss``, ``n_negatives``, ``sampler`` and,
for a penalty, ``reg``), and implements

``_build_module(self) -> torch.nn.Module``
    the network, from hyper-parameters and fitted attributes only (``self.n_users``,
    ``self.n_items`` and anything ``_prepare`` stored), because :meth:`load` rebuilds it.

and, when the defaults do not fit,

``_prepare(self, data)``
    store extra fitted state (attributes ending in ``_``) before the module is built;
``_initialise(self, module, train)``
    set starting weights before training (NeuMF's pre-training); default: the random ones;
``_inputs(self, X, dtype)``
    the run-time inputs the module takes besides the ids (a graph, a rating matrix), built
    from ``X``, a users x items CSR of ratings, as a tuple of tensors on the device. They are
    passed to every module call, ``module(users, items, *inputs)``, so a module holds no
    data set; built from the training part for training and from
    :meth:`_inference_matrix` for scoring;
``_batches(self, train, rng)`` and ``_batch_loss(self, module, batch)``
    one epoch of tensor tuples and the loss of one (default: positives with sampled
    negatives and ``loss`` in ``{"bpr", "bce", "softmax"}``);
``_validation_score(self, module, train, valid)``
    the early-stopping score (default: nDCG@10 of full rankings).

The default module interface is ``module(users, items, *inputs) -> scores`` with ``users`` of
shape ``(B,)`` and ``items`` of shape ``(B, c)``, returning ``(B, c)``, plus optionally
``module.score_all(users, *inputs) -> (B, n_items)`` (faster full scoring) and
``module.penalty(users, items) -> scalar`` (an L2 term multiplied by ``reg``).

Training runs in :class:`~reclib.neural.Trainer` (device, ``optimizer`` and ``precision``
where the model takes them, data parallelism under ``torchrun``) under a forked torch random state
(seeded from ``random_state``), so fitting never changes the process's global seed. The
module's ``state_dict`` is kept in the fitted attribute ``weights_`` (a dict of NumPy arrays
under the state_dict's own names), which the model file stores as ``weights/<name>``.
Ranking runs on the model's device through the torch backend of :func:`reclib.core.topk`;
only the ``k`` best items of each user come back to the CPU.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
import torch

from .._training import holdout_ndcg
from .._validation import check_choice, check_float, check_int, check_random_state
from ..core.ranking import topk
from ..interactions import Interactions
from ..models.base import Recommender
from ..split import per_user_holdout
from ._train import (OPTIMIZERS, PRECISIONS, TrainConfig, Trainer, limited_threads,
                     resolve_device, scoped_seed)
from .losses import LOSSES
from .samplers import make_sampler

logger = logging.getLogger(__name__)

#: Floats of the widest intermediate computed at once when ranking: a block of users holds
#: ``_SCORE_BUDGET // (n_items * _pair_width())`` rows (16 MB of float64 scores).
_SCORE_BUDGET = 2**21
#: Settings the shared fitting loop reads; every neural model takes them in its constructor.
TRAINING_PARAMS = ("n_epochs", "batch_size", "lr", "weight_decay", "patience",
                   "validation_fraction", "device", "random_state", "verbose")
#: Settings the default sampler and loss read (models that keep the default batches).
SAMPLING_PARAMS = ("loss", "n_negatives", "sampler")


class NeuralRecommender(Recommender):
    """Base class of the PyTorch recommenders (see the module docstring for the hooks).

    Attributes
    ----------
    loss_history_ : ndarray
        Mean training loss of each epoch.
    val_history_ : ndarray
        Validation score after each epoch (empty when ``validation_fraction == 0``).
    best_epoch_ : int
        Epoch whose weights the model holds.
    epoch_seconds_ : ndarray
        Wall-clock seconds of each epoch's training steps (validation excluded).
    weights_ : dict of str to ndarray
        The module's ``state_dict`` as NumPy arrays.
    """

    _abstract = True
    #: Rating models validate on RMSE (lower is better) instead of nDCG@10.
    _rating_model = False

    def predicts_ratings(self) -> bool:
        return self._rating_model

    # ------------------------------------------------------------------ configuration
    def _setting(self, name: str):
        """A training setting; it must be a constructor argument (nothing hidden)."""
        if name not in self._param_names():
            raise TypeError(f"{type(self).__name__} uses the setting {name!r} but its "
                            f"constructor does not take it; add it as a constructor argument")
        return getattr(self, name)

    def _uses_default_batches(self) -> bool:
        return type(self)._batches is NeuralRecommender._batches

    def train_config(self) -> TrainConfig:
        """The :class:`TrainConfig` this model's hyper-parameters describe."""
        s = self._setting
        return TrainConfig(n_epochs=s("n_epochs"), lr=s("lr"), weight_decay=s("weight_decay"),
                           patience=s("patience"), higher_is_better=not self._rating_model,
                           device=s("device"), random_state=s("random_state"),
                           verbose=s("verbose"))

    def _optional(self, name: str, default):
        """A setting only some models take (``optimizer``, ``precision``): its default otherwise."""
        return getattr(self, name) if name in self._param_names() else default

    def trainer(self) -> Trainer:
        """The :class:`Trainer` this model's hyper-parameters describe."""
        return Trainer(self.train_config(), optimizer=self._optional("optimizer", "adam"),
                       precision=self._optional("precision", "fp32"))

    def _validate_params(self) -> None:
        self.train_config().validate()
        check_choice("optimizer", self._optional("optimizer", "adam"), OPTIMIZERS)
        check_choice("precision", self._optional("precision", "fp32"), PRECISIONS)
        optimizer = self._optional("optimizer", "adam")
        if optimizer != "adam" and self._setting("weight_decay"):
            raise ValueError(f"weight_decay == {self.weight_decay} is not supported with "
                             f"optimizer == {optimizer!r}; use reg, or optimizer='adam'")
        check_int("batch_size", self._setting("batch_size"), minimum=1)
        fraction = check_float("validation_fraction", self._setting("validation_fraction"),
                               minimum=0.0, maximum=0.5)
        if "reg" in self._param_names():
            check_float("reg", self.reg, minimum=0.0)
        if self._uses_default_batches() and not self._rating_model:
            check_choice("loss", self._setting("loss"), set(LOSSES))
            check_int("n_negatives", self._setting("n_negatives"), minimum=1)
            check_choice("sampler", self._setting("sampler"), {"uniform", "popularity"})
        if self.patience is not None and fraction == 0:
            raise ValueError(f"patience == {self.patience} needs validation data; set "
                             f"validation_fraction > 0 (e.g. 0.1) or patience=None")

    # ------------------------------------------------------------------ fitting
    def _fit(self, data: Interactions) -> None:
        trainer = self.trainer()
        config = trainer.config
        self._device = resolve_device(config.device)
        rng = check_random_state(config.random_state)
        with scoped_seed(int(rng.integers(2**63 - 1)), self._device), limited_threads():
            train, valid = self._carve_validation(data, rng)
            self.__dict__.pop("weights_", None)
            self._prepare(data)
            module = self._build_module().to(self._device)
            self._initialise(module, train)
            self._context = self._inputs(self._matrix(train), self.dtype_of(module))
            validate = None
            if valid is not None:
                def validate(m):
                    return self._validation_score(m, train, valid)
            result = trainer.fit(module, lambda r: self._batches(train, r), self._batch_loss,
                                 validate, rng)
        self.loss_history_ = np.asarray(result.loss_history)
        self.val_history_ = np.asarray(result.val_history)
        self.best_epoch_ = int(result.best_epoch)
        self.epoch_seconds_ = np.asarray(result.epoch_seconds)
        self.weights_ = {key: value.detach().cpu().numpy().copy()
                         for key, value in module.state_dict().items()}
        self._module = self._for_inference(module)

    def _for_inference(self, module: torch.nn.Module) -> torch.nn.Module:
        """Score in float64 (so a user's scores do not depend on the batch they come in).

        Apple's MPS backend has no float64: there the module scores in float32.
        """
        if self._device.type != "mps":
            module = module.double()
        module = module.eval()
        self._context = self._inputs(self._inference_matrix(), self.dtype_of(module))
        return module

    def _carve_validation(self, data: Interactions, rng):
        """Hold out ``validation_fraction`` of each user's rows (users keep at least one)."""
        fraction = self._setting("validation_fraction")
        if not fraction:
            return data, None
        return per_user_holdout(data, fraction, rng)

    def _matrix(self, data: Interactions) -> sp.csr_matrix:
        return sp.csr_matrix((data.ratings.astype(np.float32), (data.users, data.items)),
                             shape=(self.n_users, self.n_items))

    def _prepare(self, data: Interactions) -> None:
        """Store extra fitted state the module needs (default: nothing)."""

    def _inputs(self, X: sp.csr_matrix, dtype: torch.dtype) -> tuple:
        """Run-time inputs of the module besides the ids (default: none)."""
        return ()

    def _initialise(self, module: torch.nn.Module, train: Interactions) -> None:
        """Set the module's starting weights from ``train`` (default: keep the random ones).

        Called once per fit, before training, with the training part (the validation rows
        already held out), so a pre-training step never sees the validation data.
        """

    def _inference_matrix(self) -> sp.csr_matrix:
        """The matrix :meth:`_inputs` builds the scoring inputs from (default: the seen matrix)."""
        return self.seen_

    def _build_module(self) -> torch.nn.Module:
        raise NotImplementedError

    @staticmethod
    def dtype_of(module: torch.nn.Module) -> torch.dtype:
        """The floating dtype of the module's parameters (float32 training, float64 scoring)."""
        return next(module.parameters()).dtype

    # ------------------------------------------------------------------ default training
    def _batches(self, train: Interactions, rng: np.random.Generator):
        """Shuffled positives, each with ``n_negatives`` sampled items."""
        counts = np.bincount(train.items, minlength=self.n_items)
        sampler = make_sampler(self.sampler, counts)
        batch_size, m = self.batch_size, self.n_negatives
        shared = self.loss == "softmax"
        order = rng.permutation(train.n_interactions)
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            users, items = train.users[rows], train.items[rows]
            if shared:  # one set of negatives for the whole batch, expanded to every row
                negatives = np.broadcast_to(sampler.sample(rng, m), (len(rows), m))
            else:
                negatives = sampler.sample(rng, (len(rows), m))
            candidates = np.concatenate([items[:, None], negatives], axis=1)   # (B, 1 + m)
            log_q = sampler.log_prob(candidates).astype(np.float32)
            yield tuple(torch.from_numpy(np.ascontiguousarray(a)).to(self._device)
                        for a in (users, candidates, log_q))

    def _batch_loss(self, module: torch.nn.Module, batch) -> torch.Tensor:
        users, candidates, log_q = batch
        scores = module(users, candidates, *self._context)            # (B, 1 + m)
        if self.loss == "softmax":
            sampled = self.sampler == "popularity"
            loss = LOSSES["softmax"](scores[:, 0], scores[:, 1:],
                                     log_q[:, 0] if sampled else None,
                                     log_q[:, 1:] if sampled else None)
        else:
            loss = LOSSES[self.loss](scores[:, 0], scores[:, 1:])
        reg = getattr(self, "reg", 0.0) if "reg" in self._param_names() else 0.0
        if reg and hasattr(module, "penalty"):
            loss = loss + reg * module.penalty(users, candidates)
        return loss

    def _validation_score(self, module, train: Interactions, valid: Interactions) -> float:
        """nDCG@10 of full rankings on the held-out rows (training rows masked)."""
        seen, k, step = self._matrix(train), min(10, self.n_items), self._score_rows()

        def rank(users):
            return np.concatenate([self._module_topk(module, users[b:b + step], k,
                                                     seen[users[b:b + step]], None)[0]
                                   for b in range(0, len(users), step)])
        return holdout_ndcg(rank, valid.users, valid.items, self.n_items)

    # ------------------------------------------------------------------ scoring
    def _get_module(self) -> torch.nn.Module:
        """The fitted module, rebuilt from ``weights_`` after :meth:`load`."""
        self._check_is_fitted()
        if getattr(self, "_module", None) is None:
            self._device = resolve_device(self.device)
            module = self._build_module()
            module.load_state_dict({key: torch.from_numpy(np.asarray(value))
                                    for key, value in self.weights_.items()})
            self._module = self._for_inference(module.to(self._device))
        return self._module

    def _reset_lookups(self, user_map=None, item_map=None) -> None:
        super()._reset_lookups(user_map, item_map)
        self._module = None  # fit and load both start from a fresh module

    def _score_rows(self) -> int:
        return max(1, _SCORE_BUDGET // (self.n_items * self._pair_width()))

    def _pair_width(self) -> int:
        """Floats one (user, item) pair holds in the widest intermediate of full scoring.

        One where scoring all items is a matrix product; a model that runs an MLP over every
        pair returns the MLP's width, so a block of users stays the same size in memory
        (blocks of 2 GB of float64 hidden units ran five times slower than blocks of 16 MB).
        """
        return 1

    def _module_block(self, module: torch.nn.Module, users: np.ndarray) -> torch.Tensor:
        """Scores of one block of user indices against every item, on the device."""
        block = torch.as_tensor(np.asarray(users, dtype=np.int64), device=self._device)
        if hasattr(module, "score_all"):
            return module.score_all(block, *self._context)
        all_items = torch.arange(self.n_items, device=self._device)
        return module(block, all_items.expand(len(block), -1), *self._context)

    def _module_topk(self, module, users, k, exclude, candidates):
        """Top-k on the device: only (len(users), k) indices and scores come back."""
        module.eval()
        with torch.no_grad(), limited_threads():
            scores = self._module_block(module, users)
            idx, vals = topk(scores, k, exclude=exclude, candidates=candidates,
                             source=type(self).__name__)
        return idx.cpu().numpy(), vals.double().cpu().numpy()

    def _topk_block(self, rows, k, exclude, candidates):
        module, step = self._get_module(), self._score_rows()
        parts = [self._module_topk(module, rows[b:b + step], k,
                                   None if exclude is None else exclude[b:b + step], candidates)
                 for b in range(0, len(rows), step)]
        if not parts:
            return np.empty((0, k), dtype=np.int64), np.empty((0, k))
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _module_scores(self, module: torch.nn.Module, users: np.ndarray) -> np.ndarray:
        module.eval()
        out = np.empty((len(users), self.n_items))
        step = self._score_rows()
        with torch.no_grad(), limited_threads():
            for start in range(0, len(users), step):
                scores = self._module_block(module, users[start:start + step])
                out[start:start + len(scores)] = scores.double().cpu().numpy()
        return out

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        return self._module_scores(self._get_module(), np.asarray(users, dtype=np.int64))
