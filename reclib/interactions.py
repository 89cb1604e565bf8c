"""The one data contract of reclib: a set of (user, item, rating, timestamp) interactions.

Raw ids (whatever the data set uses: ints, strings) are mapped to contiguous indices
``0 .. n_users - 1`` and ``0 .. n_items - 1`` by one :class:`~reclib.core.IdMap` per side,
which everything downstream (models, splits, evaluation, serving) shares. A test set built with
``reference=train`` shares the training maps, so index ``u`` means the same user in both; rows
whose user or item the reference has never seen are kept, with index ``-1``, and counted.

Optional side information travels with the interactions: a user feature table and an item
feature table, given keyed by the raw id column and stored aligned to the index order (row
``u`` of :attr:`Interactions.user_features` describes user index ``u``). Subsets, splits and
test sets built with ``reference=train`` share the same tables. Feature columns may be
numeric, boolean, string or categorical; a string value may hold several values joined by
``"|"`` (as MovieLens genres are); :mod:`reclib.features` turns the tables into model inputs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ._constants import ITEM_COL, RATING_COL, TIMESTAMP_COL, USER_COL
from ._validation import check_bool, check_choice
from .core.idmap import IdMap, id_kind

_AUTO = "auto"


class Interactions:
    """Interactions between users and items, with raw-id <-> index maps.

    Build one with :meth:`from_dataframe` (raw ids) or :meth:`from_csr` (indices are ids).

    Attributes
    ----------
    user_map, item_map : IdMap
        The raw id <-> index maps.
    user_ids, item_ids : ndarray
        Raw ids in index order: ``user_ids[u]`` is the raw id of user index ``u``
        (``user_map.ids``).
    users, items : ndarray of int64, shape (n_interactions,)
        Index of each row's user and item; ``-1`` where the reference map does not know it.
    ratings : ndarray of float64, shape (n_interactions,)
        The rating (or ``1.0`` for implicit feedback) of each row.
    timestamps : ndarray or None
        The timestamp of each row, if the data had one.
    user_features, item_features : DataFrame or None
        Side information, one row per user (item) index in index order (index ``0 .. n - 1``,
        no id column), or ``None`` when the data carry none.
    """

    def __init__(self, users, items, ratings, timestamps, user_ids, item_ids,
                 raw_unknown_users=None, raw_unknown_items=None, *,
                 user_features=None, item_features=None):
        self.users = np.asarray(users, dtype=np.int64)
        self.items = np.asarray(items, dtype=np.int64)
        self.ratings = np.asarray(ratings, dtype=np.float64)
        self.timestamps = None if timestamps is None else np.asarray(timestamps)
        self.user_map = user_ids if isinstance(user_ids, IdMap) else IdMap(user_ids, "user")
        self.item_map = item_ids if isinstance(item_ids, IdMap) else IdMap(item_ids, "item")
        self.user_ids = self.user_map.ids
        self.item_ids = self.item_map.ids
        n = len(self.users)
        if not (len(self.items) == len(self.ratings) == n):
            raise ValueError(
                f"users, items and ratings must have one entry per interaction; got lengths "
                f"{n}, {len(self.items)}, {len(self.ratings)}")
        if self.timestamps is not None and len(self.timestamps) != n:
            raise ValueError(f"timestamps has length {len(self.timestamps)}, expected {n}")
        # Raw ids of the rows whose index is -1, in row order, so nothing is ever lost.
        self._raw_unknown_users = (np.asarray([], dtype=self.user_ids.dtype)
                                   if raw_unknown_users is None else np.asarray(raw_unknown_users))
        self._raw_unknown_items = (np.asarray([], dtype=self.item_ids.dtype)
                                   if raw_unknown_items is None else np.asarray(raw_unknown_items))
        self.user_features = _check_aligned("user_features", user_features, len(self.user_ids))
        self.item_features = _check_aligned("item_features", item_features, len(self.item_ids))

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dataframe(cls, df: pd.DataFrame, reference: "Interactions | None" = None, *,
                       user_col: str = USER_COL, item_col: str = ITEM_COL,
                       rating_col: str | None = RATING_COL, timestamp_col: str | None = _AUTO,
                       duplicates: str = "raise", user_features: pd.DataFrame | None = None,
                       item_features: pd.DataFrame | None = None) -> "Interactions":
        """Build interactions from a frame of raw ids.

        Parameters
        ----------
        df : DataFrame
            One row per interaction.
        reference : Interactions, optional
            Reuse this object's id maps (use the training set when building a test set).
            Rows with ids it does not know get index ``-1`` and are counted in
            :attr:`n_unknown_users` / :attr:`n_unknown_items`; they are never dropped.
        user_col, item_col : str
            Columns of the raw user and item ids.
        rating_col : str or None
            Column of the ratings; ``None`` for implicit feedback (every rating is ``1.0``).
        timestamp_col : str or None
            Column of the timestamps; by default it is used when present.
        duplicates : {"raise", "sum", "last"}
            What to do with repeated (user, item) pairs: raise (default), add their ratings,
            or keep the last row (by timestamp when there is one, otherwise by row order).
        user_features, item_features : DataFrame, optional
            Side information keyed by the raw id (a ``user_col`` / ``item_col`` column, or an
            index of that name), one row per id; extra rows are ignored, a missing id, a
            missing value or a column that is not numeric, boolean, string or categorical
            raises. With a ``reference`` they default to the reference's tables.
        """
        if not isinstance(df, pd.DataFrame):
            raise TypeError(f"df must be a pandas DataFrame, got {type(df).__name__}")
        check_choice("duplicates", duplicates, {"raise", "sum", "last"})
        if timestamp_col == _AUTO:
            timestamp_col = TIMESTAMP_COL if TIMESTAMP_COL in df.columns else None
        wanted = [c for c in (user_col, item_col, rating_col, timestamp_col) if c is not None]
        missing = [c for c in wanted if c not in df.columns]
        if missing:
            hint = " (pass rating_col=None for implicit feedback)" if rating_col in missing else ""
            raise ValueError(f"df is missing column(s) {missing}; it has {list(df.columns)}{hint}")
        if len(df) == 0:
            raise ValueError("df is empty (0 rows): there is nothing to learn from or evaluate")
        for col in (user_col, item_col):
            n_null = int(df[col].isna().sum())
            if n_null:
                raise ValueError(f"column {col!r} has {n_null} missing id(s), "
                                 f"first at row {df.index[df[col].isna()][0]!r}")
        for col, kind in ((user_col, "user"), (item_col, "item")):
            id_kind(df[col].to_numpy(), f"{kind} ids (column {col!r})")
        if rating_col is None:
            ratings = np.ones(len(df))
        else:
            ratings = pd.to_numeric(df[rating_col], errors="coerce").to_numpy(dtype=np.float64)
            bad = ~np.isfinite(ratings)
            if bad.any():
                first = np.flatnonzero(bad)[0]
                raise ValueError(
                    f"column {rating_col!r} has {int(bad.sum())} NaN, infinite or non-numeric "
                    f"value(s), first at row {df.index[first]!r}: {df[rating_col].iloc[first]!r}")
        timestamps = None if timestamp_col is None else df[timestamp_col].to_numpy()
        if timestamps is not None and pd.isna(timestamps).any():
            raise ValueError(f"column {timestamp_col!r} has missing timestamps")
        raw_users, raw_items = df[user_col].to_numpy(), df[item_col].to_numpy()
        if reference is None:     # the codes both index the maps and find repeated pairs
            user_map, users = IdMap.from_values(raw_users, "user")
            item_map, items = IdMap.from_values(raw_items, "item")
            repeated = _any_repeated_pair(users, items, len(item_map))
        else:
            repeated = bool(pd.DataFrame({"u": raw_users, "i": raw_items}).duplicated().any())
        if repeated:
            frame = pd.DataFrame({"u": raw_users, "i": raw_items, "r": ratings,
                                  **({"t": timestamps} if timestamps is not None else {})})
            frame = _resolve_duplicates(frame, duplicates, user_col, item_col)
            ratings = frame["r"].to_numpy()
            timestamps = frame["t"].to_numpy() if "t" in frame else None
            raw_users, raw_items = frame["u"].to_numpy(), frame["i"].to_numpy()
            if reference is None:
                users, items = user_map.index(raw_users), item_map.index(raw_items)
        if reference is None:
            return cls(users, items, ratings, timestamps, user_map, item_map,
                       user_features=_align_features("user_features", user_features, user_col,
                                                     user_map.ids),
                       item_features=_align_features("item_features", item_features, item_col,
                                                     item_map.ids))
        if not isinstance(reference, Interactions):
            raise TypeError(f"reference must be an Interactions, got {type(reference).__name__}")
        users = reference.user_map.index(raw_users, allow_unknown=True, argname=f"df[{user_col!r}]")
        items = reference.item_map.index(raw_items, allow_unknown=True, argname=f"df[{item_col!r}]")
        user_features = (reference.user_features if user_features is None else
                         _align_features("user_features", user_features, user_col,
                                         reference.user_ids))
        item_features = (reference.item_features if item_features is None else
                         _align_features("item_features", item_features, item_col,
                                         reference.item_ids))
        return cls(users, items, ratings, timestamps, reference.user_map, reference.item_map,
                   raw_unknown_users=raw_users[users < 0], raw_unknown_items=raw_items[items < 0],
                   user_features=user_features, item_features=item_features)

    @classmethod
    def from_csr(cls, matrix) -> "Interactions":
        """Wrap a users x items sparse matrix; indices are the ids, stored values the ratings."""
        if not sp.issparse(matrix):
            raise TypeError(f"matrix must be a scipy sparse matrix, got {type(matrix).__name__}")
        coo = sp.coo_matrix(matrix)
        coo.sum_duplicates()
        keep = coo.data != 0
        if not np.all(np.isfinite(coo.data)):
            raise ValueError("matrix has NaN or infinite stored values")
        if not keep.any():
            raise ValueError("matrix has no non-zero entries: there is nothing to learn from")
        n_users, n_items = coo.shape
        return cls(coo.row[keep], coo.col[keep], coo.data[keep], None,
                   IdMap.range(n_users, "user"), IdMap.range(n_items, "item"))

    # ------------------------------------------------------------------ sizes
    @property
    def n_users(self) -> int:
        """Number of users in the id map (the reference's map for a test set)."""
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        """Number of items in the id map."""
        return len(self.item_ids)

    @property
    def n_interactions(self) -> int:
        """Number of rows, unknown ids included."""
        return len(self.users)

    def __len__(self) -> int:
        return self.n_interactions

    @property
    def unknown_mask(self) -> np.ndarray:
        """Boolean mask of the rows whose user or item the id map does not know."""
        return (self.users < 0) | (self.items < 0)

    @property
    def n_unknown_users(self) -> int:
        """Number of distinct users in the rows that the id map does not know."""
        return len(pd.unique(self._raw_unknown_users))

    @property
    def n_unknown_items(self) -> int:
        """Number of distinct items in the rows that the id map does not know."""
        return len(pd.unique(self._raw_unknown_items))

    @property
    def density(self) -> float:
        """Share of the users x items matrix that is observed."""
        return self.n_interactions / (self.n_users * self.n_items)

    def __repr__(self) -> str:
        extra = ""
        n_unknown = int(self.unknown_mask.sum())
        if n_unknown:
            extra = (f", {n_unknown} rows with unknown ids ({self.n_unknown_users} users, "
                     f"{self.n_unknown_items} items)")
        return (f"Interactions({self.n_interactions:,} interactions, {self.n_users:,} users, "
                f"{self.n_items:,} items{extra})")

    # ------------------------------------------------------------------ id maps
    def user_index(self, raw_ids, allow_unknown: bool = False) -> np.ndarray:
        """Map raw user ids to indices; unknown ids raise unless ``allow_unknown`` (then ``-1``)."""
        return self.user_map.index(raw_ids, check_bool("allow_unknown", allow_unknown))

    def item_index(self, raw_ids, allow_unknown: bool = False) -> np.ndarray:
        """Map raw item ids to indices; unknown ids raise unless ``allow_unknown`` (then ``-1``)."""
        return self.item_map.index(raw_ids, check_bool("allow_unknown", allow_unknown))

    def shares_index_with(self, other: "Interactions") -> bool:
        """True when both objects map raw ids to the same indices."""
        return self.user_map.same_as(other.user_map) and self.item_map.same_as(other.item_map)

    # ------------------------------------------------------------------ views
    def subset(self, rows) -> "Interactions":
        """The interactions at ``rows`` (a boolean mask or integer positions), same id maps."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            if len(rows) != self.n_interactions:
                raise ValueError(f"rows is a mask of length {len(rows)}, "
                                 f"expected {self.n_interactions}")
            rows = np.flatnonzero(rows)
        unknown_users = self._raw_per_row(self.users, self._raw_unknown_users, self.user_ids)
        unknown_items = self._raw_per_row(self.items, self._raw_unknown_items, self.item_ids)
        users, items = self.users[rows], self.items[rows]
        return Interactions(
            users, items, self.ratings[rows],
            None if self.timestamps is None else self.timestamps[rows],
            self.user_map, self.item_map,
            raw_unknown_users=unknown_users[rows][users < 0],
            raw_unknown_items=unknown_items[rows][items < 0],
            user_features=self.user_features, item_features=self.item_features)

    def known(self) -> "Interactions":
        """The rows whose user and item are both in the id map."""
        return self.subset(~self.unknown_mask)

    def with_features(self, user_features: pd.DataFrame | None = None,
                      item_features: pd.DataFrame | None = None) -> "Interactions":
        """The same interactions with feature tables keyed by raw id (see :meth:`from_dataframe`).

        A table left as ``None`` keeps the current one.
        """
        return Interactions(
            self.users, self.items, self.ratings, self.timestamps, self.user_map, self.item_map,
            raw_unknown_users=self._raw_unknown_users, raw_unknown_items=self._raw_unknown_items,
            user_features=(self.user_features if user_features is None else
                           _align_features("user_features", user_features, USER_COL,
                                           self.user_ids)),
            item_features=(self.item_features if item_features is None else
                           _align_features("item_features", item_features, ITEM_COL,
                                           self.item_ids)))

    def feature_tables(self) -> dict:
        """The feature tables keyed by raw id (an id column first), as ``from_dataframe`` takes them.

        Returns ``{"user_features": frame or None, "item_features": frame or None}``.
        """
        out = {}
        for kind, col, ids in (("user", USER_COL, self.user_ids), ("item", ITEM_COL, self.item_ids)):
            table = getattr(self, f"{kind}_features")
            out[f"{kind}_features"] = (None if table is None else
                                       table.assign(**{col: ids})[[col, *table.columns]])
        return out

    def to_csr(self, binary: bool = False, dtype=np.float64) -> sp.csr_matrix:
        """The users x items matrix of ratings (or of ones when ``binary``), of float ``dtype``.

        The values are made in ``dtype`` directly, so a float32 matrix costs no float64 copy
        on the way. Raises if some rows have ids the map does not know: call :meth:`known`
        first to say explicitly that they should be left out.
        """
        if not (isinstance(dtype, (type, np.dtype, str)) and np.dtype(dtype).kind == "f"):
            raise ValueError(f"dtype == {dtype!r}, must be a floating dtype such as float32")
        n_unknown = int(self.unknown_mask.sum())
        if n_unknown:
            raise ValueError(
                f"{n_unknown} rows have a user or item unknown to the id map and cannot be "
                f"placed in a matrix; use .known().to_csr() to leave them out explicitly")
        values = (np.ones(self.n_interactions, dtype=dtype) if binary
                  else self.ratings.astype(dtype, copy=False))
        matrix = sp.csr_matrix((values, (self.users, self.items)),
                               shape=(self.n_users, self.n_items))
        matrix.sort_indices()
        return matrix

    def to_dataframe(self) -> pd.DataFrame:
        """Back to a frame of raw ids (unknown ids included)."""
        frame = {USER_COL: self._raw_per_row(self.users, self._raw_unknown_users, self.user_ids),
                 ITEM_COL: self._raw_per_row(self.items, self._raw_unknown_items, self.item_ids),
                 RATING_COL: self.ratings}
        if self.timestamps is not None:
            frame[TIMESTAMP_COL] = self.timestamps
        return pd.DataFrame(frame)

    @staticmethod
    def _raw_per_row(index, raw_unknown, ids):
        """Raw id of every row: from ``ids`` where known, from ``raw_unknown`` where not."""
        out = ids[np.maximum(index, 0)]
        if len(raw_unknown):
            if out.dtype != raw_unknown.dtype:
                out = out.astype(object)
            out[index < 0] = raw_unknown
        return out



def _plain(value):
    """A NumPy scalar as the Python value it holds (so messages show 3, not np.int64(3))."""
    return value.item() if isinstance(value, np.generic) else value


def _any_repeated_pair(users: np.ndarray, items: np.ndarray, n_items: int) -> bool:
    """Whether some (user, item) pair of the codes occurs twice: one sorted int64 key per row
    (a fraction of the memory of pandas' ``duplicated`` on the two columns)."""
    key = users.astype(np.int64) * n_items + items
    key.sort()
    return bool(np.any(key[1:] == key[:-1]))


def _resolve_duplicates(df: pd.DataFrame, duplicates: str, user_col: str, item_col: str):
    dup = df.duplicated(["u", "i"], keep=False)
    if not dup.any():
        return df
    if duplicates == "raise":
        k = int(np.flatnonzero(dup.to_numpy())[0])   # one column at a time: a row of mixed
        user, item = df["u"].iloc[k], df["i"].iloc[k]   # dtypes would turn int ids into floats
        raise ValueError(
            f"df has {int(df.duplicated(['u', 'i']).sum())} repeated ({user_col}, {item_col}) "
            f"pairs, e.g. ({_plain(user)!r}, {_plain(item)!r}); pass "
            f"duplicates='sum' or 'last'")
    if duplicates == "sum":
        agg = {"r": "sum", **({"t": "max"} if "t" in df else {})}
        return df.groupby(["u", "i"], sort=False, as_index=False).agg(agg)
    order = df.sort_values("t", kind="stable") if "t" in df else df
    return order.drop_duplicates(["u", "i"], keep="last")


def _check_feature_columns(name: str, table: pd.DataFrame, key_col: str | None) -> None:
    """Every feature column must be numeric, boolean, string or categorical, with no gaps."""
    columns = [c for c in table.columns if c != key_col]
    if not columns:
        raise ValueError(f"{name} has no feature columns besides {key_col!r}")
    for col in columns:
        values = table[col]
        dtype = values.dtype
        ok = (pd.api.types.is_bool_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype)
              or (pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype))
              or pd.api.types.is_string_dtype(dtype))
        if ok and dtype == object:
            ok = all(isinstance(v, str) for v in values.dropna())
        if not ok:
            raise TypeError(f"{name} column {col!r} has dtype {dtype}; feature columns must be "
                            f"numeric, boolean, string or categorical")
        missing = np.array(values.isna(), dtype=bool)
        if pd.api.types.is_float_dtype(dtype):
            missing |= ~np.isfinite(values.to_numpy(dtype=np.float64, na_value=np.nan))
        if missing.any():
            raise ValueError(f"{name} column {col!r} has {int(missing.sum())} missing or "
                             f"infinite value(s), e.g. at row {table.index[missing][0]!r}; "
                             f"fill them (for example with an 'unknown' category) first")


def _align_features(name: str, table, key_col: str, ids: np.ndarray) -> pd.DataFrame | None:
    """Reorder a feature table keyed by raw id into index order (row ``u`` = index ``u``)."""
    if table is None:
        return None
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame keyed by {key_col!r}, "
                        f"got {type(table).__name__}")
    if key_col in table.columns:
        keys = table[key_col].to_numpy()
    elif table.index.name == key_col:
        keys = table.index.to_numpy()
    else:
        raise ValueError(f"{name} has no {key_col!r} column (nor an index of that name) to key "
                         f"its rows by; it has columns {list(table.columns)}")
    _check_feature_columns(name, table, key_col)
    lookup = pd.Index(keys)
    if lookup.has_duplicates:
        dup = lookup[lookup.duplicated()][0]
        raise ValueError(f"{name} has several rows for {key_col} {dup!r}")
    pos = lookup.get_indexer(ids)
    if (pos < 0).any():
        absent = ids[pos < 0]
        raise ValueError(f"{name} has no row for {len(absent)} of the {len(ids)} {key_col} "
                         f"value(s) in the data, e.g. {absent[0]!r}")
    features = table.drop(columns=[key_col], errors="ignore").iloc[pos]
    return features.reset_index(drop=True)


def _check_aligned(name: str, table, n: int) -> pd.DataFrame | None:
    """Check a table that is already in index order (the internal, aligned form)."""
    if table is None:
        return None
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{name} must be a pandas DataFrame, got {type(table).__name__}")
    if len(table) != n or not table.index.equals(pd.RangeIndex(n)):
        raise ValueError(f"{name} must have one row per index 0 .. {n - 1} in order; "
                         f"got {len(table)} rows (build it with from_dataframe or with_features)")
    return table
