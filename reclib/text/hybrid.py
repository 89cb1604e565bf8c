r"""A hybrid of collaborative factors and text: iALS whose cold items get factors from their text.

Implicit ALS (:class:`~reclib.models.ImplicitALS`) learns a factor vector :math:`q_i` for
every item from its interactions; an item nobody has interacted with gets none worth the
name. Text embeddings :math:`e_i` exist for every item. This model learns a linear map
from the text space into the factor space on the items whose factors are reliable, and uses
it for the others (the attribute-to-feature mapping of Gantner et al., 2010):

.. math::

    W = \arg\min_W \sum_{i:\, |\mathcal R(i)| \ge m} \lVert q_i - \bar q - W^\top (e_i - \bar e)
        \rVert^2 + \lambda_W \lVert W \rVert_F^2
      = \big(\tilde E^\top \tilde E + \lambda_W I\big)^{-1} \tilde E^\top \tilde Q,

with :math:`\tilde E`, :math:`\tilde Q` the centred embeddings and factors of those items
(:math:`\bar e`, :math:`\bar q` their means) and :math:`m` = ``min_interactions``. Each item's
factor is then a blend of its own and the mapped one,

.. math::

    q_i \leftarrow w_i\, q_i + (1 - w_i)\,\big(\bar q + W^\top (e_i - \bar e)\big), \qquad
    w_i = \frac{|\mathcal R(i)|}{|\mathcal R(i)| + \gamma},

so with ``shrinkage`` :math:`\gamma = 0` (the default) a warm item keeps exactly its iALS factor
and an item without interactions gets exactly the mapped one, while :math:`\gamma > 0` also
pulls items with few interactions towards their text. Users keep their iALS factors and the
score stays :math:`\hat x_{ui} = p_u^\top q_i`, so warm items rank as in iALS; the cold ones
enter a list only where their mapped factor scores as high. Ridge regression shrinks the
mapped factors towards :math:`\bar q`, so they rarely push a warm item out of a list.

Reference: Z. Gantner, L. Drumond, C. Freudenthaler, S. Rendle, L. Schmidt-Thieme, "Learning
attribute-to-feature mappings for cold-start recommendations", ICDM 2010.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_float, check_int
from ..interactions import Interactions
from ..models.implicit_als import ImplicitALS
from .content import item_embedding_matrix


class TextMappedALS(ImplicitALS):
    """iALS with text-mapped factors for items with no (or few) interactions.

    The item embeddings come with the training data as ``item_features`` columns ``emb_0,
    emb_1, ...`` (:func:`~reclib.text.embedding_table`), one row per item of the catalogue.
    The iALS parameters are those of :class:`~reclib.models.ImplicitALS`.

    Parameters
    ----------
    map_reg : float
        :math:`\\lambda_W > 0`, the ridge penalty of the text-to-factor map.
    min_interactions : int
        :math:`m`: items with at least this many training interactions fit the map.
    shrinkage : float
        :math:`\\gamma \\ge 0` of the blend weight :math:`w_i`; 0 maps only the items without
        interactions.

    Attributes
    ----------
    text_map_ : ndarray of shape (dim, n_factors)
        :math:`W`.
    text_mean_, factor_mean_ : ndarray
        :math:`\\bar e` and :math:`\\bar q`.
    mapped_ : ndarray of bool, shape (n_items,)
        Items whose factor took any share of the mapped one (:math:`w_i < 1`).
    """

    def __init__(self, n_factors: int = 64, reg: float = 0.03, alpha: float = 10.0,
                 confidence: str = "linear", epsilon: float = 1.0, binary: bool = True,
                 reg_exponent: float = 1.0, n_epochs: int = 15, solver: str = "cg",
                 cg_steps: int = 3, init_std: float = 0.1, random_state=None,
                 verbose: bool = False, reg_basis: str = "confidence", map_reg: float = 10.0,
                 min_interactions: int = 5, shrinkage: float = 0.0):
        super().__init__(n_factors=n_factors, reg=reg, alpha=alpha, confidence=confidence,
                         epsilon=epsilon, binary=binary, reg_exponent=reg_exponent,
                         n_epochs=n_epochs, solver=solver, cg_steps=cg_steps,
                         init_std=init_std, random_state=random_state, verbose=verbose,
                         reg_basis=reg_basis)
        self.map_reg = map_reg
        self.min_interactions = min_interactions
        self.shrinkage = shrinkage

    def _validate_params(self) -> None:
        super()._validate_params()
        check_float("map_reg", self.map_reg, strictly_positive=True)
        check_int("min_interactions", self.min_interactions, minimum=1)
        check_float("shrinkage", self.shrinkage, minimum=0.0)

    def _fit(self, data: Interactions) -> None:
        embeddings = item_embedding_matrix(data, type(self).__name__)   # read before fitting
        super()._fit(data)
        counts = np.bincount(data.items, minlength=data.n_items).astype(np.float64)
        fit_rows = counts >= self.min_interactions
        if fit_rows.sum() < 2:
            raise ValueError(f"only {int(fit_rows.sum())} items have >= min_interactions == "
                             f"{self.min_interactions} interactions; the text map needs at "
                             f"least 2, so lower min_interactions")
        factors = self.item_factors_.astype(np.float64)
        self.text_mean_ = embeddings[fit_rows].mean(axis=0)
        self.factor_mean_ = factors[fit_rows].mean(axis=0)
        E = embeddings[fit_rows] - self.text_mean_
        Q = factors[fit_rows] - self.factor_mean_
        gram = E.T @ E + self.map_reg * np.eye(E.shape[1])
        self.text_map_ = np.linalg.solve(gram, E.T @ Q)
        mapped = self.map_embeddings(embeddings)
        # w_i = n_i / (n_i + gamma); at gamma = 0 it is 1 for every item with interactions
        weight = np.where(counts > 0, counts / np.maximum(counts + self.shrinkage, 1e-300), 0.0)
        self.mapped_ = weight < 1.0
        blended = weight[:, None] * factors + (1.0 - weight[:, None]) * mapped
        self.item_factors_ = blended.astype(np.float32)

    def map_embeddings(self, embeddings) -> np.ndarray:
        """Factors :math:`\\bar q + W^\\top (e - \\bar e)` of text embeddings ``(n, dim)``.

        This is how an item added after fitting gets a factor from its text alone.
        """
        self._check_is_fitted()
        embeddings = np.asarray(embeddings, dtype=np.float64)
        if embeddings.ndim != 2 or embeddings.shape[1] != len(self.text_mean_):
            raise ValueError(f"embeddings has shape {embeddings.shape}; expected (n, "
                             f"{len(self.text_mean_)}), the width the map was fitted on")
        return map_text(embeddings, self.text_mean_, self.text_map_, self.factor_mean_)


def map_text(embeddings: np.ndarray, text_mean: np.ndarray, text_map: np.ndarray,
             factor_mean: np.ndarray) -> np.ndarray:
    """:math:`\bar q + W^\top (e - \bar e)` for rows ``e`` of ``embeddings`` (the fitted map's
    arrays passed in, so a server holding only the arrays applies the same map)."""
    return factor_mean + (np.asarray(embeddings, dtype=np.float64) - text_mean) @ text_map
