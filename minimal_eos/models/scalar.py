"""Scalar (depth-D, width-one) linear networks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import sympy as sp

from .._checks import as_float_array, positive_int
from ..symbolic import Kernels, SymbolicLoss
from .base import Model, cached_kernels

#: Deepest network whose kernels are built. The symbolic Hessian has ``D^2`` entries of
#: ``D``-fold products, and the build time grows at least geometrically in ``D``:
#: ``python -m benchmarks.scalar_build`` measured 0.14 s at depth 2, 9.9 s at depth 8,
#: 31 s at depth 10 and 136 s at depth 12 on a shared 2-core machine, 1.65 to 2.4 times
#: longer per layer, so depth 40 would take years.
MAX_DEPTH = 12
#: The measured build time (s) at :data:`MAX_DEPTH` and the smallest measured ratio per
#: layer, for the estimate in the refusal.
BUILD_SECONDS, BUILD_RATIO = 136.0, 1.65


@dataclass(frozen=True)
class ScalarNetwork(Model):
    """The depth-``D`` scalar network ``L(w) = 1/(2n) sum_k (x_k w_1 ... w_D - y_k)^2``.

    Parameters
    ----------
    depth
        Number of layers, ``1 <= D <= MAX_DEPTH`` (12): deeper networks are refused with
        an estimate of the build time of their kernels.
    x, y
        Inputs and targets of the ``n`` data points; one point ``(1, 1)`` by default, which
        gives ``L = 1/2 (w_1 ... w_D - 1)^2``.

    Notes
    -----
    Gradient flow conserves ``w_i^2 - w_j^2``. At a minimum with one data point
    ``(1, y)``, the Hessian is ``g g^T`` with ``g_i = prod_{j != i} w_j``, so the
    sharpness there is ``sum_i prod_{j != i} w_j^2``.
    Kreisler et al., ICML 2023; Chen & Bruna (arXiv 2206.04172).

    Examples
    --------
    >>> net = ScalarNetwork(depth=2)
    >>> net.loss([2.0, 1.0])
    0.5
    """

    depth: int = 2
    x: tuple[float, ...] = (1.0,)
    y: tuple[float, ...] = (1.0,)
    name: ClassVar[str] = "scalar-network"

    def __post_init__(self) -> None:
        positive_int(self.depth, "depth")
        if self.depth > MAX_DEPTH:
            seconds = BUILD_SECONDS * BUILD_RATIO ** (self.depth - MAX_DEPTH)
            raise ValueError(
                f"depth must be <= {MAX_DEPTH}; got {self.depth}: building its kernels "
                f"would take an estimated {_duration(seconds)} or more ({BUILD_SECONDS:g} s "
                f"at depth {MAX_DEPTH}, times {BUILD_RATIO} per layer)"
            )
        x = as_float_array(self.x, "x", ndim=1)
        y = as_float_array(self.y, "y", ndim=1)
        if x.size == 0 or x.shape != y.shape:
            raise ValueError(
                f"x and y must be non-empty and of equal length; got {x.size}, {y.size}"
            )
        object.__setattr__(self, "x", tuple(map(float, x)))
        object.__setattr__(self, "y", tuple(map(float, y)))

    @property
    def dim(self) -> int:
        return self.depth

    def symbolic(self) -> SymbolicLoss:
        """The loss in sympy, with the data ``x_k, y_k`` as constants."""
        n = len(self.x)
        w = sp.symbols(f"w1:{self.depth + 1}")
        xs = sp.symbols(f"x0:{n}")
        ys = sp.symbols(f"y0:{n}")
        prod = sp.Mul(*w)
        expr = sum((xk * prod - yk) ** 2 for xk, yk in zip(xs, ys, strict=True)) / (2 * n)
        return SymbolicLoss(w, expr, (*xs, *ys))

    def param_vector(self) -> np.ndarray:
        return np.array(self.x + self.y, dtype=np.float64)

    def kernels(self) -> Kernels:
        key = ("scalar-network", self.depth, len(self.x))
        return cached_kernels(key, lambda: self.symbolic().compile())


def _duration(seconds: float) -> str:
    """``seconds`` in the largest unit among s, min, h, days, years that is >= 1."""
    for unit, size in (("years", 3.15e7), ("days", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"
