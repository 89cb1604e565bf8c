"""Argument checks shared by the whole package.

Every check names the argument, shows the value it got and says what it accepts, so that the
message alone tells the reader how to fix the call.
"""

from __future__ import annotations

import numbers

import numpy as np


def check_int(name: str, value, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as ``int`` or raise a ``ValueError``/``TypeError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} == {value}, must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} == {value}, must be <= {maximum}")
    return value


def check_float(
    name: str,
    value,
    minimum: float | None = None,
    maximum: float | None = None,
    strictly_positive: bool = False,
) -> float:
    """Return ``value`` as a finite ``float`` or raise an error naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} == {value}, must be finite")
    if strictly_positive and value <= 0:
        raise ValueError(f"{name} == {value}, must be > 0")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} == {value}, must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} == {value}, must be <= {maximum}")
    return value


def check_bool(name: str, value) -> bool:
    """Return ``value`` as ``bool`` or raise a ``TypeError`` naming ``name`` (no truthiness)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_choice(name: str, value, choices) -> str:
    """Raise unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} == {value!r}, must be one of {sorted(choices)}")
    return value


def check_random_state(seed, name: str = "random_state") -> np.random.Generator:
    """Turn ``None``, an int or a ``Generator`` into a ``numpy.random.Generator``.

    ``name`` is the argument named in the error (``"seed"`` for the split functions).
    """
    if seed is None or isinstance(seed, np.random.Generator):
        return np.random.default_rng(seed)
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        if seed < 0:
            raise ValueError(f"{name} == {seed}, must be >= 0")
        return np.random.default_rng(int(seed))
    raise TypeError(f"{name} must be None, an int or a numpy Generator, got {seed!r}")
