"""Data sets: MovieLens (cached, checksummed, offline-first) and synthetic power-law data."""

from ._fetch import ChecksumError, data_home
from .movielens import load_movielens, load_movielens_items, load_movielens_users
from .synthetic import synthetic_interactions

__all__ = ["load_movielens", "load_movielens_items", "load_movielens_users",
           "synthetic_interactions", "data_home", "ChecksumError"]
