"""One estimator wrapper that gives a Keras model the common reclib API.

:class:`KerasRecommender` is a :class:`~reclib.models.Recommender`, the TensorFlow twin of
:class:`reclib.neural.NeuralRecommender`. A model subclasses it, takes every hyper-parameter
in ``__init__`` (the training settings ``n_epochs``, ``batch_size``, ``lr``, ``patience``,
``validation_fraction``, ``random_state`` and ``verbose`` included) and implements

``_build_model(self, dtype) -> keras.Model``
    the network, from hyper-parameters and fitted attributes only (:meth:`load` rebuilds it);
    the model has ``score_all(users)`` and is built (its weights exist) when returned;
``_batches(self, data, rng)`` and ``_batch_loss(self, model, batch)``
    one epoch of tuples of arrays, and the loss of one batch as a TensorFlow scalar.

Training runs the same epoch loop as the PyTorch side (:func:`reclib._training.run_epochs`):
Adam, one compiled gradient step per batch, validation on a per-user hold-out
(``validation_fraction``) with early stopping (``patience``) and the best weights restored,
a tqdm bar behind ``verbose`` and a :class:`FloatingPointError` when the loss stops being
finite. The weights are kept in the fitted attribute ``weights_`` as ``"<n>.<variable name>"``
(``n`` the variable's position in ``model.weights``), which the model file stores as
``weights/<name>``; the Keras model is rebuilt lazily on first use. Scoring runs a float64
copy of the model, so a user's scores do not depend on the batch they come in.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from .._training import TrainConfig, check_finite_loss, holdout_ndcg, run_epochs
from .._validation import check_float, check_int, check_random_state
from ..core.ranking import topk
from ..models.base import Recommender
from ..split import per_user_holdout

#: Score cells (users x items) computed at once when ranking.
_SCORE_BUDGET = 2**21


class KerasRecommender(Recommender):
    """Base class of the Keras recommenders (see the module docstring for the hooks).

    Attributes
    ----------
    loss_history_ : ndarray
        Mean training loss of each epoch.
    val_history_ : ndarray
        Validation nDCG@10 after each epoch (empty when ``validation_fraction == 0``).
    best_epoch_ : int
        Epoch whose weights the model holds.
    weights_ : dict of str to ndarray
        The model's weights, keyed ``"<n>.<variable name>"``.
    """

    _abstract = True

    def train_config(self) -> TrainConfig:
        """The :class:`~reclib._training.TrainConfig` of this model's settings."""
        return TrainConfig(n_epochs=self.n_epochs, lr=self.lr, patience=self.patience,
                           random_state=self.random_state, verbose=self.verbose)

    def _validate_params(self) -> None:
        self.train_config().validate()
        check_int("batch_size", self.batch_size, minimum=1)
        fraction = check_float("validation_fraction", self.validation_fraction, minimum=0.0,
                               maximum=0.5)
        if self.patience is not None and fraction == 0:
            raise ValueError(f"patience == {self.patience} needs validation data; set "
                             f"validation_fraction > 0 (e.g. 0.1) or patience=None")

    # ------------------------------------------------------------------ fitting
    def _fit(self, data) -> None:
        config = self.train_config()
        rng = check_random_state(self.random_state)
        keras.utils.set_random_seed(int(rng.integers(2**31 - 1)))
        train, valid = data, None
        if self.validation_fraction:
            train, valid = per_user_holdout(data, self.validation_fraction, rng)
        self.__dict__.pop("weights_", None)
        self._prepare(data)
        model = self._build_model("float32")
        # epsilon as in torch.optim.Adam (Keras defaults to 1e-7), so the twins train alike
        optimiser = keras.optimizers.Adam(learning_rate=self.lr, epsilon=1e-8)
        variables = model.trainable_variables

        @tf.function(reduce_retracing=True)
        def step(*batch):
            with tf.GradientTape() as tape:
                loss = self._batch_loss(model, batch)
            optimiser.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss

        def run_epoch(epoch: int) -> float:
            total, count = 0.0, 0
            for batch in self._batches(train, rng):
                loss = float(step(*batch))
                check_finite_loss(loss, epoch, count + 1, self.lr)
                total += loss
                count += 1
            return total / max(count, 1)

        validate = None
        if valid is not None:
            seen = train.to_csr(binary=True)

            def validate() -> float:
                def rank(users):
                    scores = np.asarray(model.score_all(users.astype(np.int64)))
                    return topk(scores, min(10, self.n_items), exclude=seen[users],
                                source=type(self).__name__)[0]
                return holdout_ndcg(rank, valid.users, valid.items, self.n_items)

        result = run_epochs(config, run_epoch, validate, snapshot=model.get_weights,
                            restore=model.set_weights)
        self.loss_history_ = np.asarray(result.loss_history)
        self.val_history_ = np.asarray(result.val_history)
        self.best_epoch_ = int(result.best_epoch)
        self.weights_ = {f"{n}.{v.name}": np.asarray(v.numpy()).copy()
                         for n, v in enumerate(model.weights)}
        self._model = None
        self._after_fit()

    def _weight_list(self) -> list:
        """``weights_`` in the order of ``model.weights``."""
        return [self.weights_[key] for key in sorted(self.weights_,
                                                     key=lambda k: int(k.split(".", 1)[0]))]

    def _weight(self, n: int) -> np.ndarray:
        """The ``n``-th weight array."""
        return self._weight_list()[n]

    def _prepare(self, data) -> None:
        """Store extra fitted state the model needs (default: nothing)."""

    def _after_fit(self) -> None:
        """Derive fitted attributes from the trained weights (default: nothing)."""

    def _build_model(self, dtype: str) -> keras.Model:
        raise NotImplementedError

    # ------------------------------------------------------------------ scoring
    def _reset_lookups(self, user_map=None, item_map=None) -> None:
        super()._reset_lookups(user_map, item_map)
        self._model = None

    def _get_model(self) -> keras.Model:
        """The fitted model in float64, rebuilt from the stored weights on first use."""
        self._check_is_fitted()
        if getattr(self, "_model", None) is None:
            model = self._build_model("float64")
            model.set_weights([np.asarray(w, dtype=np.float64) for w in self._weight_list()])
            self._model = model
        return self._model

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        model = self._get_model()
        users = np.asarray(users, dtype=np.int64)
        out = np.empty((len(users), self.n_items))
        step = max(1, _SCORE_BUDGET // self.n_items)
        for start in range(0, len(users), step):
            block = users[start:start + step]
            out[start:start + len(block)] = np.asarray(model.score_all(block))
        return out
