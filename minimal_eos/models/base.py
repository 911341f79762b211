"""The model interface: a frozen dataclass of parameters plus compiled math.

A model is data (its dataclass fields) and math (its kernels). Subclasses define

- :attr:`Model.dim`, the number of coordinates;
- :meth:`Model.param_vector`, the constants as one float64 vector, read by the kernels;
- :meth:`Model.kernels`, the compiled batch kernels (:class:`minimal_eos.symbolic.Kernels`),
  built once per model structure and cached.

Symbolic models derive their kernels from a :class:`~minimal_eos.symbolic.SymbolicLoss`
(:class:`SymbolicModel`); models with many coordinates write them by hand and test them
against the symbolic derivation on a small instance.
"""

from __future__ import annotations

import abc
from collections.abc import Hashable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import sympy as sp

from .._checks import as_float_array
from ..symbolic import Kernels, SymbolicLoss

_KERNEL_CACHE: dict[Hashable, Kernels] = {}


def cached_kernels(key: Hashable, build) -> Kernels:
    """Return the kernels stored under ``key``, building them with ``build()`` once."""
    if key not in _KERNEL_CACHE:
        _KERNEL_CACHE[key] = build()
    return _KERNEL_CACHE[key]


class Model(abc.ABC):
    """Abstract base of every model: loss, gradient, Hessian, sharpness and ``D^3 L[u, u]``.

    All public methods take one point ``theta`` of shape ``(dim,)``.
    """

    name: ClassVar[str] = "model"

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Number of coordinates."""

    @abc.abstractmethod
    def param_vector(self) -> np.ndarray:
        """The model's constants as the flat float64 vector its kernels read."""

    @abc.abstractmethod
    def kernels(self) -> Kernels:
        """The compiled batch kernels (cached per model structure)."""

    # -- helpers -----------------------------------------------------------------------
    def check_theta(self, theta, name: str = "theta") -> np.ndarray:
        """Return ``theta`` as a finite float64 vector of length :attr:`dim`."""
        arr = as_float_array(theta, name, ndim=1)
        if arr.shape != (self.dim,):
            raise ValueError(f"{name} must have shape ({self.dim},); got {arr.shape}")
        return arr

    def kernel_params(self) -> np.ndarray:
        """:meth:`param_vector`, built once per instance (models are frozen)."""
        p = self.__dict__.get("_param_cache")
        if p is None:
            # writable, like the vector simulate() passes: one compiled signature per kernel
            p = np.array(self.param_vector(), dtype=np.float64, order="C")
            self.__dict__["_param_cache"] = p
        return p

    def _column(self, theta) -> np.ndarray:
        return np.ascontiguousarray(self.check_theta(theta).reshape(self.dim, 1))

    # -- math --------------------------------------------------------------------------
    def loss(self, theta) -> float:
        """The loss ``L(theta)``."""
        out = np.empty(1)
        self.kernels().loss(self._column(theta), 0, 1, self.kernel_params(), out)
        return float(out[0])

    def grad(self, theta) -> np.ndarray:
        """The gradient ``grad L(theta)``, shape ``(dim,)``."""
        out = np.empty((self.dim, 1))
        self.kernels().grad(self._column(theta), 0, 1, self.kernel_params(), out)
        return out[:, 0]

    def hessian(self, theta) -> np.ndarray:
        """The Hessian ``grad^2 L(theta)``, shape ``(dim, dim)``."""
        out = np.empty((self.dim, self.dim, 1))
        self.kernels().hess(self._column(theta), 0, 1, self.kernel_params(), out)
        return out[:, :, 0]

    def sharpness(self, theta) -> float:
        """The sharpness ``S(theta)``: the largest eigenvalue of the Hessian."""
        out = np.empty(1)
        self.kernels().sharp(self._column(theta), 0, 1, self.kernel_params(), out)
        return float(out[0])

    def top_eigenpair(self, theta) -> tuple[float, np.ndarray]:
        """The largest Hessian eigenvalue and its unit eigenvector.

        The eigenvector's sign is fixed so that its largest-magnitude entry is positive.
        """
        vals, vecs = np.linalg.eigh(self.hessian(theta))
        u = vecs[:, -1]
        u = u if u[np.argmax(np.abs(u))] >= 0 else -u
        return float(vals[-1]), u

    def third_directional(self, theta, u) -> np.ndarray:
        """``D^3 L(theta)[u, u]``, the vector ``sum_jk T_ijk u_j u_k``."""
        u = self.check_theta(u, "u")
        out = np.empty((self.dim, 1))
        self.kernels().dir3(
            self._column(theta), np.ascontiguousarray(u.reshape(-1, 1)), 0, 1,
            self.kernel_params(), out,
        )
        return out[:, 0]

    # -- finite sums ---------------------------------------------------------------------
    def example_params(self) -> np.ndarray:
        """Kernel parameters of each example's loss, shape ``(n, P)``.

        Row ``i`` makes the model's kernels compute the loss ``l_i`` of example ``i`` alone,
        with ``L = (1/n) sum_i l_i``; mini-batch SGD samples these rows. Models with data
        override this; the others have no per-example losses and raise a ValueError.
        """
        raise ValueError(
            f"the {type(self).__name__} model has no per-example losses: SGD needs a "
            f"finite-sum model (TwoLayerNetwork, LogisticRegression, DiagonalNetwork, "
            f"FiniteSumQuadratic)"
        )

    def example_losses(self, theta) -> np.ndarray:
        """The per-example losses ``l_i(theta)``, shape ``(n,)`` (their mean is ``L``)."""
        col = self._column(theta)
        rows = self.example_params()
        out = np.empty(1)
        losses = np.empty(len(rows))
        for i, row in enumerate(rows):
            self.kernels().loss(col, 0, 1, row, out)
            losses[i] = out[0]
        return losses

    def example_grads(self, theta) -> np.ndarray:
        """The per-example gradients ``grad l_i(theta)``, shape ``(n, dim)``."""
        col = self._column(theta)
        rows = self.example_params()
        out = np.empty((self.dim, 1))
        grads = np.empty((len(rows), self.dim))
        for i, row in enumerate(rows):
            self.kernels().grad(col, 0, 1, row, out)
            grads[i] = out[:, 0]
        return grads

    def grad_sharpness(self, theta) -> np.ndarray:
        """Gradient of the sharpness, ``grad S = D^3 L[u, u]`` with ``u`` the top eigenvector.

        Notes
        -----
        For a simple top eigenvalue, ``dS/dtheta_i = u^T (dH/dtheta_i) u``
        (first-order perturbation theory), which is ``D^3 L[u, u]``.
        Damian, Nichani, Lee (arXiv 2209.15594), section 3.
        """
        _, u = self.top_eigenpair(theta)
        return self.third_directional(theta, u)


@dataclass(frozen=True)
class SymbolicModel(Model):
    """A model given directly by a sympy loss: the quickest way to a new model.

    Parameters
    ----------
    expr
        The loss as a sympy expression.
    coords
        Its coordinates, in order.
    consts
        Symbols of constants, with their numerical ``values`` in the same order.
    values
        The constants' values.

    Examples
    --------
    >>> import sympy as sp
    >>> x, y = sp.symbols("x y")
    >>> model = SymbolicModel((x**2 * y**2 - 1) ** 2 / 4, (x, y))
    >>> round(model.loss([1.0, 2.0]), 6)
    2.25
    """

    expr: sp.Expr
    coords: tuple[sp.Symbol, ...]
    consts: tuple[sp.Symbol, ...] = ()
    values: tuple[float, ...] = ()
    name: ClassVar[str] = "symbolic"

    def __post_init__(self) -> None:
        object.__setattr__(self, "coords", tuple(self.coords))
        object.__setattr__(self, "consts", tuple(self.consts))
        vals = as_float_array(self.values, "values", ndim=1)
        if len(vals) != len(self.consts):
            raise ValueError(
                f"values must give one number per const: {len(self.consts)} consts, "
                f"{len(vals)} values"
            )
        object.__setattr__(self, "values", tuple(float(v) for v in vals))
        SymbolicLoss(self.coords, self.expr, self.consts)  # validates the symbols

    @property
    def dim(self) -> int:
        return len(self.coords)

    def symbolic(self) -> SymbolicLoss:
        """The loss as a :class:`~minimal_eos.symbolic.SymbolicLoss`."""
        return SymbolicLoss(self.coords, self.expr, self.consts)

    def param_vector(self) -> np.ndarray:
        return np.array(self.values, dtype=np.float64)

    def kernels(self) -> Kernels:
        key = ("symbolic", sp.srepr(self.expr), self.coords, self.consts)
        return cached_kernels(key, lambda: self.symbolic().compile())
