"""PyTorch recommenders with the common reclib API (needs the ``torch`` extra).

``import reclib`` never imports torch; ``import reclib.neural`` does. Every model here is a
:class:`NeuralRecommender`, trained by one :class:`Trainer` with one set of
losses (:mod:`reclib.neural.losses`) and samplers (:mod:`reclib.neural.samplers`).
"""

try:
    import torch  # noqa: F401
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("reclib.neural needs PyTorch: pip install 'reclib-book[torch]'") from err

from ._train import (RowWiseAdagrad, TrainConfig, Trainer, TrainResult, average_gradients,
                     resolve_device,
                     scoped_seed, seed_everything, shard_batch, train_module)
from .estimator import NeuralRecommender
from .autorec import AutoRec
from .fm import FM, DeepFM
from .lightgcn import LightGCN
from .ncf import GMF, MLP, NeuMF
from .sasrec import SASRec, SequentialRecommender
from .gru4rec import GRU4Rec
from .two_tower import TwoTower
from .bprmf import BPRMF
from .ials import TorchImplicitALS

__all__ = ["NeuralRecommender", "TrainConfig", "TrainResult", "Trainer", "train_module",
           "RowWiseAdagrad", "shard_batch", "average_gradients", "resolve_device",
           "scoped_seed", "seed_everything", "GMF", "MLP", "NeuMF", "AutoRec", "LightGCN",
           "FM", "DeepFM", "TwoTower", "BPRMF", "TorchImplicitALS", "SequentialRecommender",
           "SASRec", "GRU4Rec"]
