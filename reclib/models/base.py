"""The base class every reclib recommender inherits.

It owns the steps that are the same for every model, so that a model file holds only its
mathematics:

* input validation and the raw-id <-> index maps (``fit`` takes an :class:`~reclib.Interactions`
  or a users x items sparse matrix; ``predict``/``recommend`` take and return raw ids);
* the not-fitted error, seen-item masking, candidate filters and batched top-k selection
  (through the ranking core, :func:`reclib.core.topk`);
* ``get_params``/``set_params`` in scikit-learn's protocol, so ``sklearn.base.clone`` works;
* ``save``/``load`` in the model file format of :mod:`reclib.core.modelfile` (arrays plus a
  JSON header with checksums; never a pickle).

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

import copy
import importlib
import inspect
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .._validation import check_bool, check_int
from .._version import __version__
from ..core import modelfile
from ..core.idmap import IdMap
from ..core.ranking import default_batch_size, topk
from ..interactions import Interactions


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
    #: Base classes that only share machinery set this in their own body (the contract
    #: suite then leaves them out); it is not inherited.
    _abstract = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        Recommender._registry[_class_path(cls)] = cls
        if "_abstract" not in cls.__dict__:
            cls._abstract = False

    # ------------------------------------------------------------------ hyper-parameters
    @classmethod
    def _param_names(cls) -> list[str]:
        if cls.__init__ is object.__init__:
            return []
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]

    def get_params(self, deep: bool = True) -> dict:
        """The constructor's arguments as stored (scikit-learn's protocol).

        With ``deep=True`` a parameter that has ``get_params`` itself also contributes its
        parameters as ``name__sub``.
        """
        check_bool("deep", deep)
        out = {}
        for name in self._param_names():
            value = getattr(self, name)
            out[name] = value
            if deep and hasattr(value, "get_params") and not isinstance(value, type):
                out.update({f"{name}__{k}": v for k, v in value.get_params().items()})
        return out

    def set_params(self, **params) -> "Recommender":
        """Set constructor arguments by name (``name__sub`` for nested ones); return ``self``.

        Values are validated at the next ``fit``, as the constructor's are. The fitted state is
        kept until then.
        """
        valid = self._param_names()
        nested: dict[str, dict] = {}
        for key, value in params.items():
            name, _, sub = key.partition("__")
            if name not in valid:
                raise ValueError(f"{type(self).__name__} has no parameter {name!r}; its "
                                 f"parameters are {valid}")
            if sub:
                nested.setdefault(name, {})[sub] = value
            else:
                setattr(self, name, value)
        for name, sub_params in nested.items():
            getattr(self, name).set_params(**sub_params)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params(deep=False).items())
        return f"{type(self).__name__}({args})"

    def predicts_ratings(self) -> bool:
        """True when ``predict`` estimates ratings on the training scale (rating models).

        Ranking models (popularity counts, EASE, iALS, BPR scores) return scores whose scale
        means nothing as a rating; :func:`~reclib.evaluation.evaluate_ratings` refuses them.
        """
        return False

    def unknown_fallback(self) -> str:
        """What ``predict(..., allow_unknown=True)`` gives a pair with an id unseen in training."""
        return "no fallback (a pair with an unknown id raises an error)"

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
        self.seen_ = data.to_csr(binary=True, dtype=np.float32)
        self.rating_range_ = np.array([data.ratings.min(), data.ratings.max()])
        self._reset_lookups(data.user_map, data.item_map)
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

    def _reset_lookups(self, user_map: IdMap | None = None, item_map: IdMap | None = None) -> None:
        """Hold the training data's id maps (fit), or rebuild them from the ids (load)."""
        self._user_map = user_map if user_map is not None else IdMap(self.user_ids_, "user")
        self._item_map = item_map if item_map is not None else IdMap(self.item_ids_, "item")

    @property
    def user_map_(self) -> IdMap:
        """The :class:`~reclib.core.IdMap` of the training users."""
        self._check_is_fitted()
        return self._user_map

    @property
    def item_map_(self) -> IdMap:
        """The :class:`~reclib.core.IdMap` of the training items."""
        self._check_is_fitted()
        return self._item_map

    def user_index(self, user_ids, allow_unknown: bool = False) -> np.ndarray:
        """Indices of raw user ids (``-1`` for unknown ones when ``allow_unknown``)."""
        self._check_is_fitted()
        return self._user_map.index(user_ids, check_bool("allow_unknown", allow_unknown),
                                    "user_ids")

    def item_index(self, item_ids, allow_unknown: bool = False) -> np.ndarray:
        """Indices of raw item ids (``-1`` for unknown ones when ``allow_unknown``)."""
        self._check_is_fitted()
        return self._item_map.index(item_ids, check_bool("allow_unknown", allow_unknown),
                                    "item_ids")

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
        allow_unknown = check_bool("allow_unknown", allow_unknown)
        users = self.user_index(user_ids, allow_unknown)
        items = self.item_index(item_ids, allow_unknown)
        if len(users) != len(items):
            raise ValueError(f"user_ids has {len(users)} entries but item_ids has {len(items)}")
        return self.predict_indices(users, items, clip=clip)

    def predict_indices(self, users: np.ndarray, items: np.ndarray, clip: bool = False) -> np.ndarray:
        """:meth:`predict` for index arrays (``-1`` marks an id unknown to training)."""
        self._check_is_fitted()
        clip = check_bool("clip", clip)
        users, items = np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)
        scores = np.asarray(self._predict(users, items), dtype=np.float64)
        if np.isnan(scores).any():
            raise ValueError(f"{type(self).__name__} predicted NaN for "
                             f"{int(np.isnan(scores).sum())} pair(s); the model is diverged "
                             f"or was given NaN inputs")
        if clip:
            scores = np.clip(scores, *self.rating_range_)
        return scores

    def _predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        if (users < 0).any() or (items < 0).any():
            raise ValueError(f"{type(self).__name__} cannot score users or items unseen in "
                             f"training")
        out = np.empty(len(users))
        uniq, inverse = np.unique(users, return_inverse=True)
        step = default_batch_size(self.n_items)
        for start in range(0, len(uniq), step):
            block = self._score_users(uniq[start:start + step])
            sel = (inverse >= start) & (inverse < start + len(block))
            out[sel] = block[inverse[sel] - start, items[sel]]
        return out

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def recommend(self, user_ids, k: int = 10, exclude_seen: bool = True, items=None,
                  filter_items=None, batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k items for each user, best first (ties: lower item index first).

        Parameters
        ----------
        user_ids : array-like
            Raw user ids (each must have been seen in training).
        k : int
            List length, ``1 <= k <= n_items``.
        exclude_seen : bool
            Leave out the items each user interacted with in training.
        items : array-like, optional
            Raw ids of the candidate items: rank only these.
        filter_items : array-like, optional
            Raw ids of items never to recommend (for example out of stock).
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
        exclude_seen = check_bool("exclude_seen", exclude_seen)
        allowed = np.ones(self.n_items, dtype=bool)
        if items is not None:
            allowed[:] = False
            allowed[self._item_map.index(items, argname="items")] = True
        if filter_items is not None:
            allowed[self._item_map.index(filter_items, argname="filter_items")] = False
        n_eligible = np.full(len(users), int(allowed.sum()))
        if exclude_seen and len(users):
            n_eligible -= (self.seen_[users] @ allowed.astype(np.float32)).astype(np.int64)
        if len(users) and n_eligible.min() < k:
            worst = int(np.argmin(n_eligible))
            user = np.atleast_1d(user_ids)[worst]
            user = user.item() if isinstance(user, np.generic) else user
            raise ValueError(f"k == {k} but user {user!r} has only "
                             f"{n_eligible[worst]} items left to recommend after exclude_seen, "
                             f"items and filter_items; lower k or relax the filters")
        candidates = None if allowed.all() else allowed
        idx, vals = self._rank(users, k, exclude_seen, candidates, batch_size)
        return self.item_ids_[idx], vals

    def _rank(self, users: np.ndarray, k: int, exclude_seen: bool = True, candidates=None,
              batch_size: int | None = None, seen: sp.csr_matrix | None = None):
        """Top-k item *indices* and scores of user *indices*: the one path every list takes.

        ``recommend``, the evaluation protocols and serving call this. ``seen`` replaces the
        model's own seen matrix as the exclusion (the protocols pass the training split's).
        """
        self._check_is_fitted()
        if batch_size is None:
            batch_size = default_batch_size(self.n_items)
        batch_size = check_int("batch_size", batch_size, minimum=1)
        seen = self.seen_ if seen is None else seen
        idx = np.empty((len(users), k), dtype=np.int64)
        vals = np.empty((len(users), k))
        for start in range(0, len(users), batch_size):
            rows = users[start:start + batch_size]
            exclude = seen[rows] if exclude_seen else None
            block = slice(start, start + len(rows))
            idx[block], vals[block] = self._topk_block(rows, k, exclude, candidates)
        return idx, vals

    def _topk_block(self, rows: np.ndarray, k: int, exclude, candidates):
        """Top-k of one block of users; neural models override it to rank on their device."""
        return topk(self._checked_scores(rows), k, exclude=exclude, candidates=candidates,
                    source=type(self).__name__)

    def _checked_scores(self, users: np.ndarray) -> np.ndarray:
        scores = np.asarray(self._score_users(users))
        if scores.shape != (len(users), self.n_items):
            raise RuntimeError(f"{type(self).__name__}._score_users returned shape "
                               f"{scores.shape}, expected {(len(users), self.n_items)}")
        return scores

    def score_block(self, users: np.ndarray, exclude_seen: bool = True) -> np.ndarray:
        """Dense float64 scores of user *indices* against all items, seen items at ``-inf`` if asked."""
        self._check_is_fitted()
        exclude_seen = check_bool("exclude_seen", exclude_seen)
        users = np.asarray(users, dtype=np.int64)
        scores = np.array(self._checked_scores(users), dtype=np.float64)
        if exclude_seen:
            sub = self.seen_[users]
            scores[np.repeat(np.arange(len(users)), np.diff(sub.indptr)), sub.indices] = -np.inf
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
        norms = np.linalg.norm(vectors, axis=1)
        norms[norms == 0] = 1.0
        unit = vectors / norms[:, None]
        return self._top_similar(items, unit[items] @ unit.T, k)

    def _top_similar(self, items: np.ndarray, sims: np.ndarray, k: int):
        """Top-k of a (len(items), n_items) similarity block, each item excluded from its row."""
        k = check_int("k", k, minimum=1, maximum=self.n_items - 1)
        own = np.zeros(sims.shape, dtype=bool)
        own[np.arange(len(items)), items] = True
        idx, vals = topk(sims, k, exclude=own, source=type(self).__name__)
        return self.item_ids_[idx], vals

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> Path:
        """Write hyper-parameters and fitted state to one model file (see :mod:`reclib.core.modelfile`).

        ``".npz"`` is added to a path without it; :meth:`load` does the same, so
        ``save("m")`` and ``load("m")`` name the same file. Returns the path written.
        """
        header, arrays = self.to_state()
        return modelfile.write(path, header, arrays)

    def to_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """The fitted model as ``(header, arrays)``: what :meth:`save` writes, in memory.

        Another file format can carry a model this way (the serving store embeds one) and
        rebuild it with :meth:`from_state`.
        """
        self._check_is_fitted()
        arrays: dict[str, np.ndarray] = {}
        scalars = {}
        for name, value in vars(self).items():
            if not name.endswith("_") or name.startswith("_"):
                continue
            if sp.issparse(value):
                csr = sp.csr_matrix(value)
                for part in ("data", "indices", "indptr"):
                    arrays[f"sparse/{name}/{part}"] = getattr(csr, part)
                arrays[f"sparse/{name}/shape"] = np.array(csr.shape)
            elif isinstance(value, np.ndarray):
                arrays[f"attr/{name}"] = _savable(name, value)
            elif name == "weights_" and isinstance(value, dict):
                for key, w in value.items():
                    arrays[f"weights/{key}"] = np.asarray(w)
            elif value is None or isinstance(value, (bool, int, float, str, list)):
                scalars[name] = value
            elif isinstance(value, (np.integer, np.floating, np.bool_)):
                scalars[name] = value.item()
            else:
                raise TypeError(f"cannot save fitted attribute {name} of type "
                                f"{type(value).__name__}")
        header = {"class": _class_path(type(self)), "params": self.get_params(deep=False),
                  "scalars": scalars, "reclib_version": __version__}
        return header, arrays

    @classmethod
    def load(cls, path) -> "Recommender":
        """Read a model written by :meth:`save`; never unpickles.

        Raises
        ------
        reclib.core.ModelFileError
            For a file that is empty, truncated, not a model file, corrupt (a checksum that
            does not match), of an unknown class, with parameters the class refuses, or with
            arrays that do not fit its class. The message names the file.
        """
        path = Path(path)
        if not path.exists() and modelfile.resolve_path(path).exists():
            path = modelfile.resolve_path(path)
        header, arrays = modelfile.read(path)
        return cls.from_state(header, arrays, where=str(path))

    @classmethod
    def from_state(cls, header: dict, arrays: dict, where: str = "the model") -> "Recommender":
        """The model of :meth:`to_state`'s ``(header, arrays)``; errors name ``where``."""
        for field in ("class", "params", "scalars"):
            if field not in header:
                raise modelfile.ModelFileError(f"{where}: the header has no {field!r} field")
        model_cls = _find_class(header["class"])
        if model_cls is None:
            raise modelfile.ModelFileError(f"{where} holds an unknown model class "
                                           f"{header['class']!r}")
        if not issubclass(model_cls, cls):
            raise TypeError(f"{where} holds a {header['class']}, not a {cls.__name__}")
        try:
            model = model_cls(**_restore_tuples(model_cls, header["params"]))
            model._validate_params()
        except (TypeError, ValueError) as err:
            raise modelfile.ModelFileError(f"{where}: the saved parameters of "
                                           f"{model_cls.__name__} are not valid: {err}") from None
        for name, value in header["scalars"].items():
            setattr(model, name, value)
        sparse_parts: dict[str, dict] = {}
        weights = {}
        for key, value in arrays.items():
            kind, _, rest = key.partition("/")
            if kind == "attr":
                setattr(model, rest, value)
            elif kind == "sparse":
                name, _, part = rest.rpartition("/")
                sparse_parts.setdefault(name, {})[part] = value
            elif kind == "weights":
                weights[rest] = value
            else:
                raise modelfile.ModelFileError(f"{where}: unknown array kind in {key!r}")
        if weights:
            model.weights_ = weights
        try:
            for name, p in sparse_parts.items():
                setattr(model, name, sp.csr_matrix((p["data"], p["indices"], p["indptr"]),
                                                   shape=tuple(p["shape"])))
            model._reset_lookups()
            model._check_restored()
        except (AttributeError, KeyError, IndexError, TypeError, ValueError, RuntimeError) as err:
            raise modelfile.ModelFileError(
                f"{where}: its arrays do not fit a {model_cls.__name__} "
                f"({type(err).__name__}: {err})") from None
        return model

    def _check_restored(self) -> None:
        """Score one user after :meth:`load`, so a file whose arrays do not fit fails there."""
        if not hasattr(self, "seen_") or self.seen_.shape != (self.n_users, self.n_items):
            raise ValueError("the seen-item matrix does not match the id arrays")
        if self.n_users:
            self._checked_scores(np.zeros(1, dtype=np.int64))


def _class_path(cls: type) -> str:
    """``module.QualifiedName``: unique even when two frameworks both have a ``TwoTower``."""
    return f"{cls.__module__}.{cls.__qualname__}"


def _find_class(path: str):
    """The registered class at ``path``, importing its module first (e.g. ``reclib.neural``)."""
    if not isinstance(path, str):
        return None
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
    if not isinstance(params, dict):
        raise TypeError(f"params must be a JSON object, got {type(params).__name__}")
    defaults = {p.name: p.default for p in inspect.signature(model_cls.__init__).parameters.values()}
    return {name: tuple(value) if isinstance(value, list) and isinstance(defaults.get(name), tuple)
            else copy.deepcopy(value) for name, value in params.items()}


def _savable(name: str, value: np.ndarray) -> np.ndarray:
    if value.dtype != object:
        return value
    if all(isinstance(v, str) for v in value):
        return value.astype(str)
    raise TypeError(f"cannot save {name}: it holds Python objects of mixed types")
