"""NumPy/SciPy recommenders, all with the API of :class:`~reclib.models.Recommender`."""

from .base import NotFittedError, Recommender
from .baselines import BaselinePredictor, GlobalMean, Popularity, Random
from .bayesian_mf import BayesianMF
from .bpr import BPR
from .content import ContentBased
from .ease import EASE
from .factorization import BiasedMF, ExplicitALS, FunkSVD
from .implicit_als import ImplicitALS
from .neighbors import ItemKNN, UserKNN
from .svdpp import SVDpp

__all__ = ["Recommender", "NotFittedError", "GlobalMean", "Popularity", "Random", "BaselinePredictor",
           "ImplicitALS", "BPR", "EASE",
           "FunkSVD", "BiasedMF", "ExplicitALS", "SVDpp", "BayesianMF",
           "UserKNN", "ItemKNN", "ContentBased"]
