r"""EASE: a shallow linear item-to-item autoencoder with a closed-form solution.

Reference: H. Steck, "Embarrassingly shallow autoencoders for sparse data", The Web
Conference (WWW) 2019, https://arxiv.org/abs/1905.03375.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from .._validation import check_bool, check_float
from ..interactions import Interactions
from .base import Recommender


class EASE(Recommender):
    r"""Item-item linear model :math:`\hat{X} = X B` with a zero diagonal, solved in closed form.

    With :math:`X \in \{0,1\}^{|U| \times |I|}` the binary interaction matrix, EASE solves

    .. math::

        \min_B \; \lVert X - X B \rVert_F^2 + \lambda \lVert B \rVert_F^2
        \quad \text{subject to} \quad \operatorname{diag}(B) = 0 .

    The constraint keeps the trivial answer :math:`B = I` out. Setting the gradient of the
    Lagrangian to zero gives, with :math:`P = (X^\top X + \lambda I)^{-1}`,

    .. math::

        B = I - P \,\operatorname{diag}\!\big(1 / \operatorname{diag}(P)\big),
        \qquad\text{that is}\qquad
        B_{ij} = -\frac{P_{ij}}{P_{jj}} \;(i \ne j), \quad B_{jj} = 0 .

    The score of user :math:`u` for item :math:`j` is :math:`\hat x_{uj} = \sum_i X_{ui} B_{ij}`.
    Fitting costs one :math:`|I| \times |I|` inverse (:math:`O(|I|^3)` time and
    :math:`O(|I|^2)` memory), which is instant for MovieLens 100K and impractical beyond a few
    tens of thousands of items.

    Parameters
    ----------
    reg : float
        :math:`\lambda > 0`, the L2 penalty on :math:`B`. Steck reports values in the hundreds
        for MovieLens-sized data; the default 300 suits MovieLens 100K.
    binary : bool
        Use :math:`X_{ui} = 1` for every interaction (default); ``False`` uses the stored
        ratings as :math:`X_{ui}`.

    Attributes
    ----------
    weights_ : ndarray of shape (n_items, n_items)
        :math:`B`, with a zero diagonal.
    """

    def __init__(self, reg: float = 300.0, binary: bool = True):
        self.reg = reg
        self.binary = binary

    def _validate_params(self) -> None:
        check_float("reg", self.reg, strictly_positive=True)
        check_bool("binary", self.binary)

    def _fit(self, data: Interactions) -> None:
        X = data.to_csr(binary=bool(self.binary))
        self.matrix_ = X
        gram = (X.T @ X).toarray()                                  # (n_items, n_items)
        gram[np.diag_indices_from(gram)] += self.reg
        P = scipy.linalg.inv(gram, overwrite_a=True, check_finite=False)
        B = -P / np.diag(P)[None, :]                                # B_ij = -P_ij / P_jj
        B[np.diag_indices_from(B)] = 0.0
        if not np.all(np.isfinite(B)):
            raise FloatingPointError(f"EASE produced non-finite weights; raise reg "
                                     f"(now {self.reg})")
        self.weights_ = B

    def _score_users(self, users):
        return np.asarray(self.matrix_[users] @ self.weights_)    # (len(users), n_items)

    def _item_vectors(self):
        return self.weights_.T
