"""An on-disk cache of text embeddings, keyed by the model and a hash of each text.

One ``.npz`` file per model under the cache directory holds the keys (SHA-256 of the text)
and the vectors; it is rewritten atomically (a temporary file, then ``os.replace``), so an
interrupted run never leaves a half-written cache behind, and read with
``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np


def text_key(text: str) -> str:
    """SHA-256 hex digest of the UTF-8 bytes of ``text``."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _default_directory() -> Path:
    root = os.environ.get("RECLIB_DATA") or Path.home() / ".cache" / "reclib"
    return Path(root) / "embeddings"


class EmbeddingCache:
    """Vectors of texts already embedded by a model, stored in ``directory``.

    Parameters
    ----------
    directory : path, optional
        Default ``$RECLIB_DATA/embeddings`` (``~/.cache/reclib/embeddings``).
    """

    def __init__(self, directory=None):
        self.directory = Path(directory) if directory is not None else _default_directory()

    def path(self, model: str) -> Path:
        """The cache file of ``model`` (its name hashed, so any name is a safe file name)."""
        if not isinstance(model, str) or not model:
            raise ValueError(f"model == {model!r}, must be a non-empty model name")
        return self.directory / f"{hashlib.sha256(model.encode()).hexdigest()[:16]}.npz"

    def _read(self, model: str) -> tuple[np.ndarray, np.ndarray | None]:
        path = self.path(model)
        if not path.exists():
            return np.array([], dtype=str), None
        with np.load(path, allow_pickle=False) as npz:
            if str(npz["model"]) != model:
                raise ValueError(f"{path} holds embeddings of {str(npz['model'])!r}, not "
                                 f"{model!r}; delete it")
            return npz["keys"], npz["vectors"]

    def get(self, model: str, texts) -> tuple[np.ndarray | None, np.ndarray]:
        """``(vectors, found)``: cached rows for ``texts`` (``found[i]`` says if row i is real)."""
        keys, vectors = self._read(model)
        wanted = [text_key(t) for t in texts]
        position = {k: n for n, k in enumerate(keys.tolist())}
        found = np.array([k in position for k in wanted], dtype=bool)
        if vectors is None:
            return None, found
        out = np.zeros((len(wanted), vectors.shape[1]), dtype=vectors.dtype)
        rows = [position[k] for k, f in zip(wanted, found) if f]
        out[found] = vectors[rows]
        return out, found

    def put(self, model: str, texts, vectors: np.ndarray) -> Path:
        """Add (or replace) the vectors of ``texts`` and rewrite the file atomically."""
        vectors = np.asarray(vectors)
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise ValueError(f"vectors has shape {vectors.shape}, expected ({len(texts)}, dim)")
        keys, old = self._read(model)
        merged = dict(zip(keys.tolist(), old)) if old is not None else {}
        if old is not None and old.shape[1] != vectors.shape[1]:
            raise ValueError(f"vectors have {vectors.shape[1]} dimensions but the cache of "
                             f"{model!r} holds {old.shape[1]}")
        merged.update(zip((text_key(t) for t in texts), vectors))
        path = self.path(model)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, model=np.array(model), keys=np.array(list(merged), dtype=str),
                         vectors=np.stack(list(merged.values())))
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return path
