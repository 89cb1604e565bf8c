"""The base class every reclib recommender inherits.

It owns the steps that are the same for every model, so that a model file holds only its
mathematics:

* input validation and the raw-id <-> index maps (``fit`` takes an :class:`~reclib.Interactions`
  or a users x items sparse matrix; ``predict``/``recommend`` take and return raw ids);
* the not-fitted error, seen-item masking and batched top-k selection;
* ``save``/``load`` to a single ``.npz`` file, read back with ``allow_pickle=False``.

A subclass implements

``_fit(data)``
    learn from an :class:`~reclib.Interactions` whose ``users``/``items`` are indices;
``_score_users(users)``
    a dense ``(len(users), n_items)`` block of scores for user indices;
``_predict(users, items)`` (optional)
    scores of index pairs; index ``-1`` marks an id unknown to training, which rating models
    handle by dropping the terms they cannot know. The default gathers from ``_score_users``.
``_item_vectors()`` (optional)
    item embeddings, which turns on :meth:`Recommender.similar_items`.
"""

from __future__ import annotations

import importlib
import inspect
import json
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .._ranking import default_batch_size, mask_rows, top_k
from .._validation import check_int
from ..interactions import Interactions

_FORMAT_VERSION = 1


class NotFittedError(RuntimeError):
    """Raised when a model is used before ``fit``."""


class Recommender:
    """Common API of every recommender: ``fit``, ``predict``, ``recommend``, ``save``/``load``.

    Fitted attributes (ending in ``_``) shared by all models:

    Attributes
    ----------
    user_ids_, item_ids_ : ndarray
        Raw ids seen in training, in index order.
    seen_ : scipy.sparse.csr_matrix
        Users x items matrix of the training interactions (masked by ``exclude_seen``).
    rating_range_ : ndarray of shape (2,)
        Smallest and largest training rating (the range ``clip=True`` clips to).
    """

    _registry: dict[str, type] = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        Recommender._registry[_class_path(cls)] = cls

    # ------------------------------------------------------------------ hyper-parameters
    @classmethod
    def _param_names(cls) -> list[str]:
        if cls.__init__ is object.__init__:
            return []
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]

    def get_params(self) -> dict:
        """The constructor's keyword arguments, as stored."""
        return {name: getattr(self, name) for name in self._param_names()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # ------------------------------------------------------------------ fitting
    def fit(self, X) -> "Recommender":
        """Learn from training interactions (starts from scratch every call).

        Parameters
        ----------
        X : Interactions or scipy.sparse matrix
            Training data; a sparse matrix is read as users x items with indices as ids.
        """
        data = self._as_training_data(X)
        self._validate_params()
        self.user_ids_ = data.user_ids
        self.item_ids_ = data.item_ids
        self.seen_ = data.to_csr(binary=True).astype(np.float32)
        self.rating_range_ = np.array([data.ratings.min(), data.ratings.max()])
        self._reset_lookups()
        self._fit(data)
        return self

    def _validate_params(self) -> None:
        """Check hyper-parameters at fit time (constructors only store them)."""

    def _fit(self, data: Interactions) -> None:
        raise NotImplementedError

    @staticmethod
    def _as_training_data(X) -> Interactions:
        if isinstance(X, Interactions):
            data = X
        elif sp.issparse(X):
            data = Interactions.from_csr(X)
        else:
            raise TypeError(f"X must be an Interactions or a scipy sparse matrix, "
                            f"got {type(X).__name__}")
        if data.n_interactions == 0:
            raise ValueError("X has no interactions: there is nothing to learn from")
        n_unknown = int(data.unknown_mask.sum())
        if n_unknown:
            raise ValueError(f"X has {n_unknown} rows with unknown ids (it was built against a "
                             f"reference); fit on a training set built without reference")
        return data

    # ------------------------------------------------------------------ fitted-state helpers
    @property
    def n_users(self) -> int:
        """Number of users the fitted model knows."""
        self._check_is_fitted()
        return len(self.user_ids_)

    @property
    def n_items(self) -> int:
        """Number of items the fitted model knows."""
        self._check_is_fitted()
        return len(self.item_ids_)

    def _check_is_fitted(self) -> None:
        if not hasattr(self, "user_ids_"):
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet; "
                                 f"call fit(train) before using it")

    def _reset_lookups(self) -> None:
        self._index = Interactions(np.zeros(0), np.zeros(0), np.zeros(0), None,
                                   self.user_ids_, self.item_ids_)

    def user_index(self, user_ids, allow_unknown: bool = False) -> np.ndarray:
        """Indices of raw user ids (``-1`` for unknown ones when ``allow_unknown``)."""
        self._check_is_fitted()
        return self._index.user_index(user_ids, allow_unknown)

    def item_index(self, item_ids, allow_unknown: bool = False) -> np.ndarray:
        """Indices of raw item ids (``-1`` for unknown ones when ``allow_unknown``)."""
        self._check_is_fitted()
        return self._index.item_index(item_ids, allow_unknown)

    # ------------------------------------------------------------------ scoring
    def predict(self, user_ids, item_ids, allow_unknown: bool = False,
                clip: bool = False) -> np.ndarray:
        """Score (user, item) pairs given by raw ids.

        Parameters
        ----------
        user_ids, item_ids : array-like of equal length
        allow_unknown : bool
            When False (default) an id unseen in training raises; when True the model
            predicts from what it knows (for example ``mu + b_i`` for a new user).
        clip : bool
            Clip predictions to the training rating range (as Surprise does).
        """
        users = self.user_index(user_ids, allow_unknown)
        items = self.item_index(item_ids, allow_unknown)
        if len(users) != len(items):
            raise ValueError(f"user_ids has {len(users)} entries but item_ids has {len(items)}")
        scores = np.asarray(self._predict(users, items), dtype=np.float64)
        if clip:
            scores = np.clip(scores, *self.rating_range_)
        return scores

    def _predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        if (users < 0).any() or (items < 0).any():
            raise ValueError(f"{type(self).__name__} cannot score users or items unseen in "
                             f"training")
        out = np.empty(len(users))
        uniq, inverse = np.unique(users, return_inverse=True)
        for start in range(0, len(uniq), default_batch_size(self.n_items)):
            block = self._score_users(uniq[start:start + default_batch_size(self.n_items)])
            sel = (inverse >= start) & (inverse < start + len(block))
            out[sel] = block[inverse[sel] - start, items[sel]]
        return out

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def recommend(self, user_ids, k: int = 10, exclude_seen: bool = True,
                  batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k items for each user, best first.

        Parameters
        ----------
        user_ids : array-like
            Raw user ids (each must have been seen in training).
        k : int
            List length, ``1 <= k <= n_items``.
        exclude_seen : bool
            Leave out the items each user interacted with in training.
        batch_size : int, optional
            Users scored at once (default keeps each block near 20 million scores).

        Returns
        -------
        item_ids : ndarray of shape (n_users, k)
            Raw item ids.
        scores : ndarray of shape (n_users, k)
        """
        users = self.user_index(user_ids)
        k = check_int("k", k, minimum=1, maximum=self.n_items)
        if exclude_seen:
            n_unseen = self.n_items - np.diff(self.seen_.indptr)[users]
            if len(users) and n_unseen.min() < k:
                worst = int(np.argmin(n_unseen))
                raise ValueError(f"k == {k} but user {np.atleast_1d(user_ids)[worst]!r} has only "
                                 f"{n_unseen[worst]} unseen items; lower k or pass "
                                 f"exclude_seen=False")
        batch_size = batch_size or default_batch_size(self.n_items)
        batch_size = check_int("batch_size", batch_size, minimum=1)
        idx = np.empty((len(users), k), dtype=np.int64)
        vals = np.empty((len(users), k))
        for start in range(0, len(users), batch_size):
            rows = users[start:start + batch_size]
            scores = self.score_block(rows, exclude_seen)
            idx[start:start + len(rows)], vals[start:start + len(rows)] = top_k(scores, k)
        return self.item_ids_[idx], vals

    def score_block(self, users: np.ndarray, exclude_seen: bool = True) -> np.ndarray:
        """Dense scores of user *indices* against all items, seen items at ``-inf`` if asked."""
        self._check_is_fitted()
        scores = np.array(self._score_users(users), dtype=np.float64)
        if scores.shape != (len(users), self.n_items):
            raise RuntimeError(f"{type(self).__name__}._score_users returned shape "
                               f"{scores.shape}, expected {(len(users), self.n_items)}")
        if exclude_seen:
            mask_rows(scores, self.seen_, users)
        return scores

    def _item_vectors(self) -> np.ndarray | None:
        return None

    def similar_items(self, item_ids, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items most similar to each given item (cosine of item vectors).

        Returns ``(item_ids, similarities)``, each of shape ``(len(item_ids), k)``; an item is
        never its own neighbour.
        """
        self._check_is_fitted()
        vectors = self._item_vectors()
        if vectors is None:
            raise NotImplementedError(f"{type(self).__name__} has no item representation to "
                                      f"compare items with")
        items = self.item_index(item_ids)
        k = check_int("k", k, minimum=1, maximum=self.n_items - 1)
        norms = np.linalg.norm(vectors, axis=1)
        norms[norms == 0] = 1.0
        unit = vectors / norms[:, None]
        sims = unit[items] @ unit.T
        sims[np.arange(len(items)), items] = -np.inf
        idx, vals = top_k(sims, k)
        return self.item_ids_[idx], vals

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> Path:
        """Write hyper-parameters and fitted state to one ``.npz`` file (no pickle)."""
        self._check_is_fitted()
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(path.suffix + ".npz")
        arrays: dict[str, np.ndarray] = {}
        scalars = {}
        for name, value in vars(self).items():
            if not name.endswith("_") or name.startswith("_"):
                continue
            if sp.issparse(value):
                csr = sp.csr_matrix(value)
                for part in ("data", "indices", "indptr"):
                    arrays[f"sparse:{name}:{part}"] = getattr(csr, part)
                arrays[f"sparse:{name}:shape"] = np.array(csr.shape)
            elif isinstance(value, np.ndarray):
                arrays[f"array:{name}"] = _savable(name, value)
            elif value is None or isinstance(value, (bool, int, float, str, list)):
                scalars[name] = value
            elif isinstance(value, (np.integer, np.floating)):
                scalars[name] = value.item()
            else:
                raise TypeError(f"cannot save fitted attribute {name} of type "
                                f"{type(value).__name__}")
        meta = {"class": _class_path(type(self)), "params": self.get_params(), "scalars": scalars,
                "format": _FORMAT_VERSION}
        try:
            arrays["__meta__"] = np.array(json.dumps(meta))
        except TypeError as err:
            raise TypeError(f"hyper-parameters of {type(self).__name__} must be JSON "
                            f"serialisable to be saved: {err}") from None
        with open(path, "wb") as fh:
            np.savez_compressed(fh, **arrays)
        return path

    @classmethod
    def load(cls, path) -> "Recommender":
        """Read a model written by :meth:`save` (``allow_pickle=False``)."""
        with np.load(path, allow_pickle=False) as npz:
            meta = json.loads(str(npz["__meta__"]))
            model_cls = _find_class(meta["class"])
            if model_cls is None:
                raise ValueError(f"{path} holds an unknown model class {meta['class']!r}")
            if not issubclass(model_cls, cls):
                raise TypeError(f"{path} holds a {meta['class']}, not a {cls.__name__}")
            model = model_cls(**_restore_tuples(model_cls, meta["params"]))
            for name, value in meta["scalars"].items():
                setattr(model, name, value)
            sparse_parts: dict[str, dict] = {}
            for key in npz.files:
                kind, _, rest = key.partition(":")
                if kind == "array":
                    setattr(model, rest, npz[key])
                elif kind == "sparse":
                    name, part = rest.split(":")
                    sparse_parts.setdefault(name, {})[part] = npz[key]
            for name, p in sparse_parts.items():
                setattr(model, name, sp.csr_matrix((p["data"], p["indices"], p["indptr"]),
                                                   shape=tuple(p["shape"])))
        model._reset_lookups()
        return model


def _class_path(cls: type) -> str:
    """``module.QualifiedName``: unique even when two frameworks both have a ``TwoTower``."""
    return f"{cls.__module__}.{cls.__qualname__}"


def _find_class(path: str):
    """The registered class at ``path``, importing its module first (e.g. ``reclib.neural``)."""
    if path not in Recommender._registry and "." in path:
        module = path.rsplit(".", 1)[0]
        if module.startswith("reclib."):
            try:
                importlib.import_module(module)
            except ImportError:
                return None
    return Recommender._registry.get(path)


def _restore_tuples(model_cls: type, params: dict) -> dict:
    """JSON turns tuples into lists; give back tuples where the constructor's default is one."""
    defaults = {p.name: p.default for p in inspect.signature(model_cls.__init__).parameters.values()}
    return {name: tuple(value) if isinstance(value, list) and isinstance(defaults.get(name), tuple)
            else value for name, value in params.items()}


def _savable(name: str, value: np.ndarray) -> np.ndarray:
    if value.dtype != object:
        return value
    if all(isinstance(v, str) for v in value):
        return value.astype(str)
    raise TypeError(f"cannot save {name}: it holds Python objects of mixed types")
