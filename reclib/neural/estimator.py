"""One estimator wrapper that gives any PyTorch scorer the common reclib API.

:class:`NeuralRecommender` is a :class:`~reclib.models.Recommender`: ``fit``, ``predict``,
``recommend``, ``save``/``load`` (``.npz``, no pickle) and the base class's errors all work
unchanged. A model subclasses it, lists its hyper-parameters in ``__init__`` (the training
ones below are read by name), and implements

``_build_module(self) -> torch.nn.Module``
    the network, from hyper-parameters and fitted attributes only (``self.n_users``,
    ``self.n_items`` and anything ``_prepare`` stored), because :meth:`load` rebuilds it.

and, when the defaults do not fit,

``_prepare(self, data)``
    store extra fitted state (attributes ending in ``_``) before the module is built;
``_initialise(self, module, train)``
    set starting weights before training (NeuMF's pre-training); default: the random ones;
``_attach(self, module, X)``
    hand the module the data it reads at run time (a graph, a rating matrix), built from
    ``X``, a users x items CSR of ratings; called with the training part before training and
    with :meth:`_inference_matrix` before scoring;
``_batches(self, train, rng)`` and ``_batch_loss(self, module, batch)``
    one epoch of tensor tuples and the loss of one (default: positives with sampled
    negatives and ``loss`` in ``{"bpr", "bce", "softmax"}``);
``_validation_score(self, module, train, valid)``
    the early-stopping score (default: nDCG@10 of full rankings).

The default module interface is ``module(users, items) -> scores`` with ``users`` of shape
``(B,)`` and ``items`` of shape ``(B, c)``, returning ``(B, c)``, plus optionally
``module.score_all(users) -> (B, n_items)`` (faster full scoring) and
``module.penalty(users, items) -> scalar`` (an L2 term multiplied by the ``reg``
hyper-parameter). Training hyper-parameters read by name (with these defaults when a model
does not define them): ``n_epochs`` (20), ``batch_size`` (1024), ``lr`` (1e-3),
``weight_decay`` (0), ``reg`` (0), ``loss`` ("bce"), ``n_negatives`` (4), ``sampler``
("uniform"), ``patience`` (None), ``validation_fraction`` (0), ``device`` ("auto"),
``random_state`` (None), ``verbose`` (False).

The module's ``state_dict`` is stored as NumPy arrays in fitted attributes ``state_0_``,
``state_1_``, ... with their names in ``state_keys_``, so the base class saves it like any other
fitted array and the module is rebuilt lazily after :meth:`load`.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
import torch

from .._ranking import mask_rows, top_k
from ..evaluation.metrics import per_user_ndcg
from ..interactions import Interactions
from ..models.base import Recommender
from ._train import (TrainConfig, limited_threads, resolve_device, seed_everything,
                     train_module)
from .losses import LOSSES
from .samplers import make_sampler

logger = logging.getLogger(__name__)

_TRAINING_DEFAULTS = {"n_epochs": 20, "batch_size": 1024, "lr": 1e-3, "weight_decay": 0.0,
                      "reg": 0.0, "loss": "bce", "n_negatives": 4, "sampler": "uniform",
                      "patience": None, "validation_fraction": 0.0, "device": "auto",
                      "random_state": None, "verbose": False}
#: Score cells (users x items) computed at once when ranking.
_SCORE_BUDGET = 2**21


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
    state_keys_ : list of str
        Names of the module's ``state_dict`` entries, stored as ``state_0_``, ``state_1_``...
    """

    #: Rating models validate on RMSE (lower is better) instead of nDCG@10.
    _rating_model = False

    # ------------------------------------------------------------------ configuration
    def _hp(self, name: str):
        return getattr(self, name, _TRAINING_DEFAULTS[name])

    def train_config(self) -> TrainConfig:
        """The :class:`TrainConfig` this model's hyper-parameters describe."""
        return TrainConfig(n_epochs=self._hp("n_epochs"), lr=self._hp("lr"),
                           weight_decay=self._hp("weight_decay"), patience=self._hp("patience"),
                           higher_is_better=not self._rating_model, device=self._hp("device"),
                           random_state=self._hp("random_state"), verbose=self._hp("verbose"))

    def _validate_params(self) -> None:
        self.train_config().validate()
        from .._validation import check_choice, check_float, check_int
        check_int("batch_size", self._hp("batch_size"), minimum=1)
        check_float("reg", self._hp("reg"), minimum=0.0)
        check_float("validation_fraction", self._hp("validation_fraction"), minimum=0.0,
                    maximum=0.5)
        if not self._rating_model:
            check_choice("loss", self._hp("loss"), set(LOSSES))
            check_int("n_negatives", self._hp("n_negatives"), minimum=1)
            check_choice("sampler", self._hp("sampler"), {"uniform", "popularity"})
        if self._hp("patience") is not None and self._hp("validation_fraction") == 0:
            raise ValueError(f"patience == {self._hp('patience')} needs validation data; set "
                             f"validation_fraction > 0 (e.g. 0.1) or patience=None")

    # ------------------------------------------------------------------ fitting
    def _fit(self, data: Interactions) -> None:
        config = self.train_config()
        self._device = resolve_device(config.device)
        rng = seed_everything(config.random_state)
        train, valid = self._carve_validation(data, rng)
        for name in [k for k in vars(self) if k.startswith("state_") and k.endswith("_")]:
            delattr(self, name)
        self._prepare(data)
        module = self._build_module().to(self._device)
        self._initialise(module, train)
        self._attach(module, self._matrix(train))
        validate = None
        if valid is not None:
            def validate(m):
                return self._validation_score(m, train, valid)
        result = train_module(module, lambda r: self._batches(train, r), self._batch_loss,
                              config, validate, rng)
        self.loss_history_ = np.asarray(result.loss_history)
        self.val_history_ = np.asarray(result.val_history)
        self.best_epoch_ = int(result.best_epoch)
        state = module.state_dict()
        self.state_keys_ = list(state)
        for n, key in enumerate(self.state_keys_):
            setattr(self, f"state_{n}_", state[key].detach().cpu().numpy().copy())
        self._module = self._for_inference(module)

    def _for_inference(self, module: torch.nn.Module) -> torch.nn.Module:
        """Score in float64, so a user's scores do not depend on the batch they come in."""
        module = module.double().eval()
        self._attach(module, self._inference_matrix())
        return module

    def _carve_validation(self, data: Interactions, rng):
        """Hold out ``validation_fraction`` of each user's rows (users keep at least one)."""
        fraction = self._hp("validation_fraction")
        if not fraction:
            return data, None
        key = rng.random(data.n_interactions)
        order = np.lexsort((key, data.users))
        counts = np.bincount(data.users, minlength=data.n_users)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rank = np.arange(len(order)) - starts[data.users[order]]
        n_valid = np.floor(fraction * counts + 0.5).astype(int)
        n_valid = np.minimum(n_valid, counts - 1)
        held = np.zeros(data.n_interactions, dtype=bool)
        held[order[rank < n_valid[data.users[order]]]] = True
        if not held.any():
            raise ValueError(f"validation_fraction == {fraction} holds out no interaction of "
                             f"this data; raise it or set it to 0")
        return data.subset(~held), data.subset(held)

    def _matrix(self, data: Interactions) -> sp.csr_matrix:
        return sp.csr_matrix((data.ratings.astype(np.float32), (data.users, data.items)),
                             shape=(self.n_users, self.n_items))

    def _prepare(self, data: Interactions) -> None:
        """Store extra fitted state the module needs (default: nothing)."""

    def _attach(self, module: torch.nn.Module, X: sp.csr_matrix) -> None:
        """Give the module its run-time data (default: nothing)."""

    def _initialise(self, module: torch.nn.Module, train: Interactions) -> None:
        """Set the module's starting weights from ``train`` (default: keep the random ones).

        Called once per fit, before training, with the training part (the validation rows
        already held out), so a pre-training step never sees the validation data.
        """

    def _inference_matrix(self) -> sp.csr_matrix:
        """The matrix handed to :meth:`_attach` for scoring (default: the seen matrix)."""
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
        sampler = make_sampler(self._hp("sampler"), counts)
        batch_size, m = self._hp("batch_size"), self._hp("n_negatives")
        shared = self._hp("loss") == "softmax"
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
        scores = module(users, candidates)                       # (B, 1 + m)
        name = self._hp("loss")
        if name == "softmax":
            sampled = self._hp("sampler") == "popularity"
            loss = LOSSES[name](scores[:, 0], scores[:, 1:],
                                log_q[:, 0] if sampled else None,
                                log_q[:, 1:] if sampled else None)
        else:
            loss = LOSSES[name](scores[:, 0], scores[:, 1:])
        reg = self._hp("reg")
        if reg and hasattr(module, "penalty"):
            loss = loss + reg * module.penalty(users, candidates)
        return loss

    def _validation_score(self, module, train: Interactions, valid: Interactions) -> float:
        """nDCG@10 of full rankings on the held-out rows (training rows masked)."""
        users = np.unique(valid.users)
        scores = self._module_scores(module, users)
        mask_rows(scores, self._matrix(train).tocsr(), users)
        idx, _ = top_k(scores, min(10, self.n_items))
        relevant = self._matrix(valid)[users].toarray() > 0
        hits = np.take_along_axis(relevant, idx, axis=1)
        return float(per_user_ndcg(hits, relevant.sum(axis=1)).mean())

    # ------------------------------------------------------------------ scoring
    def _get_module(self) -> torch.nn.Module:
        """The fitted module, rebuilt from the stored ``state_dict`` after :meth:`load`."""
        self._check_is_fitted()
        if getattr(self, "_module", None) is None:
            self._device = resolve_device(self._hp("device"))
            module = self._build_module()
            state = {key: torch.from_numpy(np.asarray(getattr(self, f"state_{n}_")))
                     for n, key in enumerate(self.state_keys_)}
            module.load_state_dict(state)
            self._module = self._for_inference(module.to(self._device))
        return self._module

    def _reset_lookups(self) -> None:
        super()._reset_lookups()
        self._module = None  # fit and load both start from a fresh module

    def _module_scores(self, module: torch.nn.Module, users: np.ndarray) -> np.ndarray:
        module.eval()
        out = np.empty((len(users), self.n_items))
        step = max(1, _SCORE_BUDGET // self.n_items)
        all_items = torch.arange(self.n_items, device=self._device)
        with torch.no_grad(), limited_threads():
            for start in range(0, len(users), step):
                block = torch.as_tensor(users[start:start + step], device=self._device)
                if hasattr(module, "score_all"):
                    scores = module.score_all(block)
                else:
                    scores = module(block, all_items.expand(len(block), -1))
                out[start:start + len(block)] = scores.double().cpu().numpy()
        return out

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        return self._module_scores(self._get_module(), np.asarray(users, dtype=np.int64))
