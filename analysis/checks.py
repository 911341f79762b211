"""Argument checks of the functions of :mod:`analysis`, public so that every module (and a
user's own sweep over a model) validates models, step-size grids and initial points the
same way.

Each check raises a one-line :class:`ValueError` naming the argument and what it accepts.
"""

from __future__ import annotations

import numpy as np

from minimal_eos._checks import as_float_array
from minimal_eos.models.base import Model


def check_model(model) -> Model:
    """Return ``model`` if it is a :class:`~minimal_eos.models.Model`, else raise.

    Examples
    --------
    >>> from minimal_eos import Quadratic
    >>> check_model(Quadratic([1.0])).dim
    1
    """
    if not isinstance(model, Model):
        raise ValueError(f"model must be a minimal_eos Model; got {type(model).__name__}")
    return model


def check_etas(etas, name: str = "etas") -> np.ndarray:
    """A non-empty contiguous 1-D float64 grid of step sizes, each finite and > 0.

    Examples
    --------
    >>> check_etas(0.5)
    array([0.5])
    """
    arr = np.atleast_1d(as_float_array(etas, name, ndim=(0, 1)))
    if arr.size == 0:
        raise ValueError(f"{name} must hold at least one step size; got an empty grid")
    if np.any(arr <= 0):
        raise ValueError(f"{name} must be > 0; got {arr[arr <= 0][:3]}")
    return np.ascontiguousarray(arr)


def check_thetas(model: Model, theta0, name: str = "theta0") -> np.ndarray:
    """Initial points of ``model`` as a float64 array of shape ``(B, d)``, each finite.

    ``theta0`` has shape ``(d,)`` (one point) or ``(B, d)`` with ``B >= 1``.

    Examples
    --------
    >>> from minimal_eos import Quadratic
    >>> check_thetas(Quadratic([1.0, 2.0]), [0.1, 0.2]).shape
    (1, 2)
    """
    th = as_float_array(theta0, name, ndim=(1, 2))
    if th.shape[-1] != model.dim or (th.ndim == 2 and th.shape[0] == 0):
        raise ValueError(f"{name} must have shape ({model.dim},) or (B, {model.dim}); "
                         f"got {th.shape}")
    return np.atleast_2d(th)
