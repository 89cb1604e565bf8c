"""Real-time serving: a model store, exact and faiss indexes, fold-in, events, an HTTP app.

``python -m reclib.serving --model PATH --port 8000`` serves a fitted model (see
:mod:`reclib.serving.__main__` for the options). The pieces, usable on their own:

* :mod:`~reclib.serving.store`: :class:`ModelStore`, :func:`export_model`, :func:`load_any`;
* :mod:`~reclib.serving.index`: :class:`ExactIndex`, :class:`HNSWIndex`, :class:`IVFIndex`;
* :mod:`~reclib.serving.foldin`: :class:`IALSFoldIn`, the exact iALS user solve;
* :mod:`~reclib.serving.encoders`: how each model re-encodes a user after new events
  (iALS fold-in, SASRec/GRU4Rec sequences, the history two-tower);
* :mod:`~reclib.serving.events`: :class:`EventLog`, the durable SQLite log;
* :mod:`~reclib.serving.service`: :class:`Service`, the state behind the routes;
* :mod:`~reclib.serving.app`: the FastAPI app (needs the ``serving`` extra);
* :mod:`~reclib.serving.loadtest`: a bounded asyncio load generator.

This package imports fastapi and faiss only where they are used, so the store, the exact
index and the fold-in work without the extra.
"""

from .events import EventLog
from .encoders import FoldInEncoder, HistoryTowerEncoder, SequenceEncoder
from .foldin import IALSFoldIn
from .index import ExactIndex, HNSWIndex, IVFIndex, build_index, exact_topk, recall_at_k
from .service import CannotAddItemsError, ItemExistsError, Service, UnknownItemError
from .store import ModelStore, StoreError, export_model, load_any

__all__ = ["CannotAddItemsError", "EventLog", "ExactIndex", "FoldInEncoder", "HNSWIndex", "HistoryTowerEncoder",
           "IALSFoldIn", "IVFIndex", "ItemExistsError", "ModelStore",
           "SequenceEncoder", "Service", "StoreError", "UnknownItemError", "build_index",
           "exact_topk", "export_model", "load_any", "recall_at_k"]
