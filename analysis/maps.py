"""Discrete maps: gradient descent at a fixed step size as a map ``F`` with Jacobian ``DF``.

:class:`GDMap` is GD on any :class:`~minimal_eos.models.Model`:
``F(x) = x - eta grad L(x)`` with ``DF(x) = I - eta H(x)``, both evaluated by the model's
compiled kernels (derived from its symbolic loss, or hand-written and tested against it).
:class:`FunctionMap` wraps any other map given as two functions (for reduced dynamics such
as the catapult's ``(f, lambda)`` map). Both work on one point ``(d,)`` or on a batch of
points stored column-wise ``(d, B)``, like the model kernels.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import sympy as sp

from minimal_eos._checks import as_float_array, positive_float, positive_int, sympy_expr
from minimal_eos.models.base import Model


class DiscreteMap(abc.ABC):
    """A map ``F: R^d -> R^d`` with its Jacobian, evaluated on batches of columns."""

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """The dimension ``d``."""

    @abc.abstractmethod
    def step_batch(self, th: np.ndarray) -> np.ndarray:
        """``F`` applied to every column of ``th`` (shape ``(d, B)``)."""

    @abc.abstractmethod
    def jacobian_batch(self, th: np.ndarray) -> np.ndarray:
        """``DF`` at every column of ``th``, shape ``(d, d, B)``."""

    # -- single points -------------------------------------------------------------------
    def check_point(self, x, name: str = "x") -> np.ndarray:
        """``x`` as a finite float64 vector of length :attr:`dim`."""
        arr = as_float_array(x, name, ndim=1)
        if arr.shape != (self.dim,):
            raise ValueError(f"{name} must have shape ({self.dim},); got {arr.shape}")
        return arr

    def check_batch(self, th, name: str = "points") -> np.ndarray:
        """Points given as ``(d,)`` or ``(B, d)``, returned column-wise as ``(d, B)``."""
        arr = as_float_array(th, name, ndim=(1, 2))
        arr = np.atleast_2d(arr)
        if arr.shape[1] != self.dim or arr.shape[0] == 0:
            raise ValueError(f"{name} must have shape ({self.dim},) or (B, {self.dim}) with "
                             f"B >= 1; got {np.shape(th)}")
        return np.ascontiguousarray(arr.T)

    def __call__(self, x) -> np.ndarray:
        """``F(x)`` for one point ``x`` of shape ``(d,)``."""
        return self.step_batch(self.check_point(x).reshape(-1, 1).copy())[:, 0]

    def jacobian(self, x) -> np.ndarray:
        """``DF(x)``, shape ``(d, d)``."""
        return self.jacobian_batch(self.check_point(x).reshape(-1, 1).copy())[:, :, 0]

    def iterate(self, x, k: int = 1) -> np.ndarray:
        """``F^k(x)``."""
        return self.trajectory(x, k)[-1]

    def trajectory(self, x, k: int) -> np.ndarray:
        """``x, F(x), ..., F^k(x)``, shape ``(k + 1, d)``."""
        k = positive_int(k, "k", minimum=0)
        th = self.check_point(x).reshape(-1, 1).copy()
        out = [th[:, 0].copy()]
        for _ in range(k):
            th = self.step_batch(th)
            out.append(th[:, 0].copy())
        return np.array(out)

    def iterate_with_jacobian(self, x, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(F^k(x), DF^k(x))`` with ``DF^k = DF(x_{k-1}) ... DF(x_0)`` (chain rule)."""
        th = self.check_point(x).reshape(-1, 1).copy()
        y, jac = self.iterate_with_jacobian_batch(th, positive_int(k, "k"))
        return y[:, 0], jac[:, :, 0]

    def iterate_with_jacobian_batch(self, th: np.ndarray, k: int):
        """Batch version of :meth:`iterate_with_jacobian`: ``(d, B)`` and ``(d, d, B)``."""
        d, nb = th.shape
        jac = np.broadcast_to(np.eye(d)[:, :, None], (d, d, nb)).copy()
        y = np.array(th, dtype=np.float64)
        with np.errstate(all="ignore"):
            for _ in range(k):
                step_jac = self.jacobian_batch(y)
                jac = np.einsum("ijb,jkb->ikb", step_jac, jac)
                y = self.step_batch(y)
        return y, jac


@dataclass(frozen=True)
class GDMap(DiscreteMap):
    """Gradient descent on ``model`` with step size ``eta`` as a map.

    Parameters
    ----------
    model
        Any :class:`~minimal_eos.models.Model`.
    eta
        The step size, finite and > 0.

    Notes
    -----
    ``F(x) = x - eta grad L(x)`` and ``DF(x) = I - eta H(x)``. Fixed points are the
    critical points of ``L``; a minimum with sharpness ``S`` has the multiplier
    ``1 - eta S``, which leaves the unit disc when ``eta S > 2``.

    Examples
    --------
    >>> from minimal_eos import ScalarNetwork
    >>> F = GDMap(ScalarNetwork(depth=2), eta=0.5)
    >>> F([2.0, 1.0])                          # (2, 1) - 0.5 (1, 2)
    array([1.5, 0. ])
    """

    model: Model
    eta: float

    def __post_init__(self) -> None:
        if not isinstance(self.model, Model):
            raise ValueError(f"model must be a minimal_eos Model; got {type(self.model).__name__}")
        object.__setattr__(self, "eta", positive_float(self.eta, "eta"))

    @property
    def dim(self) -> int:
        return self.model.dim

    def step_batch(self, th: np.ndarray) -> np.ndarray:
        th = np.ascontiguousarray(th, dtype=np.float64)
        g = np.empty_like(th)
        self.model.kernels().grad(th, 0, th.shape[1], self.model.kernel_params(), g)
        return th - self.eta * g

    def jacobian_batch(self, th: np.ndarray) -> np.ndarray:
        th = np.ascontiguousarray(th, dtype=np.float64)
        d, nb = th.shape
        h = np.empty((d, d, nb))
        self.model.kernels().hess(th, 0, nb, self.model.kernel_params(), h)
        return np.eye(d)[:, :, None] - self.eta * h

    def symbolic(self, eta: sp.Expr | None = None) -> tuple[tuple, list, sp.Matrix]:
        """``(coords, F, DF)`` in sympy, from the model's symbolic loss.

        Parameters
        ----------
        eta
            The step size to use (a number or a sympy symbol); this map's ``eta`` by
            default, as an exact rational when it is one.

        The model's constants are substituted by their values. Raises ValueError for
        models without a ``symbolic()`` derivation.
        """
        if not hasattr(self.model, "symbolic"):
            raise ValueError(f"{type(self.model).__name__} has no symbolic() derivation")
        loss = self.model.symbolic()
        values = self.model.param_vector()
        consts = loss.consts
        # models whose parameter vector has a leading entry that is not a constant
        values = values[len(values) - len(consts):]
        subs = {c: sp.nsimplify(float(v), rational=True) for c, v in zip(consts, values,
                                                                          strict=True)}
        e = sp.nsimplify(self.eta, rational=True) if eta is None else sympy_expr(eta, "eta")
        f = [sympy_expr(c - e * g, "eta").xreplace(subs)
             for c, g in zip(loss.coords, loss.gradient, strict=True)]
        jac = (sp.eye(loss.dim) - e * loss.hessian).xreplace(subs)
        return loss.coords, f, jac


@dataclass(frozen=True)
class FunctionMap(DiscreteMap):
    """A map given by two functions on batches of columns.

    Parameters
    ----------
    dimension
        The dimension ``d``.
    step
        ``step(th) -> F(th)`` for ``th`` of shape ``(d, B)``.
    jacobian_fn
        ``jacobian_fn(th) -> DF(th)`` of shape ``(d, d, B)``.

    Examples
    --------
    >>> import numpy as np
    >>> logistic = FunctionMap(1, lambda x: 3.2 * x * (1 - x),
    ...                        lambda x: (3.2 - 6.4 * x)[None])
    >>> logistic([0.5])
    array([0.8])
    """

    dimension: int
    step: Callable[[np.ndarray], np.ndarray]
    jacobian_fn: Callable[[np.ndarray], np.ndarray]

    def __post_init__(self) -> None:
        positive_int(self.dimension, "dimension")
        if not (callable(self.step) and callable(self.jacobian_fn)):
            raise ValueError("step and jacobian_fn must be callables on (d, B) arrays")

    @property
    def dim(self) -> int:
        return self.dimension

    def step_batch(self, th: np.ndarray) -> np.ndarray:
        out = np.asarray(self.step(np.asarray(th, dtype=np.float64)), dtype=np.float64)
        return out.reshape(np.shape(th))

    def jacobian_batch(self, th: np.ndarray) -> np.ndarray:
        d, nb = np.shape(th)
        out = np.asarray(self.jacobian_fn(np.asarray(th, dtype=np.float64)), dtype=np.float64)
        return out.reshape(d, d, nb)
