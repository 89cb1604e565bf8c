"""Side features as model inputs: fields, feature ids and values for FM-style models.

A factorisation machine (Rendle, ICDM 2010) reads each (user, item) pair as a
sparse vector :math:`x` over a global feature space. We build that space from *fields*:

============  ==========  =====================================================  ============
field         side        feature ids                                            values
============  ==========  =====================================================  ============
``user``      user        one per user index                                     1
``item``      item        one per item index                                     1
categorical   user/item   one per distinct value (string, categorical, integer   1
                          or boolean column; MovieLens: gender, occupation,
                          age bucket, year bucket)
multi-valued  user/item   one per distinct value of a ``"|"``-joined string      1 / (number
                          column (MovieLens: genres)                             of values)
numeric       user/item   one (float column)                                     standardised
============  ==========  =====================================================  ============

The fields are laid out one after the other in that order (ids, then the user columns, then
the item columns, each in table order), so field ``f`` owns the feature ids
``offset[f] .. offset[f] + size[f] - 1``. Every user gets a fixed number of *slots* (one per
single-valued field, as many as its longest value list for a multi-valued field, padded with
value 0), and likewise every item; a pair's input is its user's slots followed by its item's
slots. Padding has value 0, so it adds nothing to any FM term or to a field's summed embedding.

:func:`movielens_side_features` turns the MovieLens user and item files into such tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ._constants import ITEM_COL, USER_COL
from .interactions import Interactions

#: Separator of several values in one string feature (MovieLens genres use it).
MULTI_VALUE_SEP = "|"

#: Age buckets (lower bounds) of MovieLens 1M, reused for the 100K file's exact ages.
AGE_BUCKETS = (0, 18, 25, 35, 45, 50, 56)


@dataclass
class Field:
    """One field of the layout: a name, its side, its kind and its block of feature ids."""

    name: str
    side: str          # "user" or "item"
    kind: str          # "id", "categorical", "multi" or "numeric"
    offset: int
    size: int
    vocabulary: list = field(default_factory=list)


@dataclass
class FieldLayout:
    """Feature ids and values of every user and item, and the fields they belong to.

    Attributes
    ----------
    fields : list of Field
        In layout order; ``fields[f].offset`` is the first feature id of field ``f``.
    n_features : int
        Size of the feature space (sum of the field sizes).
    user_index, user_value : ndarray, shape (n_users, n_user_slots)
        Feature id and value of each slot of each user (int64, float32).
    user_slot_field : ndarray of int64, shape (n_user_slots,)
        Field of each user slot.
    item_index, item_value, item_slot_field
        The same for items.
    """

    fields: list
    n_features: int
    user_index: np.ndarray
    user_value: np.ndarray
    user_slot_field: np.ndarray
    item_index: np.ndarray
    item_value: np.ndarray
    item_slot_field: np.ndarray

    @property
    def n_fields(self) -> int:
        return len(self.fields)

    @property
    def field_names(self) -> list:
        return [f.name for f in self.fields]

    def pair_inputs(self, users: np.ndarray, items: np.ndarray):
        """Feature ids, values (each ``(n_pairs, n_slots)``) and the field of each slot."""
        index = np.concatenate([self.user_index[users], self.item_index[items]], axis=1)
        value = np.concatenate([self.user_value[users], self.item_value[items]], axis=1)
        return index, value, np.concatenate([self.user_slot_field, self.item_slot_field])


def select_columns(data: Interactions, columns, owner: str = "this model") -> dict:
    """Resolve a model's ``features`` argument to ``{"user": [...], "item": [...]}``.

    ``"auto"`` takes every column of the tables the data carry (none: ids only); ``None`` or
    ``[]`` takes none; a list names columns, each looked up in the user table, then the item
    table, and a name found in neither raises with the columns that are there.
    """
    user_table, item_table = data.user_features, data.item_features
    user_cols = [] if user_table is None else list(user_table.columns)
    item_cols = [] if item_table is None else list(item_table.columns)
    if isinstance(columns, str):
        if columns != "auto":
            raise ValueError(f"features == {columns!r}, must be 'auto', None or a list of "
                             f"column names")
        return {"user": user_cols, "item": item_cols}
    chosen = {"user": [], "item": []}
    for name in columns or []:
        if name in user_cols:
            chosen["user"].append(name)
        elif name in item_cols:
            chosen["item"].append(name)
        else:
            carried = ", ".join(f"{side} features {cols}" for side, cols, table in
                                (("user", user_cols, user_table), ("item", item_cols, item_table))
                                if table is not None) or "no feature tables"
            raise ValueError(
                f"{owner} needs feature column {name!r}, but the data carry {carried}; attach "
                f"it with Interactions.from_dataframe(..., user_features=..., item_features=...)"
                f" or .with_features(...)")
    return chosen


def build_layout(data: Interactions, columns="auto", owner: str = "this model") -> FieldLayout:
    """The field layout of ``data``'s ids and feature columns (see the module docstring)."""
    chosen = select_columns(data, columns, owner)
    fields: list[Field] = []
    blocks = {"user": [], "item": []}     # per side: (index, value, slot_field) blocks
    offset = 0
    for side, n in (("user", data.n_users), ("item", data.n_items)):
        fields.append(Field(side, side, "id", offset, n))
        blocks[side].append((np.arange(n, dtype=np.int64)[:, None] + offset,
                             np.ones((n, 1), np.float32), [len(fields) - 1]))
        offset += n
    for side in ("user", "item"):
        table = getattr(data, f"{side}_features")
        for col in chosen[side]:
            f, index, value = _encode_column(col, side, table[col], offset)
            fields.append(f)
            blocks[side].append((index, value, [len(fields) - 1] * index.shape[1]))
            offset += f.size

    def stack(side):
        parts = blocks[side]
        return (np.concatenate([p[0] for p in parts], axis=1),
                np.concatenate([p[1] for p in parts], axis=1).astype(np.float32),
                np.array([f for p in parts for f in p[2]], dtype=np.int64))

    user_index, user_value, user_field = stack("user")
    item_index, item_value, item_field = stack("item")
    return FieldLayout(fields, offset, user_index, user_value, user_field,
                       item_index, item_value, item_field)


def _encode_column(col: str, side: str, values: pd.Series, offset: int):
    n = len(values)
    dtype = values.dtype
    if pd.api.types.is_float_dtype(dtype):
        x = values.to_numpy(dtype=np.float64)
        scale = x.std() or 1.0
        return (Field(col, side, "numeric", offset, 1),
                np.full((n, 1), offset, np.int64), ((x - x.mean()) / scale)[:, None])
    if (pd.api.types.is_string_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype)):
        lists = [str(v).split(MULTI_VALUE_SEP) for v in values]
        width = max(len(v) for v in lists)
        if width > 1:
            vocabulary = sorted({x for v in lists for x in v})
            code = {x: j for j, x in enumerate(vocabulary)}
            index = np.full((n, width), offset, np.int64)
            value = np.zeros((n, width), np.float32)
            for r, v in enumerate(lists):
                index[r, :len(v)] = [offset + code[x] for x in v]
                value[r, :len(v)] = 1.0 / len(v)
            return Field(col, side, "multi", offset, len(vocabulary), vocabulary), index, value
    codes, uniques = pd.factorize(values, sort=True)
    vocabulary = [u.item() if hasattr(u, "item") else u for u in np.asarray(uniques)]
    return (Field(col, side, "categorical", offset, len(uniques), vocabulary),
            (codes.astype(np.int64) + offset)[:, None], np.ones((n, 1), np.float32))


def age_bucket(age) -> np.ndarray:
    """MovieLens 1M age groups (``"<18"``, ``"18-24"``, ..., ``"56+"``) of exact ages."""
    age = np.asarray(age)
    edges = np.asarray(AGE_BUCKETS)
    labels = ["<18"] + [f"{lo}-{hi - 1}" for lo, hi in zip(edges[1:-1], edges[2:])] + ["56+"]
    return np.asarray(labels, dtype=object)[np.searchsorted(edges, age, side="right") - 1]


def year_bucket(year, first_decade: int = 1950) -> np.ndarray:
    """Decade of release (``"1990s"``), ``"<1950s"`` before ``first_decade``, ``"unknown"`` if NA."""
    year = pd.to_numeric(pd.Series(year), errors="coerce").astype(np.float64).to_numpy()
    out = np.full(len(year), "unknown", dtype=object)
    known = np.isfinite(year)
    decade = (year[known] // 10 * 10).astype(np.int64)
    out[known] = [f"<{first_decade}s" if d < first_decade else f"{d}s" for d in decade]
    return out


def movielens_side_features(users: pd.DataFrame, items: pd.DataFrame):
    """User and item feature tables from the MovieLens user and item files.

    Parameters
    ----------
    users : DataFrame
        From :func:`reclib.datasets.load_movielens_users` (``user_id, age, gender,
        occupation, zip_code``).
    items : DataFrame
        From :func:`reclib.datasets.load_movielens_items` (``item_id, title, year, genres``).

    Returns
    -------
    user_features : DataFrame
        ``user_id, gender, age, occupation``: all categorical strings (``age`` is the 1M
        age group, see :func:`age_bucket`).
    item_features : DataFrame
        ``item_id, genres, year``: ``genres`` stays ``"|"``-joined (a multi-valued field),
        ``year`` is the decade (see :func:`year_bucket`; ``"unknown"`` for the two movies
        without a date).
    """
    user_features = pd.DataFrame({
        USER_COL: users[USER_COL].to_numpy(),
        "gender": users["gender"].astype(str).to_numpy(),
        "age": age_bucket(users["age"].to_numpy()).astype(str),
        "occupation": users["occupation"].astype(str).to_numpy(),
    })
    item_features = pd.DataFrame({
        ITEM_COL: items[ITEM_COL].to_numpy(),
        "genres": items["genres"].astype(str).to_numpy(),
        "year": year_bucket(items["year"]).astype(str),
    })
    return user_features, item_features
