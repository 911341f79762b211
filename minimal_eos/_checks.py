"""Argument checks shared by the public functions.

Every check raises :class:`ValueError` naming the argument and what is accepted, so that
bad input is rejected before any compiled code runs.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def _not_a_number(value) -> str | None:
    """What makes ``value`` not a real number or array of them (a string, a bool, a complex
    number), or None."""
    if isinstance(value, str | bytes):
        return "a string"
    if isinstance(value, list | tuple):
        for item in value:
            bad = _not_a_number(item)
            if bad is not None:
                return bad
        return None
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError):
        return None
    kinds = {"U": "a string", "S": "a string", "b": "a bool", "c": "a complex number"}
    if raw.dtype.kind in kinds:
        return kinds[raw.dtype.kind]
    if raw.dtype.kind == "O":
        for item in raw.flat:
            if isinstance(item, str | bytes):
                return "a string"
            if isinstance(item, bool | np.bool_):
                return "a bool"
    return None


def as_float_array(value, name: str, *, ndim: int | tuple[int, ...] | None = None) -> np.ndarray:
    """Return ``value`` as a finite float64 array, or raise a ValueError naming ``name``.

    Strings, bools and complex numbers are refused, even where numpy would convert them.
    """
    bad = _not_a_number(value)
    if bad is not None:
        raise ValueError(f"{name} must be real numbers, not {bad}; got {value!r}")
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be an array of real numbers; got {value!r}") from exc
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else ndim
        if arr.ndim not in allowed:
            raise ValueError(
                f"{name} must have {' or '.join(map(str, allowed))} dimension(s); "
                f"got shape {arr.shape}"
            )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite; got non-finite entries in {name}")
    return arr


def _real(value, name: str) -> float:
    """``float(value)``, refusing strings and bools even where ``float`` would convert them."""
    if isinstance(value, str | bytes | bool | np.bool_):
        raise ValueError(f"{name} must be a real number; got {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a real number; got {value!r}") from exc


def positive_float(value, name: str, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a finite float that is > 0 (or >= 0 with ``allow_zero``).

    Strings and bools are refused, even where ``float`` would convert them.
    """
    x = _real(value, name)
    ok = np.isfinite(x) and (x >= 0 if allow_zero else x > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}; got {value!r}")
    return x


def positive_int(value, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` as an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    return int(value)


def in_interval(value, name: str, lo: float, hi: float, *, closed_hi: bool = False) -> float:
    """Return ``value`` as a float in [lo, hi) (or [lo, hi] with ``closed_hi``).

    Strings and bools are refused, even where ``float`` would convert them.
    """
    x = _real(value, name)
    ok = np.isfinite(x) and lo <= x and (x <= hi if closed_hi else x < hi)
    if not ok:
        right = "]" if closed_hi else ")"
        raise ValueError(f"{name} must lie in [{lo}, {hi}{right}; got {value!r}")
    return x


def choice(value: str, name: str, accepted: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``accepted``, else raise a ValueError listing them."""
    accepted = list(accepted)
    if value not in accepted:
        raise ValueError(f"unknown {name} {value!r}; accepted: {', '.join(map(repr, accepted))}")
    return value


def batch_of_runs(theta0, eta, dim: int, name: str = "theta0") -> tuple[np.ndarray, np.ndarray]:
    """Broadcast initial points against step sizes into a batch of runs.

    ``theta0`` has shape ``(dim,)`` or ``(B, dim)``, ``eta`` is a number or shape ``(B,)``;
    either may have size one. Returns C-contiguous, writable float64 arrays of shapes
    ``(B, dim)`` and ``(B,)``; every step size must be finite and > 0.
    """
    th = as_float_array(theta0, name, ndim=(1, 2))
    if th.shape[-1] != dim:
        raise ValueError(f"{name} must have shape ({dim},) or (B, {dim}); got {th.shape}")
    if th.size == 0:
        raise ValueError(f"{name} must hold at least one initial point; got shape {th.shape}")
    etas = as_float_array(eta, "eta", ndim=(0, 1))
    if etas.size == 0:
        raise ValueError("eta must hold at least one step size; got an empty array")
    if np.any(etas <= 0):
        raise ValueError("eta must be > 0 for every run")
    th = np.atleast_2d(th)
    etas = np.atleast_1d(etas)
    if len(th) != len(etas) and 1 not in (len(th), len(etas)):
        raise ValueError(
            f"{name} and eta disagree on the batch size: {len(th)} initial points, "
            f"{len(etas)} step sizes (give equal sizes, or one of either)"
        )
    nb = max(len(th), len(etas))
    return (np.array(np.broadcast_to(th, (nb, dim)), order="C"),
            np.array(np.broadcast_to(etas, (nb,)), order="C"))


def record_count(steps: int, every: int) -> int:
    """Number of records taken every ``every`` steps of ``steps``, the last step included."""
    return steps // every + 1 + (1 if steps % every else 0)


def sympy_expr(value, name: str):
    """Return ``value`` as a sympy expression without ever parsing text.

    Accepted: sympy objects (returned as they are) and Python or numpy integers and
    floats (converted exactly by ``sympy.sympify``, which for numbers only builds an
    ``Integer`` or ``Float``). Strings, and any other object, are refused with a
    ValueError naming ``name``: ``sympify`` of text (or of an object through its ``str``)
    evaluates it as Python code.
    """
    import sympy as sp

    if isinstance(value, sp.Basic):
        return value
    if isinstance(value, int | float | np.integer | np.floating) and not isinstance(
            value, bool | np.bool_):
        return sp.sympify(value)
    raise ValueError(f"{name} must be a sympy expression or a number; got "
                     f"{type(value).__name__} {value!r:.80} (text is not parsed: build "
                     "expressions from sympy.symbols and operators)")
