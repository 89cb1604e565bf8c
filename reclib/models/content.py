r"""Content-based filtering: TF-IDF vectors of the items' text, matched to a user's history.

The model describes every item by the words of its text features (for MovieLens: the genres
and the words of the title), weighs each word by TF-IDF, and scores an item for a user by how
close its vector is to the items the user already has. It needs no other user's data, so it
can score an item nobody has interacted with yet, as soon as the item has a description.

References: G. Salton and C. Buckley, "Term-weighting approaches in automatic text retrieval",
Information Processing & Management 24(5), 1988; M. J. Pazzani and D. Billsus, "Content-based
recommendation systems", in *The Adaptive Web*, LNCS 4321, 2007.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._validation import check_int
from ..interactions import Interactions
from .base import Recommender

_WORD = re.compile(r"[a-z0-9]+")
_MULTI_SEP = "|"


class ContentBased(Recommender):
    r"""Score items by the TF-IDF cosine of their text to the items of the user's history.

    Each item :math:`i` becomes a bag of tokens: every value of a ``"|"``-joined column
    (``genres:comedy``) and every word of the other text columns (``title:star``). With
    :math:`\mathrm{tf}_{it}` the count of token :math:`t` in item :math:`i` and
    :math:`\mathrm{df}_t` the number of items that have it,

    .. math::

        w_{it} = \mathrm{tf}_{it} \Big(\ln\frac{1 + |\mathcal{I}|}{1 + \mathrm{df}_t} + 1\Big),
        \qquad v_i = w_i / \lVert w_i \rVert ,

    and the score of item :math:`i` for user :math:`u` is its cosine with each item of the
    user's history, summed (the dot product with the user's *profile*):

    .. math::

        \hat x_{ui} = v_i^\top \sum_{j \in \mathcal{R}(u)} v_j .

    Parameters
    ----------
    fields : "auto" or list of str
        Columns of the training data's ``item_features`` to read. ``"auto"`` reads every
        string column; when the data carry no item features at all, ``"auto"`` describes each
        item by the users who interacted with it (its column of :math:`X`), which makes the
        model a TF-IDF item-to-item neighbourhood.
    min_df : int
        Tokens found in fewer than ``min_df`` training items are dropped (a word that only one
        item has can only ever match that item).

    Attributes
    ----------
    vocabulary_ : list of str
        The tokens kept, in column order of :attr:`item_vectors_`.
    idf_ : ndarray of shape (n_tokens,)
        :math:`\ln((1 + |\mathcal{I}|) / (1 + \mathrm{df}_t)) + 1`.
    item_vectors_ : scipy.sparse.csr_matrix of shape (n_items, n_tokens)
        The unit-length TF-IDF vectors :math:`v_i` (a zero row for an item with no kept token).
    fields_ : list of str
        The columns read (empty when the items were described by their users).
    multi_fields_ : list of str
        Those of :attr:`fields_` read as ``"|"``-joined values rather than as words.
    """

    def __init__(self, fields="auto", min_df: int = 2):
        self.fields = fields
        self.min_df = min_df

    def _validate_params(self) -> None:
        check_int("min_df", self.min_df, minimum=1)
        if isinstance(self.fields, str):
            if self.fields != "auto":
                raise ValueError(f"fields == {self.fields!r}, must be 'auto' or a list of "
                                 f"column names")
        elif not (isinstance(self.fields, (list, tuple)) and self.fields
                  and all(isinstance(f, str) for f in self.fields)):
            raise ValueError(f"fields == {self.fields!r}, must be 'auto' or a non-empty list "
                             f"of column names")

    # ------------------------------------------------------------------ fitting
    def _fit(self, data: Interactions) -> None:
        table = data.item_features
        if table is None:
            if self.fields != "auto":
                raise ValueError(f"fields == {list(self.fields)!r} but the training data carry "
                                 f"no item_features; build them with "
                                 f"Interactions.from_dataframe(..., item_features=table)")
            self.fields_, self.multi_fields_ = [], []
            columns = data.to_csr(binary=True).T.tocsr()          # (n_items, n_users)
            docs = [[f"user:{u}" for u in columns.indices[columns.indptr[i]:columns.indptr[i + 1]]]
                    for i in range(data.n_items)]
        else:
            self.fields_ = self._resolve_fields(table)
            self.multi_fields_ = [f for f in self.fields_
                                  if table[f].astype(str).str.contains(_MULTI_SEP, regex=False).any()]
            docs = self._documents(table)
        counts = pd.Series([t for doc in docs for t in set(doc)], dtype=object).value_counts()
        self.vocabulary_ = sorted(counts.index[counts >= self.min_df].tolist())
        df = counts.reindex(self.vocabulary_).to_numpy(dtype=np.float64)
        self.idf_ = np.log((1.0 + data.n_items) / (1.0 + df)) + 1.0
        self.item_vectors_ = self._vectorise(docs)

    def _resolve_fields(self, table: pd.DataFrame) -> list[str]:
        if self.fields == "auto":
            fields = [c for c in table.columns
                      if pd.api.types.is_string_dtype(table[c]) or
                      isinstance(table[c].dtype, pd.CategoricalDtype)]
            if not fields:
                raise ValueError(f"fields == 'auto' but item_features has no text column; it "
                                 f"has {list(table.columns)}")
            return fields
        missing = [f for f in self.fields if f not in table.columns]
        if missing:
            raise ValueError(f"fields == {list(self.fields)!r}: item_features has no column "
                             f"{missing[0]!r}; it has {list(table.columns)}")
        return list(self.fields)

    def _documents(self, table: pd.DataFrame) -> list[list[str]]:
        """The tokens of every row of ``table`` (one list per item)."""
        docs = [[] for _ in range(len(table))]
        for field in self.fields_:
            values = table[field].astype(str).str.lower().tolist()
            multi = field in self.multi_fields_
            for doc, value in zip(docs, values):
                parts = value.split(_MULTI_SEP) if multi else _WORD.findall(value)
                doc.extend(f"{field}:{p.strip()}" for p in parts if p.strip())
        return docs

    def _vectorise(self, docs: list[list[str]]) -> sp.csr_matrix:
        column = {t: n for n, t in enumerate(self.vocabulary_)}
        rows, cols = [], []
        for i, doc in enumerate(docs):
            kept = [column[t] for t in doc if t in column]
            rows += [i] * len(kept)
            cols += kept
        tf = sp.csr_matrix((np.ones(len(rows)), (rows, cols)),
                           shape=(len(docs), len(self.vocabulary_)))  # duplicates are summed
        weighted = tf.multiply(self.idf_[None, :]).tocsr()
        norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        return sp.csr_matrix(sp.diags(1.0 / norms) @ weighted)

    # ------------------------------------------------------------------ scoring
    def _score_users(self, users):
        profiles = self.seen_[users] @ self.item_vectors_           # (len(users), n_tokens)
        return np.asarray((profiles @ self.item_vectors_.T).todense())  # (len(users), n_items)

    def _item_vectors(self):
        return self.item_vectors_.toarray()

    def user_profiles(self, user_ids) -> sp.csr_matrix:
        r"""The profiles :math:`\sum_{j \in \mathcal{R}(u)} v_j` of the given users (raw ids)."""
        users = self.user_index(user_ids)
        return sp.csr_matrix(self.seen_[users] @ self.item_vectors_)

    def transform_items(self, table: pd.DataFrame) -> sp.csr_matrix:
        """TF-IDF vectors :math:`v_i` of any items, new ones included, from a feature table.

        ``table`` needs the columns in :attr:`fields_`; tokens outside the fitted vocabulary
        are ignored. The score of such an item for user ``u`` is
        ``user_profiles([u]) @ transform_items(table).T``.
        """
        self._check_is_fitted()
        if not self.fields_:
            raise ValueError("this model described its items by their users (no item_features "
                             "at fit time), so it has no text vocabulary to transform with")
        if not isinstance(table, pd.DataFrame):
            raise TypeError(f"table must be a pandas DataFrame, got {type(table).__name__}")
        missing = [f for f in self.fields_ if f not in table.columns]
        if missing:
            raise ValueError(f"table has no column {missing[0]!r}; the model reads "
                             f"{self.fields_}")
        return self._vectorise(self._documents(table.reset_index(drop=True)))
