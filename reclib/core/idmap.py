"""The one map between raw ids and contiguous indices.

Data sets name users and items by whatever ids they use (integers, strings). Every model
works on indices ``0 .. n - 1``. :class:`IdMap` is the only place where one is turned into the
other: :class:`~reclib.Interactions`, every model, the splits, the evaluation protocols and
serving all hold an ``IdMap`` and map through it.

A map holds ids of one *kind*: numbers, strings or timestamps. Mixing kinds (``1`` and ``"1"``
in one column) is refused, because the two would silently become two different users; so is a
lookup with ids of another kind than the map's (a test frame read with string ids against a
map built from integers), because every such id would be "unknown".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: pandas' ``infer_dtype`` names, grouped into the kinds an id column may have.
_KINDS = {"integer": "number", "floating": "number", "mixed-integer-float": "number",
          "decimal": "number", "string": "string", "unicode": "string", "bytes": "bytes",
          "datetime64": "datetime", "datetime": "datetime", "date": "datetime"}


def as_ids(values, name: str = "ids") -> np.ndarray:
    """``values`` as a 1-D-or-more array, refusing lists that mix kinds before NumPy coerces them.

    ``np.asarray([1, "1"])`` silently turns both into the string ``"1"``; a list is therefore
    checked element by element first.
    """
    array = np.asarray(values)
    if isinstance(values, (list, tuple)) and array.ndim == 1:
        boxed = np.empty(len(values), dtype=object)
        boxed[:] = list(values)
        id_kind(boxed, name)
    return array


def id_kind(values, name: str = "ids") -> str | None:
    """The kind of an id array: ``"number"``, ``"string"``, ``"bytes"`` or ``"datetime"``.

    Returns ``None`` for an empty array. Raises a ``TypeError`` naming ``name`` for booleans,
    for missing values and for arrays that mix kinds (such as ``1`` and ``"1"``).
    """
    values = np.asarray(values)
    if values.size == 0:
        return None
    inferred = pd.api.types.infer_dtype(values.ravel(), skipna=False)
    kind = _KINDS.get(inferred)
    if kind is None:
        if inferred == "boolean":
            raise TypeError(f"{name} are booleans; ids must be numbers or strings")
        types = sorted({type(v).__name__ for v in values.ravel()[:10000]})
        raise TypeError(f"{name} mix several kinds of value ({inferred}: {', '.join(types)}); "
                        f"an id column must hold only numbers or only strings, otherwise 1 and "
                        f"'1' would become two different ids. Convert the column first, e.g. "
                        f"df[col].astype(str)")
    if kind == "number" and np.isnan(values.astype(np.float64)).any():
        raise TypeError(f"{name} contain NaN, which is not an id")
    return kind


class IdMap:
    """Raw ids in index order, with the lookup ``raw id -> index``.

    Parameters
    ----------
    ids : array-like
        The raw ids; ``ids[u]`` is the raw id of index ``u``. They must be unique and of one
        kind (see :func:`id_kind`).
    name : str
        What the ids name (``"user"`` or ``"item"``), used in error messages.

    Examples
    --------
    >>> m, codes = IdMap.from_values(["b", "a", "b"], name="user")
    >>> m.ids.tolist(), codes.tolist()
    (['a', 'b'], [1, 0, 1])
    >>> m.index(["b", "zz"], allow_unknown=True).tolist()
    [1, -1]
    """

    def __init__(self, ids, name: str = "id"):
        ids = as_ids(ids, f"{name} ids")
        if ids.ndim != 1:
            raise ValueError(f"{name} ids must be one-dimensional, got shape {ids.shape}")
        self.name = name
        self.kind = id_kind(ids, f"{name} ids")
        self._lookup = pd.Index(ids)
        if self._lookup.has_duplicates:
            dup = self._lookup[self._lookup.duplicated()][0]
            raise ValueError(f"{name} ids must be unique; {dup!r} appears more than once")
        self.ids = ids

    @classmethod
    def from_values(cls, values, name: str = "id") -> tuple["IdMap", np.ndarray]:
        """Map the distinct ``values`` to indices in sorted order; return the map and codes."""
        values = as_ids(values, f"{name} ids")
        id_kind(values, f"{name} ids")
        codes, uniques = pd.factorize(values, sort=True)
        return cls(np.asarray(uniques), name), codes.astype(np.int64)

    @classmethod
    def range(cls, n: int, name: str = "id") -> "IdMap":
        """The identity map ``0 .. n - 1`` (a sparse matrix's rows or columns)."""
        return cls(np.arange(n), name)

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"IdMap({len(self):,} {self.name} ids, {self.kind})"

    def same_as(self, other: "IdMap") -> bool:
        """True when both maps give every raw id the same index."""
        return self is other or (len(self) == len(other) and np.array_equal(self.ids, other.ids))

    def index(self, raw_ids, allow_unknown: bool = False, argname: str | None = None) -> np.ndarray:
        """Indices of ``raw_ids`` (1-D); unknown ids raise, or map to ``-1`` when ``allow_unknown``."""
        argname = argname or f"{self.name}_ids"
        raw = np.atleast_1d(as_ids(raw_ids, argname))
        if raw.ndim != 1:
            raise ValueError(f"{argname} must be one-dimensional, got shape {raw.shape}")
        kind = id_kind(raw, argname)
        if kind is not None and self.kind is not None and kind != self.kind:
            raise TypeError(f"{argname} are {kind}s (dtype {raw.dtype}) but the {self.name} ids "
                            f"of this map are {self.kind}s (dtype {self.ids.dtype}); convert "
                            f"them to the same type before looking them up")
        index = self._lookup.get_indexer(raw).astype(np.int64)
        if not allow_unknown and (index < 0).any():
            unknown = raw[index < 0]
            shown = ", ".join(repr(x.item() if isinstance(x, np.generic) else x)
                              for x in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            raise ValueError(f"{argname}: {len(unknown)} unknown {self.name} id(s): {shown}; "
                             f"the map knows {len(self)} {self.name}s")
        return index

    def raw(self, index) -> np.ndarray:
        """Raw ids of indices (every index must be in ``0 .. len - 1``)."""
        index = np.asarray(index, dtype=np.int64)
        if index.size and (index.min() < 0 or index.max() >= len(self)):
            raise IndexError(f"{self.name} index out of range 0 .. {len(self) - 1}")
        return self.ids[index]

    def compact(self, used: np.ndarray) -> tuple["IdMap", np.ndarray]:
        """The map restricted to the indices in ``used``, and ``old -> new`` (``-1`` if dropped).

        The new map keeps the old order, so no raw id is looked up again: splits use this to
        give the training part its own map in pure index arithmetic.
        """
        used = np.unique(np.asarray(used, dtype=np.int64))
        old_to_new = np.full(len(self), -1, dtype=np.int64)
        old_to_new[used] = np.arange(len(used))
        return IdMap(self.ids[used], self.name), old_to_new
