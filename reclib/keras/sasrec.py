r"""SASRec in Keras: the twin of :class:`reclib.neural.SASRec` (Kang and McAuley, 2018).

Each user's training items in time order (ties kept in row order), :math:`s_1, \dots, s_n`,
are read ``max_len`` at a time, left-padded with the index ``n_items``. The hidden state at
position :math:`t` may only look at :math:`s_1 \dots s_t`:

.. math::

    x_t = E_{s_t} + P_t, \qquad
    \mathrm{Attn}(X) = \mathrm{softmax}\!\Big(\frac{Q K^\top}{\sqrt{d / H}} + M\Big) V,
    \qquad M_{tj} = \begin{cases} 0 & j \le t \text{ and } s_j \text{ is an item} \\
    -\infty & \text{otherwise (the future, or padding)} \end{cases}

and each of the ``n_layers`` pre-norm blocks computes

.. math::

    x \leftarrow x + \mathrm{Attn}(\mathrm{LN}(x)), \qquad
    x \leftarrow x + W_2\, \mathrm{GELU}(W_1 \mathrm{LN}(x) + b_1) + b_2,

with padded positions set to zero after the embedding and after every block, a final layer
norm giving :math:`h_t`, and the score of item :math:`i` after position :math:`t`
:math:`r_{ti} = h_t^\top E_i` (the input table reused at the output). A padded query has no
key to attend to; its weights are all zero rather than the NaN of a softmax over nothing.
GELU is the exact form :math:`x\,\Phi(x)` and the layer norms use
:math:`\varepsilon = 10^{-5}`, as in PyTorch, so with the same weights the twins compute the
same function. Both losses are over the targets :math:`y_t = s_{t+1}` of the real positions:

.. math::

    \text{CE}: \ \ell = -\frac{1}{T}\sum_t \log
    \frac{e^{r_{t y_t}}}{\sum_{i=1}^{n_\text{items}} e^{r_{ti}}}, \qquad
    \text{BCE}: \ \ell = -\frac{1}{T}\sum_t \big[\log\sigma(r_{t y_t})
    + \log(1 - \sigma(r_{t z_t}))\big],

with :math:`z_t \ne y_t` one uniformly drawn item. Every weight matrix (the embedding tables
included) starts :math:`\mathcal N(0, \text{init\_std}^2)`, biases at zero, layer norms at
weight 1 and bias 0, and the padding row of :math:`E` at zero, where it stays: it reaches
neither a hidden state nor a score, so its gradient is exactly zero.

The NumPy half of the sequence machinery (sequences, training windows and their batches,
negatives, padding, histories, parameter checks) is the PyTorch side's own, shared with
:class:`reclib.neural.sasrec.SequentialRecommender`, so that with the same random state
both twins see the same batches; hence this module needs PyTorch installed as well.

``weight_decay`` is PyTorch Adam's coupled L2 term, which adds
:math:`\lambda\theta` to every parameter's gradient: here it is the penalty
:math:`\tfrac{\lambda}{2}\lVert\theta\rVert^2` added to the loss, with the same gradient
(so ``loss_history_`` includes it when :math:`\lambda > 0`).

References
----------
W.-C. Kang, J. McAuley, "Self-attentive sequential recommendation", ICDM 2018.
A. Klenitskiy, A. Vasilev, "Turning dross into gold loss: is BERT4Rec really better than
SASRec?", RecSys 2023.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from .._training import TrainConfig
from .._validation import check_int
from ..neural.sasrec import SequentialRecommender as _TorchSequential
from ..neural.sasrec import principal_init
from .estimator import KerasRecommender

#: Sequences scored at once.
_SCORE_ROWS = 256


def _normal(std: float):
    # a fresh initialiser per weight: a seeded Keras initialiser called twice on one shape
    # returns the same values, and every matrix here must be an independent draw
    return keras.initializers.RandomNormal(stddev=std)


def _dense(width: int, std: float, dtype: str) -> keras.layers.Dense:
    """``nn.Linear`` initialised as SASRec does: normal weights, zero bias."""
    return keras.layers.Dense(width, kernel_initializer=_normal(std), bias_initializer="zeros",
                              dtype=dtype)


def _layer_norm(dtype: str) -> keras.layers.LayerNormalization:
    return keras.layers.LayerNormalization(epsilon=1e-5, dtype=dtype)   # torch's epsilon


def gelu(x):
    """Exact GELU :math:`x\\,\\Phi(x)`, torch's ``nn.GELU()``.

    Written out because ``tf.nn.gelu(approximate=False)`` is accurate to only about
    :math:`5 \\cdot 10^{-9}` in float64 (TensorFlow 2.21), which would blur the float64
    comparison of the twins.
    """
    return 0.5 * x * (1.0 + tf.math.erf(x * (1.0 / math.sqrt(2.0))))


def attention_mask(padding):
    """``allowed[b, t, j]``: may position ``t`` attend to ``j``? (causal, never to padding).

    ``padding`` is ``(B, L)``, True where the sequence holds no item.
    """
    positions = tf.range(tf.shape(padding)[1])
    causal = positions[None, :] <= positions[:, None]                   # (L, L): j <= t
    return tf.logical_and(causal[None], tf.logical_not(padding)[:, None, :])   # (B, L, L)


class CausalSelfAttention(keras.layers.Layer):
    """Multi-head attention restricted by :func:`attention_mask` (heads laid out as torch's)."""

    def __init__(self, n_factors: int, n_heads: int, dropout: float, std: float, dtype: str):
        super().__init__(dtype=dtype)
        self.n_factors, self.n_heads = n_factors, n_heads
        self.qkv = _dense(3 * n_factors, std, dtype)                    # [q | k | v] columns
        self.out = _dense(n_factors, std, dtype)
        self.dropout = keras.layers.Dropout(dropout, dtype=dtype)

    def call(self, x, allowed, training=None):
        batch, length = tf.shape(x)[0], tf.shape(x)[1]
        head = self.n_factors // self.n_heads
        qkv = tf.reshape(self.qkv(x), (batch, length, 3, self.n_heads, head))
        q, k, v = (tf.transpose(a, (0, 2, 1, 3)) for a in tf.unstack(qkv, axis=2))  # (B,H,L,d/H)
        logits = tf.matmul(q, k, transpose_b=True) / math.sqrt(head)   # (B, H, L, L)
        keep = allowed[:, None, :, :]
        logits = tf.where(keep, logits, tf.constant(logits.dtype.min, logits.dtype))
        # a query with no allowed key (a padded position) gets all-zero weights, not NaN
        weights = tf.nn.softmax(logits, axis=-1) * tf.cast(keep, logits.dtype)
        out = tf.matmul(self.dropout(weights, training=training), v)   # (B, H, L, d/H)
        out = tf.reshape(tf.transpose(out, (0, 2, 1, 3)), (batch, length, self.n_factors))
        return self.out(out), weights


class TransformerBlock(keras.layers.Layer):
    """Pre-norm transformer block: x + Attn(LN x), then x + FFN(LN x)."""

    def __init__(self, n_factors: int, n_heads: int, dropout: float, std: float, dtype: str):
        super().__init__(dtype=dtype)
        self.norm_1, self.norm_2 = _layer_norm(dtype), _layer_norm(dtype)
        self.attention = CausalSelfAttention(n_factors, n_heads, dropout, std, dtype)
        self.ffn_1, self.ffn_2 = _dense(n_factors, std, dtype), _dense(n_factors, std, dtype)
        self.drop_1 = keras.layers.Dropout(dropout, dtype=dtype)
        self.drop_2 = keras.layers.Dropout(dropout, dtype=dtype)

    def call(self, x, allowed, training=None):
        attended, weights = self.attention(self.norm_1(x), allowed, training=training)
        x = x + self.drop_1(attended, training=training)
        ffn = self.ffn_2(gelu(self.ffn_1(self.norm_2(x))))
        return x + self.drop_2(ffn, training=training), weights


class SASRecModel(keras.Model):
    """Item and position embeddings, ``n_layers`` causal blocks, scores against ``E``.

    Sequences are ``(B, L)`` item indices, left-padded with ``n_items`` (the padding row of
    the embedding table, zero).
    """

    def __init__(self, n_items: int, n_factors: int, n_layers: int, n_heads: int,
                 max_len: int, dropout: float, init_std: float = 0.02,
                 dtype: str = "float32"):
        super().__init__(dtype=dtype)
        self.n_items = n_items
        self.item = keras.layers.Embedding(n_items + 1, n_factors,
                                           embeddings_initializer=_normal(init_std), dtype=dtype)
        self.position = keras.layers.Embedding(max_len, n_factors,
                                               embeddings_initializer=_normal(init_std),
                                               dtype=dtype)
        self.blocks = [TransformerBlock(n_factors, n_heads, dropout, init_std, dtype)
                       for _ in range(n_layers)]
        self.norm = _layer_norm(dtype)
        self.dropout = keras.layers.Dropout(dropout, dtype=dtype)
        self.encode(np.full((1, max_len), n_items, dtype=np.int64))   # create the weights
        table = self.item.embeddings
        table.assign(tf.tensor_scatter_nd_update(table, [[n_items]],
                                                 tf.zeros((1, n_factors), table.dtype)))

    def encode(self, seq, training=False, return_attention=False):
        """Hidden states ``(B, L, d)`` (and each layer's ``(B, H, L, L)`` weights if asked)."""
        seq = tf.convert_to_tensor(seq, dtype=tf.int64)
        padding = tf.equal(seq, self.n_items)                          # (B, L)
        real = tf.cast(tf.logical_not(padding), self.compute_dtype)[..., None]
        positions = self.position(tf.range(tf.shape(seq)[1]))[None]
        x = self.dropout(self.item(seq) + positions, training=training) * real
        allowed = attention_mask(padding)
        attention = []
        for block in self.blocks:
            x, weights = block(x, allowed, training=training)
            x = x * real
            attention.append(weights)
        hidden = self.norm(x)
        return (hidden, attention) if return_attention else hidden

    def item_embeddings(self):
        return self.item.embeddings[:self.n_items]                      # (n_items, d)

    def call(self, seq, training=False):
        """Scores of every item after every position: ``(B, L, n_items)``."""
        return tf.matmul(self.encode(seq, training=training), self.item_embeddings(),
                         transpose_b=True)

    def last_scores(self, seq):
        """Scores ``(B, n_items)`` after the last position of each sequence."""
        return tf.matmul(self.encode(seq)[:, -1], self.item_embeddings(), transpose_b=True)


def copy_torch_weights(model: SASRecModel, module) -> SASRecModel:
    """Set ``model``'s weights to those of a PyTorch :class:`~reclib.neural.sasrec.SASRecModule`.

    ``nn.Linear`` stores ``(out, in)`` and ``keras.layers.Dense`` ``(in, out)``: linear weights
    are transposed, everything else copied as it is. Every tensor of the module must find its
    place, so a change to either architecture fails here instead of copying half a model.
    """
    state = {key: value.detach().cpu().numpy() for key, value in module.state_dict().items()}
    used = set()

    def put(variable, key, transpose=False):
        if key not in state:
            raise ValueError(f"the module has no {key} for the Keras weight {variable.path}")
        value = state[key].T if transpose else state[key]
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(f"{key} has shape {value.shape}, the Keras weight "
                             f"{variable.shape}")
        variable.assign(np.asarray(value, dtype=variable.dtype))
        used.add(key)

    def linear(layer, prefix):
        put(layer.kernel, f"{prefix}.weight", transpose=True)
        put(layer.bias, f"{prefix}.bias")

    def norm(layer, prefix):
        put(layer.gamma, f"{prefix}.weight")
        put(layer.beta, f"{prefix}.bias")

    put(model.item.embeddings, "item.weight")
    put(model.position.embeddings, "position.weight")
    for n, block in enumerate(model.blocks):
        norm(block.norm_1, f"blocks.{n}.norm_1")
        norm(block.norm_2, f"blocks.{n}.norm_2")
        linear(block.attention.qkv, f"blocks.{n}.attention.qkv")
        linear(block.attention.out, f"blocks.{n}.attention.out")
        linear(block.ffn_1, f"blocks.{n}.ffn.0")
        linear(block.ffn_2, f"blocks.{n}.ffn.2")
    norm(model.norm, "norm")
    if set(state) - used:
        raise ValueError(f"no Keras weight for {sorted(set(state) - used)}")
    return model


def full_cross_entropy(hidden, item_embeddings, targets):
    """Mean of :math:`-\\log \\mathrm{softmax}(h_t E^\\top)_{y_t}` over the ``(T, d)`` states."""
    logits = tf.matmul(hidden, item_embeddings, transpose_b=True)
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits))


def one_negative_bce(hidden, item_embeddings, targets, negatives):
    """Mean of :math:`-\\log\\sigma(h_t^\\top E_{y_t}) - \\log(1-\\sigma(h_t^\\top E_{z_t}))`."""
    positive = tf.reduce_sum(hidden * tf.gather(item_embeddings, targets), -1)
    negative = tf.reduce_sum(hidden * tf.gather(item_embeddings, negatives), -1)
    return tf.reduce_mean(tf.nn.softplus(-positive) + tf.nn.softplus(negative))


class SequentialRecommender(KerasRecommender):
    """Next-item models over each user's time-ordered history, in Keras.

    The twin of :class:`reclib.neural.sasrec.SequentialRecommender`, whose NumPy methods it
    shares. The model of ``_build_model`` maps ``(B, L)`` left-padded sequences to hidden
    states through ``encode(seq, training)`` and has ``item_embeddings()`` and
    ``last_scores(seq)``.

    Attributes
    ----------
    sequence_items_ : ndarray of int
        Every user's training items in time order, users one after the other.
    sequence_indptr_ : ndarray of int
        User ``u``'s sequence is ``sequence_items_[sequence_indptr_[u]:sequence_indptr_[u+1]]``.
    """

    _abstract = True
    # the shared batches are built as torch tensors on this device and handed on as NumPy
    _device = "cpu"

    _validate_params = _TorchSequential._validate_params
    _sequences = _TorchSequential._sequences
    _sequence = _TorchSequential._sequence
    _pad = _TorchSequential._pad
    _windows = _TorchSequential._windows
    _history_indices = _TorchSequential._history_indices
    score_histories = _TorchSequential.score_histories
    recommend_histories = _TorchSequential.recommend_histories

    def train_config(self) -> TrainConfig:
        return TrainConfig(n_epochs=self.n_epochs, lr=self.lr, weight_decay=self.weight_decay,
                           patience=self.patience, random_state=self.random_state,
                           verbose=self.verbose)

    def _prepare(self, data) -> None:
        self.sequence_items_, self.sequence_indptr_ = self._sequences(data)
        self._item_start = None
        if self.item_init == "embeddings":
            from ..text.content import item_embedding_matrix
            vectors = item_embedding_matrix(data, f"{type(self).__name__}(item_init='embeddings')")
            self._item_start = principal_init(vectors, self.n_factors, self.init_std)

    def _start_items(self, model: keras.Model) -> keras.Model:
        """``item_init="embeddings"``: the model built for training starts from the vectors."""
        start = self.__dict__.pop("_item_start", None)     # consumed by the training model
        if start is not None:
            table = model.item.embeddings
            table.assign(tf.concat([tf.constant(start, table.dtype), table[self.n_items:]], 0))
        return model

    def _batches(self, train, rng):
        """The PyTorch side's batches (same windows, order and negatives), as NumPy arrays."""
        for batch in _TorchSequential._batches(self, train, rng):
            yield tuple(part.numpy() for part in batch)

    def _batch_loss(self, model, batch):
        seq, target = batch[0], batch[1]
        real = tf.not_equal(target, self.n_items)
        hidden = tf.boolean_mask(model.encode(seq, training=True), real)   # (T, d)
        embeddings = model.item_embeddings()
        if self.loss == "ce":
            loss = full_cross_entropy(hidden, embeddings, tf.boolean_mask(target, real))
        else:
            loss = one_negative_bce(hidden, embeddings, tf.boolean_mask(target, real),
                                    tf.boolean_mask(batch[2], real))
        if self.weight_decay:  # torch Adam's coupled L2: gradient weight_decay * theta
            loss += 0.5 * self.weight_decay * tf.add_n(
                [tf.reduce_sum(tf.square(v)) for v in model.trainable_variables])
        return loss

    def fitted_model(self) -> keras.Model:
        """The fitted network in float64, e.g. to count or inspect its weights."""
        return self._get_model()

    def _score_sequences(self, rows: list) -> np.ndarray:
        model = self._get_model()
        out = np.empty((len(rows), self.n_items))
        for start in range(0, len(rows), _SCORE_ROWS):
            block = self._pad(rows[start:start + _SCORE_ROWS])
            out[start:start + len(block)] = np.asarray(model.last_scores(block))
        return out

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        """Scores after each user's whole training history (its last ``max_len`` items)."""
        return self._score_sequences([self._sequence(u) for u in np.asarray(users)])


class KerasSASRec(SequentialRecommender):
    """Self-attentive sequential recommender in Keras (see the module docstring for the maths).

    The hyper-parameters ``n_factors``, ``n_layers``, ``n_heads``, ``max_len``,
    ``dropout``, ``init_std``, ``loss`` (``"ce"`` or ``"bce"``), ``item_init``, ``n_epochs``,
    ``batch_size`` (in sequences), ``lr`` and ``verbose`` have the names, defaults and meanings
    of :class:`reclib.neural.SASRec`'s; ``patience`` and ``validation_fraction`` take only
    None and 0 there too (a random hold-out would cut holes in the sequences). There is no
    ``device``: TensorFlow places the work. What differs:

    Parameters
    ----------
    weight_decay : float
        PyTorch Adam's coupled L2 term :math:`\\lambda`, as the penalty
        :math:`\\tfrac{\\lambda}{2}\\lVert\\theta\\rVert^2` on every weight added to the loss
        (the same gradient, :math:`\\lambda\\theta`).
    random_state : int or None
        Seeds Keras and TensorFlow (initialisation, dropout masks) and the NumPy generator
        of the windows and negatives.

    Attributes
    ----------
    sequence_items_, sequence_indptr_ : ndarray
        The users' training sequences (see :class:`SequentialRecommender`).
    loss_history_ : ndarray
    weights_ : dict of str to ndarray
    """

    def __init__(self, n_factors: int = 64, n_layers: int = 2, n_heads: int = 1,
                 max_len: int = 50, dropout: float = 0.2, init_std: float = 0.02,
                 loss: str = "ce", item_init: str = "random", n_epochs: int = 25,
                 batch_size: int = 128, lr: float = 2e-3, weight_decay: float = 0.0,
                 patience: int | None = None, validation_fraction: float = 0.0,
                 random_state: int | None = 0, verbose: bool = False):
        self.n_factors = n_factors
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.max_len = max_len
        self.dropout = dropout
        self.init_std = init_std
        self.loss = loss
        self.item_init = item_init
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.random_state = random_state
        self.verbose = verbose

    def _validate_params(self) -> None:
        super()._validate_params()
        for name in ("n_layers", "n_heads"):
            check_int(name, getattr(self, name), minimum=1)
        if self.n_factors % self.n_heads:
            raise ValueError(f"n_factors == {self.n_factors} is not divisible by n_heads == "
                             f"{self.n_heads}")

    def _build_model(self, dtype: str) -> keras.Model:
        return self._start_items(SASRecModel(self.n_items, self.n_factors, self.n_layers,
                                             self.n_heads, self.max_len, self.dropout,
                                             self.init_std, dtype=dtype))

    def attention_weights(self, user_id) -> tuple[np.ndarray, list]:
        """The items of a user's last ``max_len`` and each layer's ``(H, L, L)`` weights.

        Rows are query positions, columns the positions attended to; the rows and columns of
        padding are dropped.
        """
        seq = self._sequence(int(self.user_index([user_id])[0]))[-self.max_len:]
        layers = self._get_model().encode(self._pad([seq]), return_attention=True)[1]
        n = len(seq)
        return self.item_ids_[seq], [np.asarray(w)[0, :, -n:, -n:] for w in layers]
