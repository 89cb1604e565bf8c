r"""SASRec: self-attentive sequential recommendation (Kang and McAuley, 2018).

Each user's training interactions, in time order (ties kept in row order), form a sequence
:math:`s_1, \dots, s_n` of item indices. The model reads the last ``max_len`` of them and,
at every position :math:`t`, predicts the next item from a hidden state :math:`h_t` that may
only look at :math:`s_1 \dots s_t`:

.. math::

    x_t = E_{s_t} + P_t, \qquad
    \mathrm{Attn}(X) = \mathrm{softmax}\!\Big(\frac{Q K^\top}{\sqrt{d / H}} + M\Big) V,
    \qquad M_{tj} = \begin{cases} 0 & j \le t \text{ and } s_j \text{ is an item} \\
    -\infty & \text{otherwise (the future, or padding)} \end{cases}

with learned item embeddings :math:`E`, learned positions :math:`P`, ``n_layers`` pre-norm
blocks of ``n_heads``-head causal attention and a position-wise feed-forward layer, and the
score of item :math:`i` after position :math:`t` is :math:`r_{ti} = h_t^\top E_i` (the input
embedding table is reused at the output).

Two losses over the targets :math:`y_t = s_{t+1}`:

.. math::

    \text{CE (default)}: \quad \ell = -\frac{1}{T}\sum_t \log
    \frac{e^{r_{t y_t}}}{\sum_{i=1}^{n_\text{items}} e^{r_{ti}}}, \qquad
    \text{BCE}: \quad \ell = -\frac{1}{T}\sum_t \big[\log\sigma(r_{t y_t})
    + \log(1 - \sigma(r_{t z_t}))\big],

where CE normalises over the *full* catalogue and BCE, the original paper's loss, compares
the target with one uniformly sampled item :math:`z_t \ne y_t`. Klenitskiy and Vasilev
(2023) showed that the switch to full cross-entropy alone lifts SASRec well above BERT4Rec.

With ``item_init="embeddings"`` the item table starts from given item vectors :math:`e_i`
(for example the text embeddings of :mod:`reclib.text`) instead of random numbers: their
first :math:`d` principal components, scaled to the standard deviation ``init_std`` of the
random start,

.. math::

    E_i \leftarrow \frac{\sigma_0}{s} V_d^\top (e_i - \bar e), \qquad
    s = \operatorname{std}\big(V_d^\top (e_j - \bar e)\big)_{j, f},

with :math:`V_d` the top :math:`d` right singular vectors of the centred matrix of the
:math:`e_i` and :math:`\sigma_0` = ``init_std``; training then moves them like any weight.
Items that are rare in training start next to items with similar descriptions.

The sequence machinery here (sequences from fitted data, training windows, both losses,
scoring from a user's history or from any given one) is shared with
:class:`~reclib.neural.GRU4Rec`, which only swaps the encoder.

References
----------
W.-C. Kang, J. McAuley, "Self-attentive sequential recommendation", ICDM 2018.
A. Klenitskiy, A. Vasilev, "Turning dross into gold loss: is BERT4Rec really better than
SASRec?", RecSys 2023.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..core.ranking import topk
from .._validation import check_choice, check_float, check_int, check_random_state
from ..interactions import Interactions
from ._train import limited_threads
from .estimator import NeuralRecommender


class Dropout(nn.Module):
    """Inverted dropout drawing from its own ``torch.Generator`` (no global seeding)."""

    def __init__(self, p: float, generator: torch.Generator | None = None):
        super().__init__()
        self.p, self.generator = p, generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.rand(x.shape, generator=self.generator, device=x.device) >= self.p
        return x * keep.to(x.dtype) / (1.0 - self.p)


def attention_mask(padding: torch.Tensor) -> torch.Tensor:
    """``allowed[b, t, j]``: may position ``t`` attend to ``j``? (causal, never to padding).

    ``padding`` is ``(B, L)``, True where the sequence holds no item.
    """
    length = padding.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=padding.device).tril()
    return causal[None, :, :] & ~padding[:, None, :]                 # (B, L, L)


class CausalSelfAttention(nn.Module):
    """Multi-head attention restricted by :func:`attention_mask`."""

    def __init__(self, n_factors: int, n_heads: int, dropout: float, generator=None):
        super().__init__()
        self.n_heads = n_heads
        self.qkv = nn.Linear(n_factors, 3 * n_factors)
        self.out = nn.Linear(n_factors, n_factors)
        self.dropout = Dropout(dropout, generator)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor):
        batch, length, dim = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.n_heads, dim // self.n_heads).unbind(2)
        q, k, v = (a.transpose(1, 2) for a in (q, k, v))            # (B, H, L, d/H)
        logits = q @ k.transpose(-1, -2) / math.sqrt(dim // self.n_heads)   # (B, H, L, L)
        keep = allowed[:, None, :, :]
        logits = logits.masked_fill(~keep, torch.finfo(logits.dtype).min)
        # a query with no allowed key (a padded position) gets all-zero weights, not NaN
        weights = torch.softmax(logits, dim=-1) * keep.to(logits.dtype)
        out = (self.dropout(weights) @ v).transpose(1, 2).reshape(batch, length, dim)
        return self.out(out), weights


class _Block(nn.Module):
    """Pre-norm transformer block: x + Attn(LN x), then x + FFN(LN x)."""

    def __init__(self, n_factors: int, n_heads: int, dropout: float, generator=None):
        super().__init__()
        self.norm_1, self.norm_2 = nn.LayerNorm(n_factors), nn.LayerNorm(n_factors)
        self.attention = CausalSelfAttention(n_factors, n_heads, dropout, generator)
        self.ffn = nn.Sequential(nn.Linear(n_factors, n_factors), nn.GELU(),
                                 nn.Linear(n_factors, n_factors))
        self.drop_1, self.drop_2 = Dropout(dropout, generator), Dropout(dropout, generator)

    def forward(self, x, allowed):
        attended, weights = self.attention(self.norm_1(x), allowed)
        x = x + self.drop_1(attended)
        return x + self.drop_2(self.ffn(self.norm_2(x))), weights


class SASRecModule(nn.Module):
    """Item and position embeddings, ``n_layers`` causal blocks, scores against ``E``.

    Sequences are ``(B, L)`` item indices, left-padded with ``n_items`` (the padding row of
    the embedding table, kept at zero).
    """

    def __init__(self, n_items: int, n_factors: int, n_layers: int, n_heads: int,
                 max_len: int, dropout: float, init_std: float = 0.02,
                 generator: torch.Generator | None = None, init_generator=None):
        super().__init__()
        self.n_items = n_items
        self.item = nn.Embedding(n_items + 1, n_factors, padding_idx=n_items)
        self.position = nn.Embedding(max_len, n_factors)
        self.blocks = nn.ModuleList(_Block(n_factors, n_heads, dropout, generator)
                                    for _ in range(n_layers))
        self.norm = nn.LayerNorm(n_factors)
        self.dropout = Dropout(dropout, generator)
        for name, param in self.named_parameters():
            if param.dim() > 1:
                nn.init.normal_(param, std=init_std, generator=init_generator)
            elif name.endswith("bias"):
                nn.init.zeros_(param)
        with torch.no_grad():
            self.item.weight[n_items].zero_()

    def encode(self, seq: torch.Tensor, return_attention: bool = False):
        """Hidden states ``(B, L, d)`` (and each layer's ``(B, H, L, L)`` weights if asked)."""
        padding = seq == self.n_items                                  # (B, L)
        positions = torch.arange(seq.shape[1], device=seq.device)
        x = self.dropout(self.item(seq) + self.position(positions)[None])
        x = x * (~padding)[..., None].to(x.dtype)
        allowed = attention_mask(padding)
        attention = []
        for block in self.blocks:
            x, weights = block(x, allowed)
            x = x * (~padding)[..., None].to(x.dtype)
            attention.append(weights)
        hidden = self.norm(x)
        return (hidden, attention) if return_attention else hidden

    def item_embeddings(self) -> torch.Tensor:
        return self.item.weight[:self.n_items]                        # (n_items, d)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """Scores of every item after every position: ``(B, L, n_items)``."""
        return self.encode(seq) @ self.item_embeddings().T


def principal_init(vectors: np.ndarray, n_factors: int, std: float) -> np.ndarray:
    """The top ``n_factors`` principal-component scores of ``vectors``, scaled to ``std``.

    ``vectors`` is ``(n_items, dim)`` with ``dim >= n_factors``; the result has the same rows,
    ``n_factors`` columns, mean zero and overall standard deviation ``std``.
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2 or vectors.shape[1] < n_factors:
        raise ValueError(f"item_init == 'embeddings' needs item vectors of at least n_factors == "
                         f"{n_factors} dimensions; they have shape {vectors.shape}")
    centred = vectors - vectors.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    scores = centred @ vt[:n_factors].T
    spread = scores.std()
    if spread == 0:
        raise ValueError("item_init == 'embeddings': every item has the same vector")
    return scores * (std / spread)


def full_cross_entropy(hidden: torch.Tensor, item_embeddings: torch.Tensor,
                       targets: torch.Tensor) -> torch.Tensor:
    """Mean of :math:`-\\log \\mathrm{softmax}(h_t E^\\top)_{y_t}` over the ``(T, d)`` states."""
    return F.cross_entropy(hidden @ item_embeddings.T, targets)


def one_negative_bce(hidden: torch.Tensor, item_embeddings: torch.Tensor,
                     targets: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """Mean of :math:`-\\log\\sigma(h_t^\\top E_{y_t}) - \\log(1-\\sigma(h_t^\\top E_{z_t}))`."""
    positive = (hidden * item_embeddings[targets]).sum(-1)
    negative = (hidden * item_embeddings[negatives]).sum(-1)
    return (F.softplus(-positive) + F.softplus(negative)).mean()


class SequentialRecommender(NeuralRecommender):
    """Next-item models over each user's time-ordered history (SASRec, GRU4Rec).

    Subclasses give ``_build_module``; the module maps ``(B, L)`` left-padded sequences to
    hidden states through ``encode`` and exposes ``item_embeddings()``.

    Attributes
    ----------
    sequence_items_ : ndarray of int
        Every user's training items in time order, users one after the other.
    sequence_indptr_ : ndarray of int
        User ``u``'s sequence is ``sequence_items_[sequence_indptr_[u]:sequence_indptr_[u+1]]``.
    """

    _abstract = True

    def _validate_params(self) -> None:
        # not the base class's checks: its loss names are for sampled (user, item) pairs
        self.train_config().validate()
        check_int("batch_size", self.batch_size, minimum=1)
        check_int("max_len", self.max_len, minimum=1)
        if self.validation_fraction != 0 or self.patience is not None:
            raise ValueError(f"validation_fraction == {self.validation_fraction!r} and patience "
                             f"== {self.patience!r}: sequence models take neither (a random "
                             f"hold-out would cut holes in the sequences); choose n_epochs on "
                             f"leave_last_out's validation item instead")
        check_int("n_factors", self.n_factors, minimum=1)
        check_float("dropout", self.dropout, minimum=0.0, maximum=0.95)
        check_float("init_std", self.init_std, strictly_positive=True)
        check_choice("loss", self.loss, {"ce", "bce"})
        check_choice("item_init", self.item_init, {"random", "embeddings"})

    # -- the hooks of NeuralRecommender ------------------------------------------------
    def _prepare(self, data: Interactions) -> None:
        self.sequence_items_, self.sequence_indptr_ = self._sequences(data)
        seed = int(check_random_state(self.random_state).integers(2**62))
        self._generator = torch.Generator(device=self._device).manual_seed(seed)
        self._init_generator = torch.Generator().manual_seed(seed + 1)

    def _sequences(self, data: Interactions) -> tuple[np.ndarray, np.ndarray]:
        """Items of every user in time order (ties in row order), and the users' offsets."""
        if data.timestamps is None:
            raise ValueError(f"{type(self).__name__} needs timestamps to order each user's "
                             f"history, and X has none; build it with a timestamp column")
        order = np.lexsort((np.arange(data.n_interactions), data.timestamps, data.users))
        counts = np.bincount(data.users, minlength=self.n_users)
        if counts.max() < 2:
            raise ValueError(f"every user of X has a one-item sequence; {type(self).__name__} "
                             f"learns from next-item pairs and needs users with >= 2 "
                             f"interactions")
        return (data.items[order].astype(np.int64),
                np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))

    def _initialise(self, module: nn.Module, train: Interactions) -> None:
        """``item_init="embeddings"``: start the item table from the items' vectors."""
        if self.item_init == "random":
            return
        from ..text.content import item_embedding_matrix
        vectors = item_embedding_matrix(train, f"{type(self).__name__}(item_init='embeddings')")
        start = principal_init(vectors, self.n_factors, self.init_std)
        with torch.no_grad():
            weight = module.item_embeddings()
            weight.copy_(torch.as_tensor(start, dtype=weight.dtype, device=weight.device))

    def _module_generators(self) -> dict:
        return {"generator": getattr(self, "_generator", None),
                "init_generator": getattr(self, "_init_generator", None)}

    def _sequence(self, user: int) -> np.ndarray:
        return self.sequence_items_[self.sequence_indptr_[user]:self.sequence_indptr_[user + 1]]

    def _pad(self, rows: list) -> np.ndarray:
        """Left-pad item-index rows to one ``(len(rows), max_len)`` array."""
        out = np.full((len(rows), self.max_len), self.n_items, dtype=np.int64)
        for n, row in enumerate(rows):
            row = row[-self.max_len:]
            if len(row):
                out[n, self.max_len - len(row):] = row
        return out

    def _windows(self, train: Interactions, rng: np.random.Generator) -> tuple[list, list]:
        """(input, target) windows covering every next-item pair once per epoch.

        The last window of a user ends at their last item; earlier ones step back by
        ``max_len`` from a random offset, so the context an item is predicted from varies
        between epochs.
        """
        items, indptr = self._sequences(train)
        inputs, targets = [], []
        length = self.max_len
        for user in range(self.n_users):
            seq = items[indptr[user]:indptr[user + 1]]
            n = len(seq)
            if n < 2:
                continue
            ends = [n]
            if n - 1 > length:
                ends += list(range(n - length - int(rng.integers(length)), 1, -length))
            for end in ends:
                start = max(0, end - length - 1)
                inputs.append(seq[start:end - 1])
                targets.append(seq[start + 1:end])
        return inputs, targets

    def _batches(self, train: Interactions, rng: np.random.Generator):
        inputs, targets = self._windows(train, rng)
        order = rng.permutation(len(inputs))
        bce = self.loss == "bce"
        for start in range(0, len(order), self.batch_size):
            rows = order[start:start + self.batch_size]
            seq = self._pad([inputs[r] for r in rows])
            target = self._pad([targets[r] for r in rows])             # pad == n_items
            arrays = [seq, target]
            if bce:  # uniform over the catalogue without the target: shift draws past it
                negative = rng.integers(self.n_items - 1, size=target.shape)
                arrays.append(negative + (negative >= target))
            yield tuple(torch.from_numpy(a).to(self._device) for a in arrays)

    def _batch_loss(self, module: nn.Module, batch) -> torch.Tensor:
        seq, target = batch[0], batch[1]
        real = target != self.n_items
        hidden = module.encode(seq)[real]                               # (T, d)
        embeddings = module.item_embeddings()
        if self.loss == "ce":
            return full_cross_entropy(hidden, embeddings, target[real])
        return one_negative_bce(hidden, embeddings, target[real], batch[2][real])

    # -- scoring ---------------------------------------------------------------------------
    def _sequence_block(self, module: nn.Module, rows: list) -> torch.Tensor:
        """Scores ``(len(rows), n_items)`` after each item-index sequence, on the device."""
        seq = torch.from_numpy(self._pad(rows)).to(self._device)
        hidden = module.encode(seq)[:, -1]                              # (B, d)
        return hidden @ module.item_embeddings().T

    def _module_block(self, module: nn.Module, users: np.ndarray) -> torch.Tensor:
        """Scores of a block of users after their whole training history."""
        return self._sequence_block(module, [self._sequence(u) for u in np.asarray(users)])

    def fitted_module(self) -> nn.Module:
        """The fitted network (float64, eval mode), e.g. to count or inspect its weights."""
        return self._get_module()

    def _score_sequences(self, rows: list) -> np.ndarray:
        module = self._get_module()
        out = np.empty((len(rows), self.n_items))
        step = 256
        with torch.no_grad(), limited_threads():
            for start in range(0, len(rows), step):
                block = self._sequence_block(module, rows[start:start + step])
                out[start:start + len(block)] = block.double().cpu().numpy()
        return out

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        """Scores after each user's whole training history."""
        return self._score_sequences([self._sequence(u) for u in np.asarray(users)])

    def _history_indices(self, histories) -> list:
        if isinstance(histories, (str, bytes)) or not hasattr(histories, "__len__"):
            raise TypeError(f"histories must be a list of item-id sequences, got "
                            f"{type(histories).__name__}")
        rows = []
        for n, history in enumerate(histories):
            history = np.asarray(history)
            if history.ndim != 1 or len(history) == 0:
                raise ValueError(f"histories[{n}] is empty or not 1-D (shape {history.shape}); "
                                 f"each history needs at least one item")
            index = self.item_index(history, allow_unknown=True)
            if (index < 0).any():
                pos = int(np.flatnonzero(index < 0)[0])
                raise ValueError(f"histories[{n}][{pos}] == {history[pos].item()!r} is an item unknown "
                                 f"to training; drop it or refit with it")
            rows.append(index.astype(np.int64))
        return rows

    def score_histories(self, histories) -> np.ndarray:
        """Scores ``(len(histories), n_items)`` of the next item after each raw-id history."""
        self._check_is_fitted()
        return self._score_sequences(self._history_indices(histories))

    def recommend_histories(self, histories, k: int = 10, exclude_seen: bool = True):
        """Top-k ``(item_ids, scores)`` after each given history (raw item ids, oldest first).

        With ``exclude_seen`` the items of the history itself are left out.
        """
        self._check_is_fitted()
        rows = self._history_indices(histories)
        k = check_int("k", k, minimum=1, maximum=self.n_items)
        scores = self._score_sequences(rows)
        exclude = None
        if exclude_seen:
            exclude = np.zeros(scores.shape, dtype=bool)
            for n, row in enumerate(rows):
                exclude[n, row] = True
            n_left = self.n_items - exclude.sum(axis=1)
            if len(rows) and n_left.min() < k:
                raise ValueError(f"k == {k} but histories[{int(np.argmin(n_left))}] leaves only "
                                 f"{n_left.min()} unseen items; lower k or pass exclude_seen=False")
        idx, vals = topk(scores, k, exclude=exclude, source=type(self).__name__)
        return self.item_ids_[idx], vals


class SASRec(SequentialRecommender):
    """Self-attentive sequential recommender (see the module docstring for the maths).

    Parameters
    ----------
    n_factors : int
        Embedding and hidden width :math:`d`.
    n_layers, n_heads : int
        Transformer blocks and attention heads (``n_factors`` divisible by ``n_heads``).
    max_len : int
        Most recent items read per sequence (positions learnt: ``max_len``).
    dropout : float
        On the embeddings, the attention weights and each block's residual branches.
    init_std : float
        Standard deviation of the normal initialisation of every weight matrix.
    loss : {"ce", "bce"}
        Full-catalogue cross-entropy, or BCE against one sampled negative per position.
    item_init : {"random", "embeddings"}
        Start the item table from normal noise, or from the principal components of the
        ``emb_*`` item-feature columns of the training data (see the module docstring).
    n_epochs, batch_size, lr, weight_decay : training (``batch_size`` counts sequences).
    patience, validation_fraction : None and 0 only
        Early stopping on randomly held-out rows does not fit sequences; they exist so the
        shared training settings are all constructor arguments.
    device : {"auto", "cpu", "cuda", "mps"}
    random_state : int or None
        Seeds the initialisation, the dropout masks (local ``torch.Generator`` objects) and
        the windows and negatives (a NumPy generator).
    verbose : bool
    """

    def __init__(self, n_factors: int = 64, n_layers: int = 2, n_heads: int = 1,
                 max_len: int = 50, dropout: float = 0.2, init_std: float = 0.02,
                 loss: str = "ce", item_init: str = "random", n_epochs: int = 25,
                 batch_size: int = 128,
                 lr: float = 2e-3, weight_decay: float = 0.0, patience: int | None = None,
                 validation_fraction: float = 0.0, device: str = "auto",
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
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def _validate_params(self) -> None:
        super()._validate_params()
        check_int("n_layers", self.n_layers, minimum=1)
        check_int("n_heads", self.n_heads, minimum=1)
        if self.n_factors % self.n_heads:
            raise ValueError(f"n_factors == {self.n_factors} is not divisible by n_heads == "
                             f"{self.n_heads}")

    def _build_module(self) -> nn.Module:
        return SASRecModule(self.n_items, self.n_factors, self.n_layers, self.n_heads,
                            self.max_len, self.dropout, self.init_std,
                            **self._module_generators())

    def attention_weights(self, user_id) -> tuple[np.ndarray, list]:
        """The items a user's last ``max_len`` are and each layer's ``(H, L, L)`` weights.

        Rows are query positions, columns the positions attended to; the rows and columns of
        padding are dropped.
        """
        user = int(self.user_index([user_id])[0])
        seq = self._sequence(user)[-self.max_len:]
        module = self._get_module()
        with torch.no_grad():
            batch = torch.from_numpy(self._pad([seq])).to(self._device)
            _, layers = module.encode(batch, return_attention=True)
        n = len(seq)
        return self.item_ids_[seq], [w[0, :, -n:, -n:].cpu().numpy() for w in layers]
