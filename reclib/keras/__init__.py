"""TensorFlow/Keras twins of reclib models (needs the ``tf`` extra).

``import reclib`` never imports TensorFlow; ``import reclib.keras`` does, and selects the
TensorFlow backend of Keras 3 unless ``KERAS_BACKEND`` already names one (another backend is
an error: these models use TensorFlow ops directly). Each model here mirrors a PyTorch model
of :mod:`reclib.neural`, with the same hyper-parameters and loss, so the two frameworks can be
compared on equal terms:

=====================  ==============================
``KerasGMF``           :class:`reclib.neural.GMF`
``KerasTwoTower``      :class:`reclib.neural.TwoTower`
=====================  ==============================

The class names carry the ``Keras`` prefix because saved models are found by class name.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

try:
    import keras
    import tensorflow  # noqa: F401
except ImportError as err:  # pragma: no cover - depends on the environment
    raise ImportError("reclib.keras needs TensorFlow and Keras 3: pip install 'reclib-book[tf]'") from err

if keras.backend.backend() != "tensorflow":  # pragma: no cover - depends on the environment
    raise ImportError(f"reclib.keras needs the TensorFlow backend of Keras, but KERAS_BACKEND "
                      f"is {keras.backend.backend()!r}; set KERAS_BACKEND=tensorflow before "
                      f"importing keras")

from .estimator import KerasRecommender  # noqa: E402
from .mf import KerasGMF  # noqa: E402
from .two_tower import KerasTwoTower  # noqa: E402

__all__ = ["KerasRecommender", "KerasGMF", "KerasTwoTower"]
