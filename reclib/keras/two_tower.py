r"""The two-tower retrieval model in Keras: the twin of :class:`reclib.neural.TwoTower`.

Each tower sums the embeddings of each field of its side (:mod:`reclib.features`; ids only
when the data carry no feature tables or ``features=None``), concatenates the fields and runs
an MLP; the score is the scaled cosine :math:`s(u, i) = \langle u, v_i \rangle / \tau`. It is
trained with the in-batch softmax and the log-Q correction, duplicates of a positive left out
of its negatives, exactly as the PyTorch twin:

.. math::

    L = -\frac{1}{B} \sum_{b=1}^{B} \log
        \frac{e^{s(u_b, i_b) - \log Q(i_b)}}{\sum_{c=1}^{B} e^{s(u_b, i_c) - \log Q(i_c)}}.

References
----------
X. Yi, J. Yang, L. Hong, D. Z. Cheng, L. Heldt, A. Kumthekar, Z. Zhao, L. Wei, E. Chi,
"Sampling-bias-corrected neural modeling for large corpus item recommendations", RecSys 2019.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from .._validation import check_float, check_int
from ..features import build_layout
from .estimator import KerasRecommender


def _dense(width_in: int, width: int, activation, dtype: str) -> keras.layers.Dense:
    """A dense layer initialised like PyTorch's ``nn.Linear`` (uniform on +-1/sqrt(fan_in))."""
    bound = 1.0 / np.sqrt(width_in)
    init = keras.initializers.RandomUniform(-bound, bound)
    return keras.layers.Dense(width, activation=activation, kernel_initializer=init,
                              bias_initializer=init, dtype=dtype)


class TwoTowerModel(keras.Model):
    """Unit user and item vectors from the field layout; ``score_all(users) -> (B, n_items)``."""

    def __init__(self, layout: dict, n_features: int, n_factors: int, layers, out: int,
                 temperature: float, dtype: str = "float32", std: float = 0.05):
        super().__init__(dtype=dtype)
        # one table serves both towers: user-side and item-side feature ids never overlap
        self.embedding = self.add_weight(shape=(n_features, n_factors), name="embedding",
                                         initializer=keras.initializers.RandomNormal(stddev=std),
                                         dtype=dtype)
        self.temperature = temperature
        self.inputs_ = {}
        self.towers = {}
        for side in ("user", "item"):
            slot_field = np.asarray(layout[f"{side}_slot_field"])
            local = np.unique(slot_field, return_inverse=True)[1]           # 0 .. F_side - 1
            one_hot = np.eye(local.max() + 1)[local]                        # (S, F_side)
            self.inputs_[side] = (tf.constant(layout[f"{side}_feature_index"], tf.int64),
                                  tf.constant(layout[f"{side}_feature_value"], dtype),
                                  tf.constant(one_hot, dtype))
            width, parts = one_hot.shape[1] * n_factors, []
            for w in layers:
                parts.append(_dense(width, w, "relu", dtype))
                width = w
            parts.append(_dense(width, out, None, dtype))
            self.towers[side] = parts
        self.user_layers, self.item_layers = self.towers["user"], self.towers["item"]
        self.score_all(np.zeros(1, dtype=np.int64))                         # create weights

    def vectors(self, side: str, rows):
        """Unit vectors of the given user or item indices: (B, out)."""
        index, value, one_hot = self.inputs_[side]
        slots = tf.gather(self.embedding, tf.gather(index, rows))           # (B, S, d)
        slots = slots * tf.gather(value, rows)[..., None]                   # v_i x_i
        fields = tf.einsum("bsd,sf->bfd", slots, one_hot)                   # (B, F, d)
        h = tf.reshape(fields, (tf.shape(fields)[0], -1))                   # (B, F * d)
        for layer in self.towers[side]:
            h = layer(h)
        return tf.math.l2_normalize(h, axis=-1)

    def score_all(self, users):
        n_items = self.inputs_["item"][0].shape[0]
        items = self.vectors("item", tf.range(n_items, dtype=tf.int64))     # (n_items, out)
        return self.vectors("user", users) @ tf.transpose(items) / self.temperature


def in_batch_loss(u, v, items, log_q, temperature: float, correct: bool):
    """In-batch softmax of (B, d) user and item vectors; other rows' items are the negatives."""
    logits = (u @ tf.transpose(v)) / temperature                            # (B, B)
    if correct:
        logits = logits - log_q[None, :]
    eye = tf.eye(tf.shape(items)[0], dtype=tf.bool)
    same = tf.logical_and(tf.equal(items[:, None], items[None, :]), tf.logical_not(eye))
    logits = tf.where(same, tf.constant(-np.inf, logits.dtype), logits)    # not negatives
    positive = tf.linalg.diag_part(logits)
    return -tf.reduce_mean(positive - tf.reduce_logsumexp(logits, axis=1))


class KerasTwoTower(KerasRecommender):
    r"""Two-tower retrieval over ids and side features, in Keras, with in-batch softmax.

    Hyper-parameters have the names and meanings of :class:`reclib.neural.TwoTower`.

    Parameters
    ----------
    n_factors : int
        Length of each field embedding.
    layers : list of int
        Hidden widths of each tower's MLP (empty: one linear map).
    out : int
        Length of the user and item vectors.
    temperature : float
        :math:`\tau > 0`.
    log_q : bool
        Apply the log-Q correction.
    features : "auto", None or list of str
        As for :class:`reclib.neural.FM`.
    n_epochs, batch_size, lr, random_state, verbose
        Training (Adam); ``random_state`` seeds Keras, TensorFlow and the batches.

    Attributes
    ----------
    user_vectors_, item_vectors_ : ndarray of shape (n_users, out), (n_items, out)
        The towers' outputs after training (what a serving index holds).
    """

    def __init__(self, n_factors: int = 64, layers=[128], out: int = 64,
                 temperature: float = 0.1, log_q: bool = True, features="auto",
                 n_epochs: int = 20, batch_size: int = 512, lr: float = 2e-3,
                 patience: int | None = None, validation_fraction: float = 0.0,
                 random_state=None, verbose: bool = False):
        self.n_factors = n_factors
        self.layers = layers
        self.out = out
        self.temperature = temperature
        self.log_q = log_q
        self.features = features
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.verbose = verbose

    def _validate_params(self) -> None:
        super()._validate_params()
        check_int("n_factors", self.n_factors, minimum=1)
        check_int("out", self.out, minimum=1)
        check_float("temperature", self.temperature, strictly_positive=True)
        if any(isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 1
               for w in self.layers):
            raise ValueError(f"layers == {self.layers!r}, must be a list of positive widths")
        features = self.features
        if not (features is None or features == "auto" or
                (isinstance(features, (list, tuple)) and all(isinstance(c, str) for c in features))):
            raise TypeError(f"features == {features!r}, must be 'auto', None or a list of "
                            f"column names")

    def _prepare(self, data) -> None:
        layout = build_layout(data, self.features, owner=type(self).__name__)
        self.field_names_ = layout.field_names
        self.n_features_ = int(layout.n_features)
        for side in ("user", "item"):
            setattr(self, f"{side}_feature_index_", getattr(layout, f"{side}_index"))
            setattr(self, f"{side}_feature_value_", getattr(layout, f"{side}_value"))
            setattr(self, f"{side}_slot_field_", getattr(layout, f"{side}_slot_field"))

    def _build_model(self, dtype: str) -> keras.Model:
        layout = {f"{side}_{part}": np.asarray(getattr(self, f"{side}_{part}_"))
                  for side in ("user", "item")
                  for part in ("feature_index", "feature_value", "slot_field")}
        return TwoTowerModel(layout, self.n_features_, self.n_factors,
                             [int(w) for w in self.layers], self.out, self.temperature, dtype)

    def _batches(self, data, rng):
        """Shuffled positive pairs with :math:`\\log Q` of their items."""
        counts = np.bincount(data.items, minlength=self.n_items)
        log_q = np.log(np.maximum(counts, 1) / data.n_interactions).astype(np.float32)
        order = rng.permutation(data.n_interactions)
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            items = data.items[rows].astype(np.int64)
            yield data.users[rows].astype(np.int64), items, log_q[items]

    def _batch_loss(self, model, batch):
        users, items, log_q = batch
        u = model.vectors("user", users)                                   # (B, d)
        v = model.vectors("item", items)                                   # (B, d)
        return in_batch_loss(u, v, items, log_q, self.temperature, self.log_q)

    def _after_fit(self) -> None:
        model = self._get_model()
        self.user_vectors_ = np.asarray(model.vectors("user", np.arange(self.n_users)))
        self.item_vectors_ = np.asarray(model.vectors("item", np.arange(self.n_items)))

    def _item_vectors(self) -> np.ndarray:
        return self.item_vectors_
