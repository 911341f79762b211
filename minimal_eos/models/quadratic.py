"""Quadratic losses ``L(w) = 1/2 w^T H w + b^T w`` with a given Hessian spectrum."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numba
import numpy as np
import sympy as sp

from .._checks import as_float_array
from ..symbolic import JIT_OPTIONS, Kernels, SymbolicLoss
from .base import Model, cached_kernels

# Parameter vector layout: [lambda_max, H (d*d, row-major), b (d)].


def _quadratic_kernels() -> Kernels:
    jit = numba.njit(**JIT_OPTIONS)

    @jit
    def grad(th, lo, hi, p, out):
        d = th.shape[0]
        for i in range(d):
            bi = p[1 + d * d + i]
            for b in range(lo, hi):
                out[i, b] = bi
            for j in range(d):
                hij = p[1 + i * d + j]
                for b in range(lo, hi):
                    out[i, b] += hij * th[j, b]

    @jit
    def loss(th, lo, hi, p, out):
        d = th.shape[0]
        for b in range(lo, hi):
            out[b] = 0.0
        for i in range(d):
            bi = p[1 + d * d + i]
            for b in range(lo, hi):
                out[b] += bi * th[i, b]
            for j in range(d):
                half_hij = 0.5 * p[1 + i * d + j]
                for b in range(lo, hi):
                    out[b] += half_hij * th[i, b] * th[j, b]

    @jit
    def hess(th, lo, hi, p, out):
        d = th.shape[0]
        for i in range(d):
            for j in range(d):
                hij = p[1 + i * d + j]
                for b in range(lo, hi):
                    out[i, j, b] = hij

    @jit
    def dir3(th, u, lo, hi, p, out):
        for i in range(th.shape[0]):
            for b in range(lo, hi):
                out[i, b] = 0.0

    @jit
    def sharp(th, lo, hi, p, out):
        for b in range(lo, hi):
            out[b] = p[0]

    return Kernels(loss, grad, hess, dir3, sharp)


@dataclass(frozen=True)
class Quadratic(Model):
    """The quadratic ``L(w) = 1/2 w^T H w + b^T w`` with ``H = Q diag(eigenvalues) Q^T``.

    Parameters
    ----------
    eigenvalues
        The Hessian spectrum, shape ``(d,)``; any real numbers (negative ones make a saddle).
    linear
        The linear term ``b``, shape ``(d,)``; zeros by default.
    basis
        An orthogonal matrix ``Q`` whose columns are the eigenvectors; the identity by default.

    Notes
    -----
    GD on this loss is linear: ``w+ = (I - eta H) w - eta b``, stable iff every
    eigenvalue ``lambda`` satisfies ``0 < eta lambda < 2`` (see
    :func:`minimal_eos.thresholds.stability_threshold` for momentum methods).

    Examples
    --------
    >>> q = Quadratic([3.0, 1.0])
    >>> q.sharpness([0.5, -0.5])
    3.0
    """

    eigenvalues: tuple[float, ...]
    linear: tuple[float, ...] | None = None
    basis: np.ndarray | None = None
    name: ClassVar[str] = "quadratic"

    def __post_init__(self) -> None:
        lam = as_float_array(self.eigenvalues, "eigenvalues", ndim=1)
        if lam.size == 0:
            raise ValueError("eigenvalues must hold at least one number")
        d = lam.size
        b = np.zeros(d) if self.linear is None else as_float_array(self.linear, "linear", ndim=1)
        if b.shape != (d,):
            raise ValueError(f"linear must have shape ({d},) like eigenvalues; got {b.shape}")
        if self.basis is None:
            q = np.eye(d)
        else:
            q = as_float_array(self.basis, "basis", ndim=2)
            if q.shape != (d, d):
                raise ValueError(f"basis must have shape ({d}, {d}); got {q.shape}")
            if not np.allclose(q.T @ q, np.eye(d), atol=1e-10):
                raise ValueError("basis must be orthogonal (Q^T Q = I to 1e-10)")
            q.setflags(write=False)
        object.__setattr__(self, "eigenvalues", tuple(float(v) for v in lam))
        object.__setattr__(self, "linear", tuple(float(v) for v in b))
        object.__setattr__(self, "basis", q)

    @property
    def dim(self) -> int:
        return len(self.eigenvalues)

    @property
    def hessian_matrix(self) -> np.ndarray:
        """``H = Q diag(eigenvalues) Q^T``."""
        q = self.basis
        h = (q * np.array(self.eigenvalues)) @ q.T
        return 0.5 * (h + h.T)

    def minimizer(self) -> np.ndarray:
        """The stationary point ``-H^{-1} b`` (raises if ``H`` is singular)."""
        if min(abs(v) for v in self.eigenvalues) == 0.0:
            raise ValueError("H is singular: the quadratic has no unique stationary point")
        return -np.linalg.solve(self.hessian_matrix, np.array(self.linear))

    def param_vector(self) -> np.ndarray:
        h = self.hessian_matrix
        return np.concatenate([[max(self.eigenvalues)], h.ravel(), np.array(self.linear)])

    def kernels(self) -> Kernels:
        return cached_kernels("quadratic", _quadratic_kernels)

    def symbolic(self) -> SymbolicLoss:
        """The same loss written in sympy, with ``H`` and ``b`` as constants.

        The constants' order matches :meth:`param_vector` without its first entry.
        Used to test the hand-written kernels against the symbolic derivation.
        """
        d = self.dim
        w = sp.symbols(f"w0:{d}")
        hs = sp.symbols(f"h0:{d * d}")
        bs = sp.symbols(f"b0:{d}")
        hm = sp.Matrix(d, d, hs)
        wv = sp.Matrix(w)
        expr = (wv.T * hm * wv)[0, 0] / 2 + sum(bi * wi for bi, wi in zip(bs, w, strict=True))
        return SymbolicLoss(w, expr, (*hs, *bs))


@dataclass(frozen=True, eq=False)
class FiniteSumQuadratic(Model):
    """``L(w) = (1/n) sum_i l_i(w)`` with ``l_i(w) = 1/2 w^T H_i w + b_i^T w``.

    Parameters
    ----------
    hessians
        The per-example Hessians ``H_i``, shape ``(n, d, d)``, each symmetric.
    linears
        The per-example linear terms ``b_i``, shape ``(n, d)``; zeros by default.

    Notes
    -----
    The full loss is the quadratic of Hessian ``H = mean_i H_i`` and linear term
    ``b = mean_i b_i`` (same kernels as :class:`Quadratic`); mini-batch SGD samples the
    ``l_i``. A mini-batch ``B`` sees ``H_B = mean_{i in B} H_i``: with different ``H_i`` the
    batch sharpness differs from the full one.

    Examples
    --------
    >>> m = FiniteSumQuadratic([[[2.0]], [[4.0]]], [[1.0], [-1.0]])
    >>> m.sharpness([0.0]), m.example_losses([1.0]).tolist()
    (3.0, [2.0, 1.0])
    """

    hessians: np.ndarray
    linears: np.ndarray | None = None
    name: ClassVar[str] = "finite-sum-quadratic"

    def __post_init__(self) -> None:
        h = as_float_array(self.hessians, "hessians", ndim=3)
        n, d, d2 = h.shape
        if n == 0 or d == 0 or d != d2:
            raise ValueError(f"hessians must have shape (n, d, d) with n, d >= 1; got {h.shape}")
        if not np.allclose(h, np.swapaxes(h, 1, 2), rtol=1e-12, atol=1e-12):
            raise ValueError("hessians must be symmetric matrices")
        b = np.zeros((n, d)) if self.linears is None else as_float_array(self.linears,
                                                                         "linears", ndim=2)
        if b.shape != (n, d):
            raise ValueError(f"linears must have shape ({n}, {d}); got {b.shape}")
        for arr in (h, b):
            arr.setflags(write=False)
        object.__setattr__(self, "hessians", h)
        object.__setattr__(self, "linears", b)

    @property
    def n(self) -> int:
        """Number of examples."""
        return self.hessians.shape[0]

    @property
    def dim(self) -> int:
        return self.hessians.shape[1]

    @staticmethod
    def _params(h: np.ndarray, b: np.ndarray) -> np.ndarray:
        h = 0.5 * (h + h.T)
        return np.concatenate([[np.linalg.eigvalsh(h)[-1]], h.ravel(), b])

    def param_vector(self) -> np.ndarray:
        return self._params(self.hessians.mean(axis=0), self.linears.mean(axis=0))

    def example_params(self) -> np.ndarray:
        """Row ``i``: the quadratic ``l_i`` (``[lambda_max(H_i), H_i, b_i]``)."""
        return np.stack([self._params(h, b) for h, b in zip(self.hessians, self.linears,
                                                              strict=True)])

    def kernels(self) -> Kernels:
        return cached_kernels("quadratic", _quadratic_kernels)
