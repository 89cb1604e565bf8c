"""NumPy/SciPy recommenders, all with the API of :class:`~reclib.models.Recommender`."""

from .base import NotFittedError, Recommender
from .baselines import BaselinePredictor, GlobalMean, Popularity

__all__ = ["Recommender", "NotFittedError", "GlobalMean", "Popularity", "BaselinePredictor"]
