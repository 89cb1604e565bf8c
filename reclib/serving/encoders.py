r"""User encoders: how a served model turns a user's updated history into a new vector.

Every encoder answers ``user_vector(row, events)``, where ``row`` is the user's training row
(or None for a user the model never saw) and ``events`` the ``(item, weight)`` pairs logged
since, in arrival order. What it does with them is the model's own rule:

* :class:`FoldInEncoder`, iALS: the exact least-squares fold-in of
  :mod:`reclib.serving.foldin` over the training items plus the events, values summed.
* :class:`SequenceEncoder`, SASRec and GRU4Rec: the user is the network's last hidden state
  after the training sequence with the events appended,

  .. math::

      x_u = h_L\big((i_1, \dots, i_{n_u}, e_1, \dots, e_m)_{\text{last } L}\big),
      \qquad s(u, i) = \langle x_u, E_i \rangle ,

  which is exactly how :meth:`~reclib.neural.SASRec.score_histories` scores a history.
* :class:`HistoryTowerEncoder`, a TwoTower fitted with ``history=True``: the user tower run on
  the mean item-id embedding :math:`E_j` over the training items :math:`\mathcal I_u` and the
  events' items :math:`\mathcal J_u` together (:meth:`~reclib.neural.TwoTower.encode_users`),

  .. math::

      x_u = u\Big(\frac{1}{|\mathcal H_u|} \sum_{j \in \mathcal H_u} E_j,\; f_u\Big),
      \qquad \mathcal H_u = \mathcal I_u \cup \mathcal J_u ,

  with :math:`f_u` the user's side-feature fields (zero for a user the model never saw).
  The history is a set, as in training: an event on an item the user already has, or a
  repeated event, moves nothing, and event weights are not read.

A model whose user vector reads no history (BPR, a TwoTower with ``history=False``) has no
encoder: its events are logged but cannot move its vectors.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .foldin import IALSFoldIn


class FoldInEncoder:
    """iALS fold-in over training values plus logged weights (repeated items add up)."""

    kind = "ials-foldin"

    def __init__(self, foldin: IALSFoldIn, seen: sp.csr_matrix):
        self.foldin, self.seen = foldin, seen

    def user_vector(self, row: int | None, events: list[tuple[int, float]]) -> np.ndarray:
        merged: dict[int, float] = {}
        if row is not None:
            start, stop = self.seen.indptr[row], self.seen.indptr[row + 1]
            merged = dict(zip(self.seen.indices[start:stop].tolist(),
                              self.seen.data[start:stop].tolist()))
        for item, weight in events:
            merged[item] = merged.get(item, 0.0) + weight
        items = np.fromiter(merged.keys(), dtype=np.int64, count=len(merged))
        values = np.fromiter(merged.values(), dtype=np.float64, count=len(merged))
        return self.foldin.user_vector(items, values)

    def add_items(self, vectors: np.ndarray) -> None:
        self.foldin.add_items(vectors)


class SequenceEncoder:
    """The last hidden state of a fitted SASRec or GRU4Rec after the user's sequence.

    Parameters
    ----------
    model : SequentialRecommender
        Fitted; its network is run in evaluation mode on one thread.
    """

    kind = "sequence"

    def __init__(self, model):
        import torch
        from ..neural._train import limited_threads
        self.model, self._torch, self._threads = model, torch, limited_threads
        self.module = model.fitted_module()

    def sequence(self, row: int | None, events: list[tuple[int, float]]) -> np.ndarray:
        """Training items in time order, then the events' items in arrival order."""
        train = (self.model._sequence(row) if row is not None
                 else np.zeros(0, dtype=np.int64))
        logged = np.fromiter((item for item, _ in events), dtype=np.int64, count=len(events))
        return np.concatenate([train, logged])

    def vectors(self, sequences: list[np.ndarray]) -> np.ndarray:
        """Hidden states ``(len(sequences), d)`` after each item-index sequence (float32)."""
        torch = self._torch
        seq = torch.from_numpy(self.model._pad(sequences))
        with torch.no_grad(), self._threads(1):
            hidden = self.module.encode(seq)[:, -1]
        return hidden.double().numpy().astype(np.float32)

    def user_vector(self, row: int | None, events: list[tuple[int, float]]) -> np.ndarray:
        return self.vectors([self.sequence(row, events)])[0]


class HistoryTowerEncoder:
    """The user tower of a TwoTower fitted with ``history=True``, on the updated history.

    Parameters
    ----------
    model : TwoTower
        Fitted with ``history=True``.
    """

    kind = "two-tower-history"

    def __init__(self, model):
        self.model = model

    def history(self, row: int | None, events: list[tuple[int, float]]) -> np.ndarray:
        """Training items, then the events' items not already in it, each once (first seen)."""
        model = self.model
        train = (model.history_items_[model.history_indptr_[row]:model.history_indptr_[row + 1]]
                 if row is not None else np.zeros(0, dtype=np.int64))
        logged = np.fromiter((item for item, _ in events), dtype=np.int64, count=len(events))
        items = np.concatenate([train, logged])
        _, first = np.unique(items, return_index=True)
        return items[np.sort(first)]

    def user_vector(self, row: int | None, events: list[tuple[int, float]]) -> np.ndarray:
        vector = self.model.encode_users([self.history(row, events)], [row])[0]
        return vector.astype(np.float32)


def encoder_for(store):
    """The encoder of a :class:`~reclib.serving.store.ModelStore`, or None."""
    if store.foldin is not None:
        return FoldInEncoder(IALSFoldIn(store.item_vectors, **store.foldin), store.seen)
    model = store.encoder_model
    if model is None:
        return None
    if hasattr(model, "sequence_items_"):
        return SequenceEncoder(model)
    if hasattr(model, "history_items_") and hasattr(model, "encode_users"):
        return HistoryTowerEncoder(model)
    raise ValueError(f"{type(model).__name__} has no serving encoder")
