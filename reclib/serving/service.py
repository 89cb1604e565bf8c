"""The serving state behind the HTTP app: ids, users' vectors and histories, index, event log.

It holds no HTTP code, so tests and the notebook can drive it directly. Raw ids arrive as
JSON numbers or strings and are compared as text (``42`` and ``"42"`` are the same user).

* A known user is scored with their vector; with a fold-in model (iALS) their vector is
  re-solved from training items plus logged events after every event.
* An unknown user without events gets the popularity list; after their first event a fold-in
  model gives them a vector of their own (a model without fold-in keeps the popularity list,
  minus the items they already have).
"""

from __future__ import annotations

import time

import numpy as np

from .events import EventLog
from .foldin import IALSFoldIn
from .index import Index, exact_topk
from .store import ModelStore


class UnknownItemError(KeyError):
    """An event or query names an item id the model does not have."""


class Service:
    """Recommendations and online updates over one :class:`ModelStore` and one index.

    Parameters
    ----------
    store : ModelStore
    index : Index
        Built over ``store.item_vectors``.
    log : EventLog, optional
        Where events are made durable; replayed at construction.
    """

    def __init__(self, store: ModelStore, index: Index, log: EventLog | None = None):
        self.store, self.index, self.log = store, index, log
        self.user_lookup = {str(u): n for n, u in enumerate(store.user_ids.tolist())}
        self.item_lookup = {str(i): n for n, i in enumerate(store.item_ids.tolist())}
        self.item_ids = store.item_ids.tolist()
        self.titles = None if store.item_titles is None else store.item_titles.tolist()
        self.foldin = None if store.foldin is None else IALSFoldIn(store.item_vectors,
                                                                   **store.foldin)
        self.popular_order = np.lexsort((np.arange(store.n_items), -store.popularity))
        self.events: dict[str, dict[int, float]] = {}     # user key -> item index -> weight
        self.vectors: dict[str, np.ndarray] = {}          # re-solved users (known or new)
        self.n_events = 0
        self.replayed = 0
        if log is not None:
            self._replay()

    # ------------------------------------------------------------------ lookups
    def item_index(self, item_id) -> int:
        try:
            return self.item_lookup[str(item_id)]
        except KeyError:
            raise UnknownItemError(f"unknown item id {item_id!r}") from None

    def _history(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """Training items and values of a user merged with their logged events."""
        row = self.user_lookup.get(key)
        merged: dict[int, float] = {}
        if row is not None:
            seen = self.store.seen
            start, stop = seen.indptr[row], seen.indptr[row + 1]
            merged = dict(zip(seen.indices[start:stop].tolist(), seen.data[start:stop].tolist()))
        for item, weight in self.events.get(key, {}).items():
            merged[item] = merged.get(item, 0.0) + weight
        items = np.fromiter(merged.keys(), dtype=np.int64, count=len(merged))
        values = np.fromiter(merged.values(), dtype=np.float64, count=len(merged))
        return items, values

    def seen_items(self, key: str) -> np.ndarray:
        row = self.user_lookup.get(key)
        train = (self.store.seen.indices[self.store.seen.indptr[row]:self.store.seen.indptr[row + 1]]
                 if row is not None else np.zeros(0, dtype=np.int64))
        logged = self.events.get(key)
        if not logged:
            return train
        return np.union1d(train, np.fromiter(logged.keys(), dtype=np.int64))

    def user_vector(self, key: str) -> np.ndarray | None:
        """The vector a user is scored with, or None (popularity) for an unknown user."""
        if key in self.vectors:
            return self.vectors[key]
        row = self.user_lookup.get(key)
        return None if row is None else self.store.user_vectors[row]

    # ------------------------------------------------------------------ reading
    def recommend(self, user_id, k: int, exclude_seen: bool = True, candidates=None) -> dict:
        """Top-``k`` for a user: ``{"items": [...], "scores": [...], "source": ...}``."""
        key = str(user_id)
        exclude = self.seen_items(key) if exclude_seen else np.zeros(0, dtype=np.int64)
        cand = None if candidates is None else np.array([self.item_index(i) for i in candidates],
                                                        dtype=np.int64)
        n_eligible = (len(np.setdiff1d(cand, exclude)) if cand is not None
                      else self.store.n_items - len(exclude))
        if n_eligible < k:
            raise ValueError(f"k == {k} but user {user_id!r} has only {n_eligible} eligible "
                             f"items; lower k, pass exclude_seen=false or widen candidates")
        vector = self.user_vector(key)
        if vector is None:
            order = self.popular_order
            allowed = np.ones(self.store.n_items, dtype=bool)
            allowed[exclude] = False
            if cand is not None:
                mask = np.zeros(self.store.n_items, dtype=bool)
                mask[cand] = True
                allowed &= mask
            idx = order[allowed[order]][:k]
            scores = self.store.popularity[idx]
            source = "popularity"
        elif cand is not None:
            idx, scores = self.index.search_candidates(vector, k, cand, exclude)
            source = "model"
        else:
            found, vals = self.index.search(vector[None, :], k, [exclude])
            idx, scores = found[0], vals[0]
            source = "model"
        return {"user_id": user_id, "source": source,
                "items": [self.item_ids[i] for i in idx.tolist()],
                "scores": [float(s) for s in scores],
                "titles": None if self.titles is None else [self.titles[i] for i in idx.tolist()]}

    def similar(self, item_id, k: int) -> dict:
        """The ``k`` items of highest cosine with an item's vector (itself left out)."""
        i = self.item_index(item_id)
        Y = self.store.item_vectors
        if not hasattr(self, "_norms"):
            norms = np.linalg.norm(Y, axis=1)
            self._norms = np.where(norms > 0, norms, 1.0).astype(np.float32)
        sims = (Y @ (Y[i] / self._norms[i])) / self._norms              # (n_items,) cosines
        found, vals = exact_topk(sims[None, :], k, [np.array([i])])
        return {"item_id": item_id, "items": [self.item_ids[j] for j in found[0].tolist()],
                "scores": [float(s) for s in vals[0]],
                "titles": None if self.titles is None else [self.titles[j] for j in found[0]]}

    # ------------------------------------------------------------------ writing
    def check_events(self, events: list[dict]) -> list[tuple]:
        """Rows ``(user_key, item_key, weight, ts)`` for the log; unknown items raise."""
        rows = []
        for n, e in enumerate(events):
            try:
                self.item_index(e["item_id"])
            except UnknownItemError:
                raise UnknownItemError(f"events[{n}].item_id == {e['item_id']!r} is not an item "
                                       f"of the model") from None
            rows.append((str(e["user_id"]), str(e["item_id"]), float(e.get("weight", 1.0)),
                         e.get("timestamp")))
        return rows

    def apply(self, rows: list[tuple]) -> float:
        """Fold logged rows into the users' state; returns the seconds spent re-solving."""
        touched = set()
        for user, item, weight, _ in rows:
            per_user = self.events.setdefault(user, {})
            i = self.item_lookup[item]
            per_user[i] = per_user.get(i, 0.0) + weight
            touched.add(user)
        self.n_events += len(rows)
        start = time.perf_counter()
        if self.foldin is not None:
            for user in touched:
                items, values = self._history(user)
                self.vectors[user] = self.foldin.user_vector(items, values)
        return time.perf_counter() - start

    def _replay(self) -> None:
        rows = [(u, i, w, ts) for _, u, i, w, ts in self.log.replay() if i in self.item_lookup]
        self.apply(rows)
        self.replayed = len(rows)

    def health(self) -> dict:
        return {"status": "ok", "model": self.store.model, "n_users": self.store.n_users,
                "n_items": self.store.n_items, "dim": self.store.dim,
                "index": self.index.params(), "foldin": self.foldin is not None,
                "events": self.n_events, "replayed": self.replayed}
