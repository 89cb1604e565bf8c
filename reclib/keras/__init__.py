"""TensorFlow/Keras twins of reclib models (needs the ``tf`` extra).

``import reclib`` never imports TensorFlow; ``import reclib.keras`` does. These models use
TensorFlow ops directly, so they need Keras 3's TensorFlow backend: Keras's default, used
unless ``KERAS_BACKEND`` names another (then importing this module is an error). Importing it
changes no environment variable. Each model here mirrors a PyTorch model
of :mod:`reclib.neural`, with the same hyper-parameters and loss, so the two frameworks can be
compared on equal terms:

=====================  ==============================
``KerasGMF``           :class:`reclib.neural.GMF`
``KerasTwoTower``      :class:`reclib.neural.TwoTower`
``KerasSASRec``        :class:`reclib.neural.SASRec`
=====================  ==============================

The class names carry the ``Keras`` prefix because saved models are found by class name.
``KerasSASRec`` shares the NumPy half of its sequence handling (windows, batches, padding)
with its PyTorch twin, so this module imports :mod:`reclib.neural` and needs the ``torch``
extra as well.
"""

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
from .sasrec import KerasSASRec  # noqa: E402

__all__ = ["KerasRecommender", "KerasGMF", "KerasTwoTower", "KerasSASRec"]
