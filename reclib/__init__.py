"""reclib: the tested library behind *Recommender Systems: from Collaborative Filtering to
Large Models*.

>>> import reclib
>>> df = reclib.datasets.load_movielens("100k")
>>> train, test = reclib.split.stratified_split(df, ratio=0.75, seed=42)
>>> model = reclib.models.Popularity().fit(train)
>>> reclib.evaluation.evaluate_ranking(model, train, test, k=10)["ndcg@10"]  # doctest: +SKIP
"""

from . import datasets, evaluation, models, notebook, split
from ._version import __version__
from .interactions import Interactions

__all__ = ["Interactions", "datasets", "evaluation", "models", "notebook", "split", "__version__"]
