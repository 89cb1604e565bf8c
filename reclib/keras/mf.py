r"""Generalised matrix factorisation in Keras: the twin of :class:`reclib.neural.GMF`.

.. math::

    \hat y_{ui} = h^\top (p_u \odot q_i) + b

with :math:`h = \mathbf 1, b = 0` this is plain matrix factorisation,
:math:`\hat y_{ui} = p_u^\top q_i`. It is trained like its PyTorch twin: sampled uniform
negatives, binary cross-entropy or BPR (:mod:`reclib.neural.losses`), an optional penalty
``reg`` times the mean squared norm of the batch's embeddings, and Adam. The initialisation
matches too (embeddings :math:`\mathcal N(0, 0.01^2)`; :math:`h, b` uniform on
:math:`\pm 1/\sqrt f`, PyTorch's default for a linear layer).

References
----------
X. He, L. Liao, H. Zhang, L. Nie, X. Hu, T.-S. Chua, "Neural collaborative filtering",
WWW 2017.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from .._validation import check_choice, check_float, check_int
from .estimator import KerasRecommender


class GMFModel(keras.Model):
    """Scores ``(users (B,), items (B, c)) -> (B, c)``; ``score_all(users) -> (B, n_items)``."""

    def __init__(self, n_users: int, n_items: int, n_factors: int, dtype: str = "float32",
                 std: float = 0.01):
        super().__init__(dtype=dtype)
        normal = keras.initializers.RandomNormal(stddev=std)
        bound = 1.0 / np.sqrt(n_factors)
        uniform = keras.initializers.RandomUniform(-bound, bound)
        self.user = keras.layers.Embedding(n_users, n_factors, embeddings_initializer=normal,
                                           dtype=dtype)
        self.item = keras.layers.Embedding(n_items, n_factors, embeddings_initializer=normal,
                                           dtype=dtype)
        self.output_layer = keras.layers.Dense(1, kernel_initializer=uniform,
                                               bias_initializer=uniform, dtype=dtype)  # h, b
        self.n_items = n_items
        self(np.zeros(1, dtype=np.int64), np.zeros((1, 1), dtype=np.int64))  # create weights

    def call(self, users, items):
        product = self.user(users)[:, None, :] * self.item(items)          # (B, c, f)
        return tf.squeeze(self.output_layer(product), -1)                  # (B, c)

    def score_all(self, users):
        h, b = self.output_layer.kernel, self.output_layer.bias            # (f, 1), (1,)
        weighted = self.user(users) * tf.transpose(h)                      # (B, f): p_u * h
        return weighted @ tf.transpose(self.item.embeddings) + b           # (B, n_items)

    def penalty(self, users, items):
        """Mean squared norm of the embeddings in the batch (as the PyTorch twin)."""
        return (tf.reduce_mean(tf.reduce_sum(self.user(users) ** 2, -1))
                + tf.reduce_mean(tf.reduce_sum(self.item(items) ** 2, -1)))


def ranking_loss(name: str, positive, negative):
    """BCE or BPR of positive scores (B,) against negative scores (B, m), as in PyTorch."""
    if name == "bpr":
        return -tf.reduce_mean(tf.math.log_sigmoid(positive[:, None] - negative))
    total = (-tf.reduce_sum(tf.math.log_sigmoid(positive))
             - tf.reduce_sum(tf.math.log_sigmoid(-negative)))
    return total / tf.cast(tf.size(negative) + tf.size(positive), total.dtype)


class KerasGMF(KerasRecommender):
    r"""Generalised matrix factorisation, :math:`\hat y_{ui} = h^\top (p_u \odot q_i) + b`, in Keras.

    Hyper-parameters have the names and meanings of :class:`reclib.neural.GMF`.

    Parameters
    ----------
    n_factors : int
        :math:`f`, the embedding size.
    n_epochs, batch_size, lr : training (Adam)
    reg : float
        Weight of the mean squared embedding norm of each batch, added to the loss.
    loss : {"bce", "bpr"}
    n_negatives : int
        Uniformly sampled negatives per positive.
    random_state : int, optional
        Seeds Keras, TensorFlow and the batches (``keras.utils.set_random_seed``).
    verbose : bool
        A tqdm bar over the epochs.

    Attributes
    ----------
    loss_history_ : ndarray
    weights_ : dict of str to ndarray
        User embeddings, item embeddings, :math:`h` and :math:`b` (in that order).
    """

    def __init__(self, n_factors: int = 64, n_epochs: int = 20, batch_size: int = 1024,
                 lr: float = 1e-3, reg: float = 0.0, loss: str = "bce", n_negatives: int = 4,
                 patience: int | None = None, validation_fraction: float = 0.0,
                 random_state=None, verbose: bool = False):
        self.n_factors = n_factors
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.reg = reg
        self.loss = loss
        self.n_negatives = n_negatives
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.verbose = verbose

    def _validate_params(self) -> None:
        super()._validate_params()
        check_int("n_factors", self.n_factors, minimum=1)
        check_float("reg", self.reg, minimum=0.0)
        check_choice("loss", self.loss, {"bce", "bpr"})
        check_int("n_negatives", self.n_negatives, minimum=1)

    def _build_model(self, dtype: str) -> keras.Model:
        return GMFModel(self.n_users, self.n_items, self.n_factors, dtype=dtype)

    def _batches(self, data, rng):
        """Shuffled positives, each with ``n_negatives`` uniformly sampled items."""
        order = rng.permutation(data.n_interactions)
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            negatives = rng.integers(0, self.n_items, size=(len(rows), self.n_negatives))
            candidates = np.concatenate([data.items[rows, None], negatives], axis=1)
            yield data.users[rows].astype(np.int64), candidates.astype(np.int64)

    def _batch_loss(self, model, batch):
        users, candidates = batch
        scores = model(users, candidates)                                  # (B, 1 + m)
        loss = ranking_loss(self.loss, scores[:, 0], scores[:, 1:])
        if self.reg:
            loss = loss + self.reg * model.penalty(users, candidates)
        return loss

    def _item_vectors(self) -> np.ndarray:
        return np.asarray(self._weight(1), dtype=np.float64)
