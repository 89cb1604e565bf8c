r"""The model store: what a service needs from a fitted model, in one checked file.

A served model is reduced to two matrices and a few tables. A user is scored against every
item by an inner product,

.. math::

    s(u, i) = \langle x_u, y_i \rangle, \qquad x_u \in \mathbb{R}^d,\; y_i \in \mathbb{R}^d,

so that an index over the rows :math:`y_i` answers a recommendation (see
:mod:`reclib.serving.index`). Models whose score has this form are exported by
:func:`export_model`:

* :class:`~reclib.models.ImplicitALS`: :math:`x_u, y_i` are its factors; its confidence and
  regularisation settings travel with them so that a user can be folded in online
  (:mod:`reclib.serving.foldin`).
* :class:`~reclib.models.BPR`: the item bias joins the inner product,
  :math:`x_u = (p_u, 1)`, :math:`y_i = (q_i, b_i)`.
* :class:`~reclib.text.TextMappedALS`: as ImplicitALS, plus its text map
  :math:`\bar q + W^\top (e - \bar e)`, so that an item added while serving gets a factor
  from its text alone (the sentence encoder's name travels with the map, and a server with
  a different encoder refuses to use it).
* :class:`~reclib.neural.SASRec` and :class:`~reclib.neural.GRU4Rec`: :math:`x_u` is the last
  hidden state after the user's training sequence and :math:`y_i = E_i`, the item table.
  The fitted network travels in the store, so a user is re-encoded after each event
  (:mod:`reclib.serving.encoders`).
* :class:`~reclib.neural.TwoTower`: the towers' unit vectors (the temperature only rescales
  the scores, it does not change the order). With ``history=False`` its user tower reads only
  the user's id and features, not the history, so events are logged but cannot move its
  vectors; with ``history=True`` the fitted model travels in the store, as SASRec's does, and
  a user is re-encoded from the updated history after each event.

Models that are not factorised (EASE's item-item matrix, the neighbourhood models) have no
user vector to index; :func:`export_model` refuses them with an error that says so.

File format (version 1)
-----------------------
One uncompressed ``.npz`` file, read with ``allow_pickle=False``. It holds the arrays
``user_ids``, ``item_ids``, ``user_vectors`` (n_users, d, float32), ``item_vectors``
(n_items, d, float32), ``seen_indptr``, ``seen_indices``, ``seen_data`` (the training
interactions as CSR, users x items), ``popularity`` (n_items,) and optionally
``item_titles``, the text map ``text_map``, ``text_mean``, ``factor_mean``, and the
arrays of an embedded model (``encoder/<key>``, keys as in :mod:`reclib.core.modelfile`);
and ``__serving_header__``, a JSON string (a different key from the model files of :mod:`reclib.core`, so the two are never confused)::

    {"format": "reclib-serving-store", "version": 1, "model": "reclib.models...",
     "foldin": {...} or null, "text_encoder": name or null,
     "encoder": {model-file header} or null,
     "arrays": {name: {"dtype": ..., "shape": [...], "sha256": ...}}}

Loading checks the format name and version, that every array the header lists is there with
its dtype, shape and SHA-256 checksum and that no other array is, and that the shapes agree
with each other. Any failure raises :class:`StoreError` naming the file.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

FORMAT_NAME = "reclib-serving-store"
FORMAT_VERSION = 1
_REQUIRED = ("user_ids", "item_ids", "user_vectors", "item_vectors", "seen_indptr",
             "seen_indices", "seen_data", "popularity")
_FOLDIN_KEYS = {"reg", "alpha", "confidence", "epsilon", "binary", "reg_exponent"}


class StoreError(ValueError):
    """A store or model file that cannot be served: corrupt, truncated, mismatched, unsupported."""


@dataclass
class ModelStore:
    """User and item vectors with their id tables, ready to index.

    Attributes
    ----------
    user_ids, item_ids : ndarray
        Raw ids in index order.
    user_vectors : ndarray of shape (n_users, d), float32
    item_vectors : ndarray of shape (n_items, d), float32
    seen : scipy.sparse.csr_matrix of shape (n_users, n_items)
        Training interactions (their stored values are the model's :math:`r_{ui}`).
    popularity : ndarray of shape (n_items,)
        Training interaction counts: the list an unknown user gets.
    foldin : dict or None
        iALS settings (``reg, alpha, confidence, epsilon, binary, reg_exponent``) when users
        can be folded in, else None.
    model : str
        The class the vectors came from.
    item_titles : ndarray of str, optional
    encoder_model : Recommender, optional
        A fitted SASRec, GRU4Rec or TwoTower (``history=True``) that re-encodes users from
        their updated history (:mod:`reclib.serving.encoders`).
    text_map : dict, optional
        ``{"W": (t, d), "text_mean": (t,), "factor_mean": (d,), "encoder": name}``: how a
        TextMappedALS maps a new item's text embedding to a factor.
    """

    user_ids: np.ndarray
    item_ids: np.ndarray
    user_vectors: np.ndarray
    item_vectors: np.ndarray
    seen: sp.csr_matrix
    popularity: np.ndarray
    foldin: dict | None = None
    model: str = "arrays"
    item_titles: np.ndarray | None = None
    source: str = field(default="<memory>", compare=False)
    encoder_model: object = field(default=None, compare=False)
    text_map: dict | None = field(default=None, compare=False)

    def __post_init__(self):
        self.user_vectors = np.ascontiguousarray(self.user_vectors, dtype=np.float32)
        self.item_vectors = np.ascontiguousarray(self.item_vectors, dtype=np.float32)
        self.seen = sp.csr_matrix(self.seen)
        self.popularity = np.asarray(self.popularity, dtype=np.float64)
        self.user_ids = np.asarray(self.user_ids)
        self.item_ids = np.asarray(self.item_ids)
        if self.foldin is not None:
            missing = _FOLDIN_KEYS - set(self.foldin)
            if missing:
                raise StoreError(f"{self.source}: fold-in settings lack {sorted(missing)}")
        _check_shapes(self)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def dim(self) -> int:
        return self.item_vectors.shape[1]

    def save(self, path) -> Path:
        """Write the store as described in the module docstring; returns the path."""
        path = Path(path)
        arrays = {"user_ids": _plain(self.user_ids), "item_ids": _plain(self.item_ids),
                  "user_vectors": self.user_vectors, "item_vectors": self.item_vectors,
                  "seen_indptr": self.seen.indptr.astype(np.int64),
                  "seen_indices": self.seen.indices.astype(np.int64),
                  "seen_data": self.seen.data.astype(np.float64),
                  "popularity": self.popularity}
        if self.item_titles is not None:
            arrays["item_titles"] = np.asarray(self.item_titles).astype(str)
        encoder_header = None
        if self.encoder_model is not None:
            encoder_header, model_arrays = self.encoder_model.to_state()
            arrays.update({f"encoder/{key}": a for key, a in model_arrays.items()})
        if self.text_map is not None:
            arrays.update({"text_map": self.text_map["W"], "text_mean": self.text_map["text_mean"],
                           "factor_mean": self.text_map["factor_mean"]})
        header = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "model": self.model,
                  "foldin": self.foldin, "encoder": encoder_header,
                  "text_encoder": None if self.text_map is None else self.text_map["encoder"],
                  "arrays": {name: {"dtype": a.dtype.str, "shape": list(a.shape),
                                    "sha256": _digest(a)} for name, a in arrays.items()}}
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, __serving_header__=np.array(json.dumps(header)), **arrays)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path) -> "ModelStore":
        """Read and check a store file (see the module docstring); never unpickles."""
        path = Path(path)
        arrays, header = _read_npz(path, "__serving_header__")
        if header.get("format") != FORMAT_NAME:
            raise StoreError(f"{path}: not a serving store (format {header.get('format')!r})")
        if header.get("version") != FORMAT_VERSION:
            raise StoreError(f"{path}: store version {header.get('version')!r}, this reclib "
                             f"reads version {FORMAT_VERSION}")
        listed = header.get("arrays", {})
        missing = [n for n in _REQUIRED if n not in listed]
        if missing:
            raise StoreError(f"{path}: header lists no {missing}")
        if set(arrays) != set(listed):
            raise StoreError(f"{path}: arrays {sorted(set(arrays) ^ set(listed))} are in the "
                             f"file or the header but not both")
        for name, spec in listed.items():
            a = arrays[name]
            if a.dtype.str != spec["dtype"] or list(a.shape) != list(spec["shape"]):
                raise StoreError(f"{path}: array {name} is {a.dtype.str} {list(a.shape)}, the "
                                 f"header says {spec['dtype']} {spec['shape']}")
            if _digest(a) != spec["sha256"]:
                raise StoreError(f"{path}: array {name} fails its SHA-256 checksum (the file "
                                 f"is corrupt)")
        n_users, n_items = len(arrays["user_ids"]), len(arrays["item_ids"])
        try:
            seen = sp.csr_matrix((arrays["seen_data"], arrays["seen_indices"],
                                  arrays["seen_indptr"]), shape=(n_users, n_items))
        except ValueError as err:
            raise StoreError(f"{path}: the seen-item matrix is inconsistent: {err}") from None
        encoder_model = None
        if header.get("encoder") is not None:
            from ..models.base import Recommender
            model_arrays = {key[len("encoder/"):]: a for key, a in arrays.items()
                            if key.startswith("encoder/")}
            try:
                encoder_model = Recommender.from_state(header["encoder"], model_arrays,
                                                       where=f"{path} (its embedded model)")
            except Exception as err:               # any failure is the file's: name it
                raise StoreError(f"{path}: cannot rebuild the embedded model: "
                                 f"{type(err).__name__}: {err}") from None
        text_map = None
        if header.get("text_encoder") is not None:
            missing = [n for n in ("text_map", "text_mean", "factor_mean") if n not in arrays]
            if missing:
                raise StoreError(f"{path}: names a text encoder but lacks {missing}")
            text_map = {"W": arrays["text_map"], "text_mean": arrays["text_mean"],
                        "factor_mean": arrays["factor_mean"], "encoder": header["text_encoder"]}
        return cls(arrays["user_ids"], arrays["item_ids"], arrays["user_vectors"],
                   arrays["item_vectors"], seen, arrays["popularity"], header.get("foldin"),
                   header.get("model", "arrays"), arrays.get("item_titles"), source=str(path),
                   encoder_model=encoder_model, text_map=text_map)


def export_model(model, item_titles=None, train=None, text_encoder=None) -> ModelStore:
    """A :class:`ModelStore` from a fitted recommender (see the module docstring for which).

    Parameters
    ----------
    model : Recommender
        A fitted ImplicitALS (or TextMappedALS), BPR, SASRec, GRU4Rec or TwoTower.
    item_titles : mapping or pandas.Series, optional
        Raw item id -> title, shown by the web page; items without one get ``""``.
    train : Interactions, optional
        The training data. Needed for an ImplicitALS fitted with ``binary=False``: its
        ``seen_`` matrix marks which items a user has but not the values :math:`r_{ui}` the
        confidences were computed from, and a fold-in needs those.
    text_encoder : str, optional
        For a TextMappedALS: the name of the sentence encoder whose vectors the text map was
        fitted on (default: the book's encoder, all-MiniLM-L6-v2 from its pinned wheel). A
        server adds items by text only with an encoder of this name.
    """
    name = f"{type(model).__module__}.{type(model).__qualname__}"
    if not hasattr(model, "user_ids_"):
        raise StoreError(f"{type(model).__name__} is not fitted; fit it before exporting")
    seen = sp.csr_matrix(model.seen_)
    attrs = vars(model)
    foldin = encoder_model = text_map = None
    from ..models import ImplicitALS
    if isinstance(model, ImplicitALS) and "user_factors_" in attrs:
        users, items = model.user_factors_, model.item_factors_
        foldin = {key: getattr(model, key) for key in sorted(_FOLDIN_KEYS)}
        if "text_map_" in attrs:                                         # TextMappedALS
            text_map = {"W": model.text_map_, "text_mean": model.text_mean_,
                        "factor_mean": model.factor_mean_,
                        "encoder": text_encoder or _default_text_encoder()}
        if not model.binary:
            if train is None:
                raise StoreError("ImplicitALS with binary=False folds users in from the stored "
                                 "values r_ui, which the model does not keep; pass "
                                 "train=<the Interactions it was fitted on>")
            values = sp.csr_matrix(train.to_csr(binary=False))
            if values.shape != seen.shape:
                raise StoreError(f"train has shape {values.shape}, the model {seen.shape}")
            seen = values
    elif "item_bias_" in attrs and "user_factors_" in attrs:            # BPR
        users = np.hstack([model.user_factors_, np.ones((len(model.user_ids_), 1))])
        items = np.hstack([model.item_factors_, np.asarray(model.item_bias_)[:, None]])
    elif "sequence_items_" in attrs and hasattr(model, "fitted_module"):  # SASRec, GRU4Rec
        from .encoders import SequenceEncoder
        encoder = SequenceEncoder(model)
        users = np.vstack([encoder.vectors([model._sequence(u) for u in block])
                           for block in np.array_split(np.arange(model.n_users),
                                                       max(1, model.n_users // 512))])
        items = model.fitted_module().item_embeddings().detach().double().numpy()
        encoder_model = model
    elif "user_vectors_" in attrs and "item_vectors_" in attrs:        # two-tower models
        users, items = model.user_vectors_, model.item_vectors_
        if "history_items_" in attrs:                # history=True: re-encodes users
            encoder_model = model
    else:
        raise StoreError(
            f"{type(model).__name__} cannot be served by reclib.serving: its scores are not an "
            f"inner product of one user vector and one item vector (EASE and the neighbourhood "
            f"models score through an item-item matrix), so there is nothing to index; serve "
            f"it offline with model.recommend, or export ImplicitALS, BPR, SASRec, GRU4Rec "
            f"or TwoTower")
    popularity = np.bincount(seen.indices, minlength=seen.shape[1]).astype(np.float64)
    titles = None
    if item_titles is not None:
        lookup = dict(item_titles)
        titles = np.array([str(lookup.get(i, "")) for i in model.item_ids_.tolist()])
    return ModelStore(model.user_ids_, model.item_ids_, users, items, seen, popularity,
                      foldin, name, titles, encoder_model=encoder_model, text_map=text_map)


def _default_text_encoder() -> str:
    """The cache name of the default sentence encoder, the one chapter 7 fits the map on."""
    from ..text.encoder import DEFAULT_MODEL, WHEEL, WHEEL_VERSION
    return f"{DEFAULT_MODEL}@{WHEEL}=={WHEEL_VERSION}"


def load_any(path, item_titles=None) -> ModelStore:
    """A store from ``path``: a store file, or a model file written by ``Recommender.save``."""
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"{path}: no such file")
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError) as err:
        raise StoreError(f"{path}: not a readable .npz file ({err}); it may be truncated") from None
    if "__serving_header__.npy" in names:
        return ModelStore.load(path)
    from ..models.base import Recommender
    try:
        model = Recommender.load(path)
    except Exception as err:                       # any failure is the file's: name it
        raise StoreError(f"{path}: cannot read the model file: {type(err).__name__}: "
                         f"{err}") from None
    store = export_model(model, item_titles)
    store.source = str(path)
    return store


def _read_npz(path: Path, header_key: str) -> tuple[dict, dict]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except Exception as err:                       # zip, CRC, dtype and pickle errors alike
        raise StoreError(f"{path}: cannot read the file ({type(err).__name__}: {err}); it may "
                         f"be truncated or corrupt") from None
    if header_key not in arrays:
        raise StoreError(f"{path}: has no {header_key} entry")
    try:
        header = json.loads(str(arrays.pop(header_key)))
    except json.JSONDecodeError as err:
        raise StoreError(f"{path}: its header is not valid JSON ({err})") from None
    return arrays, header


def _check_shapes(store: ModelStore) -> None:
    where = store.source
    n_users, n_items = len(store.user_ids), len(store.item_ids)
    if store.user_vectors.ndim != 2 or store.user_vectors.shape[0] != n_users:
        raise StoreError(f"{where}: user_vectors has shape {store.user_vectors.shape}, expected "
                         f"({n_users}, d)")
    if store.item_vectors.ndim != 2 or store.item_vectors.shape[0] != n_items:
        raise StoreError(f"{where}: item_vectors has shape {store.item_vectors.shape}, expected "
                         f"({n_items}, d)")
    if store.user_vectors.shape[1] != store.item_vectors.shape[1]:
        raise StoreError(f"{where}: user vectors have {store.user_vectors.shape[1]} dimensions, "
                         f"item vectors {store.item_vectors.shape[1]}")
    if store.seen.shape != (n_users, n_items):
        raise StoreError(f"{where}: seen matrix has shape {store.seen.shape}, expected "
                         f"{(n_users, n_items)}")
    if store.popularity.shape != (n_items,):
        raise StoreError(f"{where}: popularity has shape {store.popularity.shape}, expected "
                         f"({n_items},)")
    if store.item_titles is not None and len(store.item_titles) != n_items:
        raise StoreError(f"{where}: {len(store.item_titles)} item titles for {n_items} items")
    for name in ("user_vectors", "item_vectors"):
        if not np.isfinite(getattr(store, name)).all():
            raise StoreError(f"{where}: {name} holds NaN or infinite values")
    for name, ids in (("user_ids", store.user_ids), ("item_ids", store.item_ids)):
        if len(np.unique(ids.astype(str))) != len(ids):
            raise StoreError(f"{where}: {name} has duplicates (ids are compared as text)")


def _plain(ids: np.ndarray) -> np.ndarray:
    ids = np.asarray(ids)
    return ids.astype(str) if ids.dtype == object else ids


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()
