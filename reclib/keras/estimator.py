"""One estimator wrapper that gives a Keras model the common reclib API.

:class:`KerasRecommender` is a :class:`~reclib.models.Recommender`, the TensorFlow twin of
:class:`reclib.neural.NeuralRecommender`. A model subclasses it, stores its hyper-parameters in
``__init__`` and implements

``_build_model(self, dtype) -> keras.Model``
    the network, from hyper-parameters and fitted attributes only (:meth:`load` rebuilds it);
    the model has ``score_all(users)`` and is built (its weights exist) when returned;
``_batches(self, data, rng)`` and ``_batch_loss(self, model, batch)``
    one epoch of tuples of arrays, and the loss of one batch as a TensorFlow scalar.

Training is a plain loop: Adam, one compiled gradient step per batch, a tqdm bar behind
``verbose`` and a :class:`FloatingPointError` when the loss stops being finite. The weights are
stored as NumPy arrays in fitted attributes ``weight_0_``, ``weight_1_``, ..., so ``save``/
``load`` use the base class's ``.npz`` format (no pickle) and the Keras model is rebuilt lazily
on first use. Scoring runs a float64 copy of the model, so a user's scores do not depend on the
batch they come in.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from .._validation import check_float, check_int, check_random_state
from ..models.base import Recommender

#: Score cells (users x items) computed at once when ranking.
_SCORE_BUDGET = 2**21


class KerasRecommender(Recommender):
    """Base class of the Keras recommenders (see the module docstring for the hooks).

    Attributes
    ----------
    loss_history_ : ndarray
        Mean training loss of each epoch.
    n_weights_ : int
        Number of weight arrays, stored as ``weight_0_``, ``weight_1_``, ...
    """

    def _validate_params(self) -> None:
        check_int("n_epochs", self.n_epochs, minimum=1)
        check_int("batch_size", self.batch_size, minimum=1)
        check_float("lr", self.lr, strictly_positive=True)
        check_random_state(self.random_state)

    # ------------------------------------------------------------------ fitting
    def _fit(self, data) -> None:
        rng = check_random_state(self.random_state)
        keras.utils.set_random_seed(int(rng.integers(2**31 - 1)))
        for name in [k for k in vars(self) if k.startswith("weight_") and k.endswith("_")]:
            delattr(self, name)
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

        history = []
        for epoch in tqdm(range(1, self.n_epochs + 1), disable=not self.verbose,
                          desc="epochs"):
            total, count = 0.0, 0
            for batch in self._batches(data, rng):
                loss = float(step(*batch))
                if not np.isfinite(loss):
                    raise FloatingPointError(
                        f"the training loss became {loss} at epoch {epoch} (batch {count + 1}) "
                        f"with lr == {self.lr}; the model diverged. Lower lr, raise the "
                        f"regularisation, or check the inputs for NaN/inf")
                total += loss
                count += 1
            history.append(total / max(count, 1))
        self.loss_history_ = np.asarray(history)
        weights = model.get_weights()
        self.n_weights_ = len(weights)
        for n, w in enumerate(weights):
            setattr(self, f"weight_{n}_", np.asarray(w).copy())
        self._model = None
        self._after_fit()

    def _prepare(self, data) -> None:
        """Store extra fitted state the model needs (default: nothing)."""

    def _after_fit(self) -> None:
        """Derive fitted attributes from the trained weights (default: nothing)."""

    def _build_model(self, dtype: str) -> keras.Model:
        raise NotImplementedError

    # ------------------------------------------------------------------ scoring
    def _reset_lookups(self) -> None:
        super()._reset_lookups()
        self._model = None

    def _get_model(self) -> keras.Model:
        """The fitted model in float64, rebuilt from the stored weights on first use."""
        self._check_is_fitted()
        if getattr(self, "_model", None) is None:
            model = self._build_model("float64")
            model.set_weights([np.asarray(getattr(self, f"weight_{n}_"), dtype=np.float64)
                               for n in range(self.n_weights_)])
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
