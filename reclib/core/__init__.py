"""The core every other layer builds on: the id map, the ranking core and the model file.

=======================  ======================================================
:class:`IdMap`           raw id <-> index, mapped in one place
:func:`topk`             top-k with one tie rule, exclusions and candidate sets
:mod:`.modelfile`        arrays + JSON header with checksums; no pickle
=======================  ======================================================
"""

from . import modelfile
from .idmap import IdMap, id_kind
from .modelfile import ModelFileError
from .ranking import default_batch_size, topk

__all__ = ["IdMap", "id_kind", "topk", "default_batch_size", "modelfile", "ModelFileError"]
