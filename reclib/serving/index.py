r"""Indexes over item vectors behind one interface: exact search and faiss HNSW / IVF.

Every index answers maximum inner product search: for a query :math:`x` it returns the
:math:`k` items with the largest :math:`\langle x, y_i \rangle` that are not excluded,
best first. :class:`ExactIndex` computes every score (a blocked matrix product, then the exact
top-k of :func:`reclib.core.topk`, ties to the lower item index); the faiss indexes visit a fraction of the items and may
miss some of the true top :math:`k`, which is why their recall against the exact index is
measured (``benchmarks/serving.py``), never assumed.

* HNSW (Malkov and Yashunin, 2018): a layered proximity graph; ``ef_search`` is the size of
  the candidate list kept during the greedy search (larger: slower, higher recall).
* IVF (the inverted file of Jégou, Douze and Schmid, 2011, as implemented in faiss): items
  are bucketed by k-means into ``nlist`` cells and ``nprobe`` cells nearest the query are
  scanned exhaustively.

Exclusion (seen items) in an ANN index is done by asking for :math:`k + |E|` results and
dropping the excluded ones; a row left with fewer than :math:`k` falls back to the exact
scan, so a list is never silently short.

References
----------
Y. A. Malkov, D. A. Yashunin, "Efficient and robust approximate nearest neighbor search using
Hierarchical Navigable Small World graphs", IEEE TPAMI 2018.
H. Jégou, M. Douze, C. Schmid, "Product quantization for nearest neighbor search", IEEE TPAMI
2011.
J. Johnson, M. Douze, H. Jégou, "Billion-scale similarity search with GPUs", IEEE Trans. Big
Data 2019 (faiss).
"""

from __future__ import annotations

import numpy as np

from .._validation import check_int
from ..core import topk
from ._rows import GrowingRows

#: Scores computed at once by the exact index: (queries x items) cells per block.
_BLOCK_CELLS = 1 << 22


def exact_topk(scores: np.ndarray, k: int, exclude=None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest scores of each row, best first, through :func:`reclib.core.topk`.

    Ties go to the lower column index (the core's one tie rule); NaN raises; a row with fewer
    than ``k`` eligible columns raises.

    Parameters
    ----------
    scores : ndarray of shape (n_rows, n_cols)
    k : int
    exclude : list of int arrays, optional
        Columns left out of each row.

    Returns
    -------
    indices : int64 array of shape (n_rows, k)
    values : array of shape (n_rows, k)
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"scores must be 2-D, got shape {scores.shape}")
    k = check_int("k", k, minimum=1)
    if exclude is None:
        return topk(scores, k, source="the item and query vectors")
    if len(exclude) != len(scores):
        raise ValueError(f"exclude has {len(exclude)} rows for {len(scores)} score rows")
    idx = np.empty((len(scores), k), dtype=np.int64)
    vals = np.empty((len(scores), k), dtype=scores.dtype)
    for row, cols in enumerate(exclude):
        cols = np.asarray(cols, dtype=np.int64)
        idx[row], vals[row] = (a[0] for a in topk(scores[row:row + 1], k,
                                                  exclude=cols if len(cols) else None,
                                                  source="the item and query vectors"))
    return idx, vals


class Index:
    """The interface: ``search(queries, k, exclude=None) -> (indices, scores)``."""

    kind = "abstract"

    def __init__(self, item_vectors: np.ndarray):
        self.item_vectors = item_vectors

    @property
    def item_vectors(self) -> np.ndarray:
        """The ``(n_items, d)`` float32 rows the index searches."""
        return self._rows.view

    @item_vectors.setter
    def item_vectors(self, rows) -> None:
        self._rows = GrowingRows(rows)

    @property
    def n_items(self) -> int:
        return self.item_vectors.shape[0]

    def params(self) -> dict:
        return {"kind": self.kind}

    def _check(self, queries, k, exclude):
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if queries.shape[1] != self.item_vectors.shape[1]:
            raise ValueError(f"queries have {queries.shape[1]} dimensions, the index "
                             f"{self.item_vectors.shape[1]}")
        if exclude is not None and len(exclude) != len(queries):
            raise ValueError(f"exclude has {len(exclude)} rows for {len(queries)} queries")
        k = check_int("k", k, minimum=1, maximum=self.n_items)
        return queries, k

    def search(self, queries, k: int, exclude=None) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def add(self, vectors) -> None:
        """Append item vectors; they take the next indices and are searched at once."""
        vectors = np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)
        if vectors.shape[1] != self.item_vectors.shape[1]:
            raise ValueError(f"vectors have {vectors.shape[1]} dimensions, the index "
                             f"{self.item_vectors.shape[1]}")
        if not np.isfinite(vectors).all():
            raise ValueError("vectors hold NaN or infinite values")
        self._rows.append(vectors)                     # amortised: no copy of the matrix
        self._added(vectors)

    def _added(self, vectors: np.ndarray) -> None:
        pass

    def search_candidates(self, query, k: int, candidates: np.ndarray, exclude=None):
        """Exact top-``k`` of one query among ``candidates`` (item indices), minus ``exclude``."""
        candidates = np.unique(np.asarray(candidates, dtype=np.int64))
        if exclude is not None and len(exclude):
            candidates = candidates[~np.isin(candidates, exclude)]
        if len(candidates) < k:
            raise ValueError(f"k == {k} but only {len(candidates)} candidates are eligible")
        scores = self.item_vectors[candidates] @ np.asarray(query, dtype=np.float32).ravel()
        idx, vals = exact_topk(scores[None, :], k)
        return candidates[idx[0]], vals[0]


class ExactIndex(Index):
    """Every score, in blocks of items: :math:`O(n_{items} d)` per query, recall 1."""

    kind = "exact"

    def search(self, queries, k: int, exclude=None):
        queries, k = self._check(queries, k, exclude)
        rows_per_block = max(1, _BLOCK_CELLS // self.n_items)
        idx = np.empty((len(queries), k), dtype=np.int64)
        vals = np.empty((len(queries), k), dtype=np.float32)
        for start in range(0, len(queries), rows_per_block):
            block = queries[start:start + rows_per_block]
            scores = block @ self.item_vectors.T                      # (rows, n_items)
            ex = None if exclude is None else exclude[start:start + len(block)]
            idx[start:start + len(block)], vals[start:start + len(block)] = \
                exact_topk(scores, k, ex)
        return idx, vals


class _FaissIndex(Index):
    def __init__(self, item_vectors, threads: int = 1):
        super().__init__(item_vectors)
        import faiss
        self._faiss = faiss
        self.threads = check_int("threads", threads, minimum=1)
        faiss.omp_set_num_threads(self.threads)
        self._exact = ExactIndex(self.item_vectors)
        self._exact._rows = self._rows                        # one buffer for both

    def search(self, queries, k: int, exclude=None):
        queries, k = self._check(queries, k, exclude)
        extra = 0 if exclude is None else max((len(e) for e in exclude), default=0)
        want = min(self.n_items, k + extra)
        self._set_search_params(want)
        vals, idx = self.index.search(queries, want)
        out_idx = np.empty((len(queries), k), dtype=np.int64)
        out_vals = np.empty((len(queries), k), dtype=np.float32)
        for row in range(len(queries)):
            keep = idx[row] >= 0
            if exclude is not None and len(exclude[row]):
                keep &= ~np.isin(idx[row], exclude[row])
            cols, scores = idx[row][keep], vals[row][keep]
            if len(cols) < k:                                         # never a short list
                ex = None if exclude is None else [exclude[row]]
                cols, scores = (a[0] for a in self._exact.search(queries[row:row + 1], k, ex))
            order = np.lexsort((cols[:k], -scores[:k]))
            out_idx[row], out_vals[row] = cols[:k][order], scores[:k][order]
        return out_idx, out_vals

    def _set_search_params(self, want: int) -> None:
        pass

    def _added(self, vectors: np.ndarray) -> None:
        self.index.add(vectors)
        self._exact._rows = self._rows                        # the same rows, not a copy


class HNSWIndex(_FaissIndex):
    """faiss ``IndexHNSWFlat`` with the inner-product metric.

    Parameters
    ----------
    item_vectors : ndarray of shape (n_items, d)
    m : int
        Graph degree (faiss's ``M``).
    ef_construction, ef_search : int
        Candidate-list sizes while building and while searching.
    threads : int
        OpenMP threads of faiss (1 suits one query per request).
    """

    kind = "hnsw"

    def __init__(self, item_vectors, m: int = 32, ef_construction: int = 128,
                 ef_search: int = 128, threads: int = 1):
        super().__init__(item_vectors, threads)
        self.m = check_int("m", m, minimum=2)
        self.ef_construction = check_int("ef_construction", ef_construction, minimum=1)
        self.ef_search = check_int("ef_search", ef_search, minimum=1)
        self.index = self._faiss.IndexHNSWFlat(self.item_vectors.shape[1], self.m,
                                               self._faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = self.ef_construction
        self.index.add(self.item_vectors)

    def params(self) -> dict:
        return {"kind": self.kind, "m": self.m, "ef_construction": self.ef_construction,
                "ef_search": self.ef_search}

    def _set_search_params(self, want: int) -> None:
        self.index.hnsw.efSearch = max(self.ef_search, want)


class IVFIndex(_FaissIndex):
    """faiss ``IndexIVFFlat`` with the inner-product metric (k-means cells, ``nprobe`` scanned).

    Parameters
    ----------
    item_vectors : ndarray of shape (n_items, d)
    nlist : int, optional
        Number of cells (default about :math:`4\\sqrt{n_{items}}`).
    nprobe : int
        Cells scanned per query.
    threads : int
    random_state : int
        Seed of the k-means training.
    """

    kind = "ivf"

    def __init__(self, item_vectors, nlist: int | None = None, nprobe: int = 16,
                 threads: int = 1, random_state: int = 0):
        super().__init__(item_vectors, threads)
        n = self.n_items
        nlist = max(1, min(n // 39, int(4 * np.sqrt(n)))) if nlist is None else nlist
        self.nlist = check_int("nlist", nlist, minimum=1, maximum=n)
        self.nprobe = check_int("nprobe", nprobe, minimum=1)
        d = self.item_vectors.shape[1]
        self._quantizer = self._faiss.IndexFlatIP(d)
        self.index = self._faiss.IndexIVFFlat(self._quantizer, d, self.nlist,
                                              self._faiss.METRIC_INNER_PRODUCT)
        self.index.cp.seed = int(random_state)
        self.index.train(self.item_vectors)
        self.index.add(self.item_vectors)

    def params(self) -> dict:
        return {"kind": self.kind, "nlist": self.nlist, "nprobe": self.nprobe}

    def _set_search_params(self, want: int) -> None:
        self.index.nprobe = min(self.nprobe, self.nlist)


def build_index(item_vectors, kind: str = "exact", **params) -> Index:
    """``"exact"``, ``"hnsw"`` or ``"ivf"`` over ``item_vectors``, with that class's ``params``."""
    classes = {"exact": ExactIndex, "hnsw": HNSWIndex, "ivf": IVFIndex}
    if kind not in classes:
        raise ValueError(f"index kind == {kind!r}, must be one of {sorted(classes)}")
    return classes[kind](item_vectors, **params)


def recall_at_k(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean over rows of :math:`|F_r \\cap T_r| / k`: the share of the exact top-k found."""
    found, truth = np.asarray(found), np.asarray(truth)
    if found.shape != truth.shape:
        raise ValueError(f"found has shape {found.shape}, truth {truth.shape}")
    hits = [len(np.intersect1d(f, t)) for f, t in zip(found, truth)]
    return float(np.mean(hits) / truth.shape[1])


def load_or_build(item_vectors, kind: str, path, **params) -> Index:
    """A faiss index read from ``path`` when it was built there over the same vectors.

    The file is faiss's own format, written beside a small JSON note of the parameters and
    the SHA-256 of the vectors; a mismatch rebuilds (and rewrites) instead of serving an index
    of other vectors.
    """
    import hashlib
    import json
    from pathlib import Path

    import faiss

    path = Path(path)
    note_path = path.with_name(path.name + ".json")
    vectors = np.ascontiguousarray(item_vectors, dtype=np.float32)
    note = {"kind": kind, "params": params,
            "sha256": hashlib.sha256(vectors.tobytes()).hexdigest()}
    if path.is_file() and note_path.is_file():
        try:
            same = json.loads(note_path.read_text()) == note
        except json.JSONDecodeError:
            same = False
        if same:
            cls = {"hnsw": HNSWIndex, "ivf": IVFIndex}[kind]
            built = cls.__new__(cls)
            Index.__init__(built, vectors)
            built._faiss, built.threads = faiss, params.get("threads", 1)
            faiss.omp_set_num_threads(built.threads)
            built._exact = ExactIndex(vectors)
            built.index = faiss.read_index(str(path))
            if built.index.ntotal != len(vectors) or built.index.d != vectors.shape[1]:
                raise ValueError(f"{path}: holds {built.index.ntotal} x {built.index.d} vectors, "
                                 f"expected {vectors.shape}")
            for name, value in params.items():
                setattr(built, name, value)
            if kind == "ivf":
                built.nlist = built.index.nlist
            return built
    built = build_index(vectors, kind, **params)
    faiss.write_index(built.index, str(path))
    note_path.write_text(json.dumps(note))
    return built
