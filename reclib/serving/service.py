"""The serving state behind the HTTP app: ids, users' vectors and histories, index, event log.

It holds no HTTP code, so tests and the notebook can drive it directly. Raw ids arrive as
JSON numbers or strings and are compared as text (``42`` and ``"42"`` are the same user).

* A known user is scored with their vector. With a model that has a user encoder
  (:mod:`reclib.serving.encoders`: iALS fold-in, SASRec/GRU4Rec) their vector is
  recomputed from training history plus logged events after every event, so the very next
  request sees it.
* An unknown user without events gets the popularity list; after their first event an
  encoder gives them a vector of their own (a model without one keeps the popularity list,
  minus the items they already have).
* With a TextMappedALS store, :meth:`Service.add_item` adds an item from its text: the
  sentence encoder embeds it, the store's text map turns the embedding into a factor, and
  the item joins the index (and the fold-in's :math:`Y^\top Y`) at once.
"""

from __future__ import annotations

import time

import numpy as np

from .encoders import encoder_for
from .events import EventLog
from .index import Index, exact_topk
from .store import ModelStore


class UnknownItemError(KeyError):
    """An event or query names an item id the model does not have."""


class ItemExistsError(KeyError):
    """An item to add has an id the catalogue already holds."""


class CannotAddItemsError(ValueError):
    """The served model has no way to give a new item a vector."""


class Service:
    """Recommendations and online updates over one :class:`ModelStore` and one index.

    Parameters
    ----------
    store : ModelStore
    index : Index
        Built over ``store.item_vectors``.
    log : EventLog, optional
        Where events (and added items) are made durable; replayed at construction.
    text_encoder : optional
        What embeds a new item's text: an object with ``encode(texts)`` and ``cache_name``
        (default: :class:`~reclib.text.SentenceEncoder`, loaded on the first added item).
    """

    def __init__(self, store: ModelStore, index: Index, log: EventLog | None = None,
                 text_encoder=None):
        self.store, self.index, self.log = store, index, log
        self.user_lookup = {str(u): n for n, u in enumerate(store.user_ids.tolist())}
        self.item_lookup = {str(i): n for n, i in enumerate(store.item_ids.tolist())}
        self.item_ids = store.item_ids.tolist()
        self.titles = None if store.item_titles is None else store.item_titles.tolist()
        self.encoder = encoder_for(store)
        self.text_encoder = text_encoder
        self.popularity = store.popularity.copy()
        self.popular_order = np.lexsort((np.arange(store.n_items), -self.popularity))
        self.events: dict[str, list[tuple[int, float]]] = {}   # user key -> (item, weight)s
        self.logged_items: dict[str, set] = {}                 # user key -> items logged
        self.vectors: dict[str, np.ndarray] = {}               # re-encoded users
        self.n_events = 0
        self.replayed = 0
        self.added_items = 0
        self.pending_items: set[str] = set()     # ids being logged, not yet added
        if log is not None:
            self._replay()

    @property
    def n_items(self) -> int:
        """Items in the catalogue, added ones included."""
        return len(self.item_ids)

    # ------------------------------------------------------------------ lookups
    def item_index(self, item_id) -> int:
        try:
            return self.item_lookup[str(item_id)]
        except KeyError:
            raise UnknownItemError(f"unknown item id {item_id!r}") from None

    def seen_items(self, key: str) -> np.ndarray:
        row = self.user_lookup.get(key)
        train = (self.store.seen.indices[self.store.seen.indptr[row]:self.store.seen.indptr[row + 1]]
                 if row is not None else np.zeros(0, dtype=np.int64))
        logged = self.logged_items.get(key)
        if not logged:
            return train
        return np.union1d(train, np.fromiter(logged, dtype=np.int64, count=len(logged)))

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
                      else self.n_items - len(exclude))
        if n_eligible < k:
            raise ValueError(f"k == {k} but user {user_id!r} has only {n_eligible} eligible "
                             f"items; lower k, pass exclude_seen=false or widen candidates")
        vector = self.user_vector(key)
        if vector is None:
            order = self.popular_order
            allowed = np.ones(self.n_items, dtype=bool)
            allowed[exclude] = False
            if cand is not None:
                mask = np.zeros(self.n_items, dtype=bool)
                mask[cand] = True
                allowed &= mask
            idx = order[allowed[order]][:k]
            scores = self.popularity[idx]
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
        Y = self.index.item_vectors
        if getattr(self, "_norms", None) is None or len(self._norms) != len(Y):
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
        """Fold logged rows into the users' state; returns the seconds spent re-encoding."""
        touched = set()
        for user, item, weight, _ in rows:
            i = self.item_lookup[item]
            self.events.setdefault(user, []).append((i, weight))
            self.logged_items.setdefault(user, set()).add(i)
            touched.add(user)
        self.n_events += len(rows)
        start = time.perf_counter()
        if self.encoder is not None:
            for user in touched:
                self.vectors[user] = self.encoder.user_vector(self.user_lookup.get(user),
                                                              self.events[user])
        return time.perf_counter() - start

    # ------------------------------------------------------------------ new items
    def item_vector_from_text(self, text: str) -> np.ndarray:
        """A new item's vector from its text: :math:`\bar q + W^\top (e(text) - \bar e)`."""
        text_map = self.store.text_map
        if text_map is None:
            raise CannotAddItemsError(
                f"{self.store.model} has no text map, so a new item cannot get a vector from "
                f"its text; serve a reclib.text.TextMappedALS to add items while serving")
        if self.text_encoder is None:
            from ..text.encoder import SentenceEncoder
            self.text_encoder = SentenceEncoder(cache=False)
        if self.text_encoder.cache_name != text_map["encoder"]:
            raise CannotAddItemsError(
                f"the text map was fitted on {text_map['encoder']!r} vectors but this server "
                f"encodes with {self.text_encoder.cache_name!r}")
        e = np.asarray(self.text_encoder.encode([text]), dtype=np.float64)[0]
        if e.shape != text_map["text_mean"].shape:
            raise CannotAddItemsError(f"the encoder gives {e.shape[0]}-dimensional vectors, the "
                                      f"text map expects {text_map['text_mean'].shape[0]}")
        from ..text.hybrid import map_text
        return map_text(e, text_map["text_mean"], text_map["W"],
                        text_map["factor_mean"]).astype(np.float32)

    def check_new_item(self, item_id):
        """The id a new item is stored under (an int where the catalogue's ids are ints)."""
        normal = str(item_id)
        if np.issubdtype(self.store.item_ids.dtype, np.integer):
            if not normal.lstrip("-").isdigit():
                raise ValueError(f"item_id == {item_id!r}: this catalogue's ids are integers")
            normal = int(normal)
        if str(normal) in self.item_lookup or str(normal) in self.pending_items:
            raise ItemExistsError(f"item_id == {item_id!r} is already in the catalogue")
        return normal

    def add_item(self, item_id, vector: np.ndarray, title: str | None = None) -> int:
        """Append an item with its vector to the catalogue, the index and the encoder."""
        item_id = self.check_new_item(item_id)
        vector = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        self.index.add(vector)
        if self.encoder is not None and hasattr(self.encoder, "add_items"):
            self.encoder.add_items(vector)
        n = len(self.item_ids)
        self.item_lookup[str(item_id)] = n
        self.item_ids.append(item_id)
        if self.titles is None and title is not None:
            self.titles = [""] * n                     # the first title the catalogue gets
        if self.titles is not None:
            self.titles.append("" if title is None else str(title))
        self.popularity = np.append(self.popularity, 0.0)
        self.popular_order = np.append(self.popular_order, n)      # last: no interactions yet
        self.added_items += 1
        return n

    def _replay(self) -> None:
        for item_id, title, vector in self.log.replay_items():
            if item_id not in self.item_lookup and len(vector) == self.store.dim:
                self.add_item(item_id, vector, title)
        rows = [(u, i, w, ts) for _, u, i, w, ts in self.log.replay() if i in self.item_lookup]
        self.apply(rows)
        self.replayed = len(rows)

    def health(self) -> dict:
        return {"status": "ok", "model": self.store.model, "n_users": self.store.n_users,
                "n_items": self.n_items, "dim": self.store.dim,
                "index": self.index.params(),
                "foldin": self.encoder is not None and self.encoder.kind == "ials-foldin",
                "encoder": None if self.encoder is None else self.encoder.kind,
                "can_add_items": self.store.text_map is not None,
                "added_items": self.added_items,
                "events": self.n_events, "replayed": self.replayed}
