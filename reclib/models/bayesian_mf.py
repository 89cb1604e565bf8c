"""Bayesian probabilistic matrix factorisation (BPMF) fitted by Gibbs sampling.

Reference: R. Salakhutdinov, A. Mnih, "Bayesian probabilistic matrix factorization using
Markov chain Monte Carlo", ICML 2008.

The sampler has three pieces, each testable on its own:

* :func:`sample_wishart` draws a Wishart matrix by the Bartlett decomposition;
* :func:`sample_normal_wishart` draws the hyper-parameters :math:`(\\mu, \\Lambda)` of the
  factors' Gaussian prior from their conjugate Normal-Wishart posterior;
* :func:`sample_rows` draws every factor vector from its Gaussian conditional posterior (a
  Bayesian linear regression per user, or per item), in a numba loop.
"""

from __future__ import annotations

import numba
import numpy as np
import scipy.sparse as sp
from .._progress import tqdm

from .._validation import check_bool, check_float, check_int, check_random_state
from ..interactions import Interactions
from ._factor_base import FactorModel


def sample_wishart(scale: np.ndarray, df: float, rng: np.random.Generator) -> np.ndarray:
    r"""One draw of :math:`\Lambda \sim \mathcal{W}(W, \nu)` (mean :math:`\nu W`).

    Bartlett decomposition: with :math:`W = L L^\top` (Cholesky) and :math:`A` lower
    triangular with :math:`A_{jj} = \sqrt{c_j},\ c_j \sim \chi^2_{\nu - j}` (:math:`j = 0,
    \dots, d-1`) and :math:`A_{jl} \sim \mathcal{N}(0, 1)` below the diagonal,
    :math:`\Lambda = L A A^\top L^\top`. Requires :math:`\nu > d - 1`.
    """
    d = len(scale)
    if df <= d - 1:
        raise ValueError(f"df == {df}, must be > d - 1 == {d - 1} for a Wishart draw")
    L = np.linalg.cholesky(scale)
    A = np.tril(rng.standard_normal((d, d)), -1)
    A[np.diag_indices(d)] = np.sqrt(rng.chisquare(df - np.arange(d)))
    LA = L @ A
    return LA @ LA.T


def normal_wishart_posterior(X: np.ndarray, mu0: np.ndarray, beta0: float, nu0: float,
                             W0_inv: np.ndarray) -> tuple[np.ndarray, float, float, np.ndarray]:
    r"""Parameters of the Normal-Wishart posterior of :math:`(\mu, \Lambda)` given rows
    :math:`x_1, \dots, x_N \sim \mathcal{N}(\mu, \Lambda^{-1})` (Salakhutdinov and Mnih, 2008,
    eq. 14):

    .. math::

        \beta^* = \beta_0 + N, \quad \nu^* = \nu_0 + N, \quad
        \mu^* = \frac{\beta_0 \mu_0 + N \bar x}{\beta_0 + N}, \\
        (W^*)^{-1} = W_0^{-1} + N \bar S + \frac{\beta_0 N}{\beta_0 + N}
                     (\mu_0 - \bar x)(\mu_0 - \bar x)^\top,

    with :math:`\bar x` the mean row and :math:`\bar S` the (biased) sample covariance.
    Returns ``(mu_star, beta_star, nu_star, W_star)``.
    """
    N = len(X)
    xbar = X.mean(axis=0)
    centred = X - xbar
    gap = mu0 - xbar
    W_inv = W0_inv + centred.T @ centred + (beta0 * N / (beta0 + N)) * np.outer(gap, gap)
    W = np.linalg.inv(W_inv)
    return (beta0 * mu0 + N * xbar) / (beta0 + N), beta0 + N, nu0 + N, 0.5 * (W + W.T)


def sample_normal_wishart(X, mu0, beta0, nu0, W0_inv, rng) -> tuple[np.ndarray, np.ndarray]:
    r"""Draw :math:`\Lambda \sim \mathcal{W}(W^*, \nu^*)`, then
    :math:`\mu \sim \mathcal{N}(\mu^*, (\beta^* \Lambda)^{-1})`
    (parameters from :func:`normal_wishart_posterior`). Returns ``(mu, Lambda)``."""
    mu_star, beta_star, nu_star, W_star = normal_wishart_posterior(X, mu0, beta0, nu0, W0_inv)
    Lam = sample_wishart(W_star, nu_star, rng)
    L = np.linalg.cholesky(beta_star * Lam)
    # if beta* Lambda = L L^T, then L^-T z ~ N(0, (beta* Lambda)^-1)
    mu = mu_star + np.linalg.solve(L.T, rng.standard_normal(len(mu_star)))
    return mu, Lam


@numba.njit(cache=True)
def sample_rows(indptr, indices, targets, design, prior_prec, prior_mean, alpha,
                noise):  # pragma: no cover - jit
    r"""Draw each row's vector from its Gaussian conditional posterior.

    Row ``r`` (a user, or an item) observes ``targets[indptr[r]:indptr[r+1]]`` against the rows
    ``indices[...]`` of ``design`` (:math:`X_r`), with noise precision :math:`\alpha` and the
    prior :math:`w_r \sim \mathcal{N}(\mu, \Lambda^{-1})`. Its posterior is
    :math:`\mathcal{N}(m_r, (\Lambda_r^*)^{-1})` with

    .. math::

        \Lambda_r^* = \Lambda + \alpha X_r^\top X_r, \qquad
        m_r = (\Lambda_r^*)^{-1} (\alpha X_r^\top y_r + \Lambda \mu).

    With :math:`\Lambda_r^* = L L^\top` (Cholesky) and :math:`z` = ``noise[r]`` standard
    normal, the draw is :math:`m_r + L^{-\top} z = L^{-\top}(L^{-1} (\alpha X_r^\top y_r +
    \Lambda\mu) + z)`: one forward and one back substitution. A row with no observations is
    drawn from the prior.
    """
    n_rows, d = noise.shape
    out = np.empty((n_rows, d))
    shift = prior_prec @ prior_mean
    A = np.empty((d, d))
    v = np.empty(d)
    for r in range(n_rows):
        for a in range(d):
            v[a] = shift[a]
            for c in range(d):
                A[a, c] = prior_prec[a, c]
        for n in range(indptr[r], indptr[r + 1]):
            x = design[indices[n]]
            y = alpha * targets[n]
            for a in range(d):
                v[a] += y * x[a]
                ax = alpha * x[a]
                for c in range(a + 1):  # the lower triangle is all Cholesky reads
                    A[a, c] += ax * x[c]
        # Cholesky A = L L^T, L written over the lower triangle of A
        for a in range(d):
            for c in range(a + 1):
                s = A[a, c]
                for m in range(c):
                    s -= A[a, m] * A[c, m]
                if a == c:
                    A[a, a] = np.sqrt(s)
                else:
                    A[a, c] = s / A[c, c]
        for a in range(d):  # v <- L^-1 v + z
            s = v[a]
            for m in range(a):
                s -= A[a, m] * v[m]
            v[a] = s / A[a, a]
        for a in range(d):
            v[a] += noise[r, a]
        for a in range(d - 1, -1, -1):  # out <- L^-T v
            s = v[a]
            for m in range(a + 1, d):
                s -= A[m, a] * out[r, m]
            out[r, a] = s / A[a, a]
    return out


class BayesianMF(FactorModel):
    r"""Bayesian probabilistic matrix factorisation (Salakhutdinov and Mnih, 2008) with biases,
    fitted by Gibbs sampling.

    Likelihood, with :math:`\mu` the mean training rating and noise precision :math:`\alpha`:

    .. math::

        r_{ui} \sim \mathcal{N}\big(\mu + b_u + b_i + p_u^\top q_i,\ \alpha^{-1}\big).

    Each user's bias joins its factors in one vector :math:`w_u = (p_u, b_u)` of length
    :math:`d = k + 1`, and each item's in :math:`v_i = (q_i, b_i)`, so that
    :math:`\hat r_{ui} = \mu + b_i + w_u^\top (q_i, 1) = \mu + b_u + v_i^\top (p_u, 1)`.
    Priors and hyper-priors (Normal-Wishart, conjugate):

    .. math::

        w_u \sim \mathcal{N}(\mu_U, \Lambda_U^{-1}), \quad
        \Lambda_U \sim \mathcal{W}(W_0, \nu_0), \quad
        \mu_U \mid \Lambda_U \sim \mathcal{N}\big(\mu_0, (\beta_0 \Lambda_U)^{-1}\big),

    and the same for the items, with :math:`\mu_0 = 0`, :math:`W_0 = w_0 I`. Instead of
    choosing one regularisation strength (as :class:`BiasedMF` does with ``reg``), the prior
    precisions :math:`\Lambda_U, \Lambda_V` are themselves inferred, one full matrix per side.

    One Gibbs sweep draws, in turn,

    1. :math:`(\mu_U, \Lambda_U)` from their Normal-Wishart posterior given all :math:`w_u`
       (:func:`normal_wishart_posterior`), and :math:`(\mu_V, \Lambda_V)` likewise;
    2. every :math:`w_u` from its Gaussian conditional, a Bayesian linear regression of
       :math:`y_{ui} = r_{ui} - \mu - b_i` on :math:`x_i = (q_i, 1)`:

       .. math::

           w_u \sim \mathcal{N}\Big(\Lambda_u^{*-1}\big(\alpha \textstyle\sum_{i \in
           \mathcal{R}(u)} y_{ui} x_i + \Lambda_U \mu_U\big),\ \Lambda_u^{*-1}\Big), \qquad
           \Lambda_u^* = \Lambda_U + \alpha \textstyle\sum_{i \in \mathcal{R}(u)} x_i x_i^\top;

    3. every :math:`v_i` likewise, given the new :math:`w_u`.

    The first ``burn_in`` sweeps are discarded. The prediction is the Monte Carlo estimate of
    the posterior predictive mean, the average over the kept samples :math:`s = 1..S`:

    .. math::

        \hat r_{ui} = \mu + \frac1S \sum_s \big(b_u^{(s)} + b_i^{(s)}
                      + p_u^{(s)\top} q_i^{(s)}\big).

    Because the average of dot products is the dot product of the stacked vectors
    :math:`\tilde p_u = S^{-1/2} (p_u^{(1)}, \dots, p_u^{(S)})`, the fitted model is stored as
    a factor model with :math:`S k` factors (``user_factors_``, ``item_factors_``) and averaged
    biases. An unknown user is predicted as :math:`\mu + \bar b_i`, an unknown item as
    :math:`\mu + \bar b_u`.

    The defaults were chosen on a validation split carved from a MovieLens 100K training
    fold (never its test fold).

    Parameters
    ----------
    n_factors : int
        :math:`k`.
    n_samples : int
        Kept Gibbs sweeps :math:`S` (after burn-in); memory grows as :math:`S k`.
    burn_in : int
        Sweeps discarded before averaging.
    alpha : float
        Noise precision :math:`\alpha > 0`, fixed (the paper uses 2 on Netflix; the validation
        split preferred 1.5, close to the inverse residual variance of MovieLens ratings).
    beta0 : float
        :math:`\beta_0 > 0`, the prior's confidence in :math:`\mu_0 = 0`.
    nu0 : float, optional
        Wishart degrees of freedom :math:`\nu_0 > d - 1`; default :math:`d = k + 1`.
    w0 : float
        :math:`W_0 = w_0 I`, :math:`w_0 > 0`.
    biased : bool
        Include :math:`b_u, b_i` (otherwise :math:`d = k` and the biases stay zero).
    init_std : float
        Factors start as :math:`\mathcal{N}(0, \texttt{init\_std}^2)`.
    random_state : int, optional
        Seeds the initialisation and every draw.
    verbose : bool
        Show a progress bar over sweeps.

    Attributes
    ----------
    mean_ : float
        :math:`\mu`.
    user_bias_, item_bias_ : ndarray
        Posterior-mean biases (zeros when ``biased=False``).
    user_factors_, item_factors_ : ndarray of shape (n_users, S k), (n_items, S k)
        Stacked samples, scaled by :math:`S^{-1/2}`.
    train_rmse_history_ : ndarray of shape (burn_in + n_samples,)
        Training RMSE of each sweep's own sample (not of the average).

    References
    ----------
    R. Salakhutdinov, A. Mnih, "Bayesian probabilistic matrix factorization using Markov chain
    Monte Carlo", ICML 2008.
    """

    def __init__(self, n_factors: int = 10, n_samples: int = 100, burn_in: int = 20,
                 alpha: float = 1.5, beta0: float = 2.0, nu0: float | None = None,
                 w0: float = 1.0, biased: bool = True, init_std: float = 0.1,
                 random_state=None, verbose: bool = False):
        self.n_factors = n_factors
        self.n_samples = n_samples
        self.burn_in = burn_in
        self.alpha = alpha
        self.beta0 = beta0
        self.nu0 = nu0
        self.w0 = w0
        self.biased = biased
        self.init_std = init_std
        self.random_state = random_state
        self.verbose = verbose

    def _validate_params(self) -> None:
        check_int("n_factors", self.n_factors, minimum=1)
        check_int("n_samples", self.n_samples, minimum=1)
        check_int("burn_in", self.burn_in, minimum=0)
        check_float("alpha", self.alpha, strictly_positive=True)
        check_float("beta0", self.beta0, strictly_positive=True)
        check_float("w0", self.w0, strictly_positive=True)
        check_float("init_std", self.init_std, minimum=0.0)
        check_bool("biased", self.biased)
        if self.nu0 is not None:
            d = self.n_factors + bool(self.biased)
            check_float("nu0", self.nu0)
            if self.nu0 <= d - 1:
                raise ValueError(f"nu0 == {self.nu0}, must be > n_factors + biased - 1 == "
                                 f"{d - 1} (the Wishart needs more degrees of freedom than "
                                 f"dimensions minus one)")

    def _fit(self, data: Interactions) -> None:
        rng = check_random_state(self.random_state)
        k, biased = self.n_factors, bool(self.biased)
        d = k + biased
        nu0 = float(d if self.nu0 is None else self.nu0)
        mu0, W0_inv = np.zeros(d), np.eye(d) / self.w0
        self.mean_ = float(data.ratings.mean())
        by_user = data.to_csr()
        by_item = sp.csr_matrix(by_user.T)
        U = rng.normal(0.0, self.init_std, (data.n_users, d))  # rows w_u = (p_u[, b_u])
        V = rng.normal(0.0, self.init_std, (data.n_items, d))  # rows v_i = (q_i[, b_i])
        if biased:
            U[:, k] = V[:, k] = 0.0
        sum_bu, sum_bi = np.zeros(data.n_users), np.zeros(data.n_items)
        kept_u, kept_v, history = [], [], []
        for sweep in tqdm(range(self.burn_in + self.n_samples), desc="BayesianMF",
                          disable=not self.verbose):
            mu_u, Lam_u = sample_normal_wishart(U, mu0, self.beta0, nu0, W0_inv, rng)
            mu_v, Lam_v = sample_normal_wishart(V, mu0, self.beta0, nu0, W0_inv, rng)
            U = self._sample_side(by_user, V, U, mu_u, Lam_u, rng)
            V = self._sample_side(by_item, U, V, mu_v, Lam_v, rng)
            history.append(self._train_rmse(data, U, V))
            if sweep >= self.burn_in:
                kept_u.append(U[:, :k])
                kept_v.append(V[:, :k])
                if biased:
                    sum_bu += U[:, k]
                    sum_bi += V[:, k]
        S = len(kept_u)
        self.user_factors_ = np.hstack(kept_u) / np.sqrt(S)
        self.item_factors_ = np.hstack(kept_v) / np.sqrt(S)
        self.user_bias_, self.item_bias_ = sum_bu / S, sum_bi / S
        self.train_rmse_history_ = np.array(history)

    def _sample_side(self, R, other, own, prior_mean, prior_prec, rng) -> np.ndarray:
        """Draw all rows of one side given the other side's current vectors."""
        k = self.n_factors
        if self.biased:  # design (q_i, 1), target r - mu - b_i (and symmetrically for items)
            design = np.hstack([other[:, :k], np.ones((len(other), 1))])
            targets = R.data - self.mean_ - other[R.indices, k]
        else:
            design, targets = other, R.data - self.mean_
        noise = rng.standard_normal(own.shape)
        return sample_rows(R.indptr, R.indices, targets, design, prior_prec, prior_mean,
                           float(self.alpha), noise)

    def _train_rmse(self, data, U, V) -> float:
        y_hat = self.mean_ + np.einsum("nk,nk->n", U[data.users, :self.n_factors],
                                       V[data.items, :self.n_factors])
        if self.biased:
            y_hat += U[data.users, -1] + V[data.items, -1]
        return float(np.sqrt(np.mean((data.ratings - y_hat) ** 2)))
