r"""GRU4Rec: a recurrent next-item model (Hidasi et al., 2016), trained like SASRec.

The hidden state after item :math:`s_t` is a gated recurrent unit over the item embeddings,

.. math::

    z_t = \sigma(W_z x_t + U_z h_{t-1}), \quad r_t = \sigma(W_r x_t + U_r h_{t-1}), \quad
    h_t = (1 - z_t) \odot h_{t-1} + z_t \odot \tanh\big(W x_t + U (r_t \odot h_{t-1})\big),

with :math:`x_t = E_{s_t}` (biases omitted), stacked ``n_layers`` deep and projected back to the
embedding width, so that the score of item :math:`i` is :math:`(W_o h_t)^\top E_i`. It uses
the losses, windows and scoring of :class:`~reclib.neural.sasrec.SequentialRecommender`
(full-catalogue cross-entropy by default), which is how Hidasi and Czapp (2023) recommend
comparing it. Sequences are left-padded for batching; the recurrence runs over packed
sequences, so padding never enters a hidden state.

References
----------
B. Hidasi, A. Karatzoglou, L. Baltrunas, D. Tikk, "Session-based recommendations with
recurrent neural networks", ICLR 2016.
B. Hidasi, Á. T. Czapp, "The effect of third party implementations on reproducibility",
RecSys 2023.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .._validation import check_int
from .sasrec import Dropout, SequentialRecommender


class GRU4RecModule(nn.Module):
    """Item embeddings -> GRU -> linear map back to the embedding space."""

    def __init__(self, n_items: int, n_factors: int, hidden_size: int, n_layers: int,
                 dropout: float, init_std: float = 0.02, generator=None, init_generator=None):
        super().__init__()
        self.n_items = n_items
        self.item = nn.Embedding(n_items + 1, n_factors, padding_idx=n_items)
        self.gru = nn.GRU(n_factors, hidden_size, num_layers=n_layers, batch_first=True)
        self.output = nn.Linear(hidden_size, n_factors)
        self.dropout = Dropout(dropout, generator)
        for name, param in self.named_parameters():
            if param.dim() > 1:
                nn.init.normal_(param, std=init_std, generator=init_generator)
            else:
                nn.init.zeros_(param)
        for name, param in self.gru.named_parameters():  # recurrences start orthogonal-ish
            if name.startswith("weight_hh"):
                nn.init.xavier_uniform_(param, generator=init_generator)
        with torch.no_grad():
            self.item.weight[n_items].zero_()

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        """Hidden states ``(B, L, d)`` of left-padded ``(B, L)`` sequences (zero on padding)."""
        batch, length = seq.shape
        lengths = (seq != self.n_items).sum(1)                          # (B,), each >= 1
        shift = (length - lengths)[:, None]
        positions = torch.arange(length, device=seq.device)[None, :]
        right = torch.gather(seq, 1, (positions + shift) % length)    # items first, then pad
        x = self.dropout(self.item(right))
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=length)
        out = self.output(self.dropout(out))                            # zero rows stay biased
        out = out * (positions < lengths[:, None])[..., None].to(out.dtype)
        back = (positions - shift) % length                             # undo the shift
        return torch.gather(out, 1, back[..., None].expand(-1, -1, out.shape[-1]))

    def item_embeddings(self) -> torch.Tensor:
        return self.item.weight[:self.n_items]

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        return self.encode(seq) @ self.item_embeddings().T             # (B, L, n_items)


class GRU4Rec(SequentialRecommender):
    """Recurrent next-item recommender (see the module docstring).

    Parameters
    ----------
    n_factors : int
        Item embedding width.
    hidden_size : int
        GRU state width.
    n_layers : int
        Stacked GRU layers.
    max_len : int
        Most recent items read per sequence.
    dropout : float
        On the embeddings and on the GRU outputs.
    init_std : float
        Standard deviation of the normal initialisation of the weight matrices.
    loss : {"ce", "bce"}
        Full-catalogue cross-entropy, or BCE against one sampled negative per position.
    item_init : {"random", "embeddings"}
        Start the item table from noise or from the ``emb_*`` item features (as SASRec).
    n_epochs, batch_size, lr, weight_decay : training (``batch_size`` counts sequences).
    patience, validation_fraction : None and 0 only (see :class:`~reclib.neural.SASRec`)
    device : {"auto", "cpu", "cuda", "mps"}
    random_state : int or None
        Seeds the initialisation and dropout (local ``torch.Generator`` objects) and the
        windows and negatives.
    verbose : bool
    """

    def __init__(self, n_factors: int = 64, hidden_size: int = 128, n_layers: int = 1,
                 max_len: int = 50, dropout: float = 0.2, init_std: float = 0.02,
                 loss: str = "ce", item_init: str = "random", n_epochs: int = 20,
                 batch_size: int = 128,
                 lr: float = 2e-3, weight_decay: float = 0.0, patience: int | None = None,
                 validation_fraction: float = 0.0, device: str = "auto",
                 random_state: int | None = 0, verbose: bool = False):
        self.n_factors = n_factors
        self.hidden_size = hidden_size
        self.n_layers = n_layers
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
        check_int("hidden_size", self.hidden_size, minimum=1)
        check_int("n_layers", self.n_layers, minimum=1)

    def _build_module(self) -> nn.Module:
        return GRU4RecModule(self.n_items, self.n_factors, self.hidden_size, self.n_layers,
                             self.dropout, self.init_std, **self._module_generators())
