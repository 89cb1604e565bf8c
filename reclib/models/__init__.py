"""NumPy/SciPy recommenders, all with the API of :class:`~reclib.models.Recommender`."""

from .base import NotFittedError, Recommender
from .baselines import BaselinePredictor, GlobalMean, Popularity
from .factorization import BiasedMF, ExplicitALS, FunkSVD
from .neighbors import ItemKNN, UserKNN
from .svdpp import SVDpp

__all__ = ["Recommender", "NotFittedError", "GlobalMean", "Popularity", "BaselinePredictor",
           "FunkSVD", "BiasedMF", "ExplicitALS", "SVDpp",
           "UserKNN", "ItemKNN"]
