"""NumPy/SciPy recommenders, all with the API of :class:`~reclib.models.Recommender`."""

from .base import NotFittedError, Recommender
from .baselines import BaselinePredictor, GlobalMean, Popularity, Random
from .factorization import BiasedMF, ExplicitALS, FunkSVD
from .neighbors import ItemKNN, UserKNN
from .svdpp import SVDpp

__all__ = ["Recommender", "NotFittedError", "GlobalMean", "Popularity", "Random", "BaselinePredictor",
           "FunkSVD", "BiasedMF", "ExplicitALS", "SVDpp",
           "UserKNN", "ItemKNN"]
