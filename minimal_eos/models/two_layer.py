"""A two-layer tanh / ReLU network on a handful of points, with its exact Hessian."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numba
import numpy as np
import sympy as sp

from .._checks import as_float_array, choice, positive_float, positive_int
from ..symbolic import JIT_OPTIONS, Kernels, SymbolicLoss, make_sharpness_kernel
from .base import Model, cached_kernels

ACTIVATIONS = ("tanh", "relu")

# Parameter vector layout: [activation code, n, d, c, X (n*d, row-major), Y (n)].
# Coordinates: theta = (W (m*d, row-major: W[j, i] at j*d + i), a (m)), so dim = m (d + 1).
_HEAD = 4


def _two_layer_kernels() -> Kernels:
    jit = numba.njit(**JIT_OPTIONS)

    @jit
    def act(code, z):
        """``(sigma, sigma', sigma'', sigma''')`` at ``z``; code 0 tanh, 1 ReLU."""
        if code == 0:
            t = math.tanh(z)
            s1 = 1.0 - t * t
            return t, s1, -2.0 * t * s1, -2.0 * s1 * (1.0 - 3.0 * t * t)
        if z > 0.0:
            return z, 1.0, 0.0, 0.0
        return 0.0, 0.0, 0.0, 0.0

    @jit
    def pre(th, lo, hi, p, k, m, d, z):
        """``z[j, b] = w_j . x_k`` for data point ``k``."""
        for j in range(m):
            for b in range(lo, hi):
                z[j, b] = 0.0
            for i in range(d):
                xki = p[_HEAD + k * d + i]
                for b in range(lo, hi):
                    z[j, b] += th[j * d + i, b] * xki

    @jit
    def loss(th, lo, hi, p, out):
        code = int(p[0])
        n = int(p[1])
        d = int(p[2])
        c = p[3]
        m = th.shape[0] // (d + 1)
        nb = th.shape[1]
        z = np.empty((m, nb))
        f = np.empty(nb)
        for b in range(lo, hi):
            out[b] = 0.0
        for k in range(n):
            pre(th, lo, hi, p, k, m, d, z)
            yk = p[_HEAD + n * d + k]
            for b in range(lo, hi):
                f[b] = 0.0
            for j in range(m):
                for b in range(lo, hi):
                    s0, _, _, _ = act(code, z[j, b])
                    f[b] += th[m * d + j, b] * s0
            for b in range(lo, hi):
                r = c * f[b] - yk
                out[b] += 0.5 * r * r / n

    @jit
    def residual(th, lo, hi, p, k, m, d, code, c, z, s, s1, s2, s3, r):
        """Activations and their derivatives at point ``k``, and the residual ``r = f - y``."""
        n = int(p[1])
        pre(th, lo, hi, p, k, m, d, z)
        for b in range(lo, hi):
            r[b] = 0.0
        for j in range(m):
            for b in range(lo, hi):
                a0, a1, a2, a3 = act(code, z[j, b])
                s[j, b] = a0
                s1[j, b] = a1
                s2[j, b] = a2
                s3[j, b] = a3
                r[b] += th[m * d + j, b] * a0
        yk = p[_HEAD + n * d + k]
        for b in range(lo, hi):
            r[b] = c * r[b] - yk

    @jit
    def grad(th, lo, hi, p, out):
        code = int(p[0])
        n = int(p[1])
        d = int(p[2])
        c = p[3]
        m = th.shape[0] // (d + 1)
        nb = th.shape[1]
        z = np.empty((m, nb))
        s = np.empty((m, nb))
        s1 = np.empty((m, nb))
        s2 = np.empty((m, nb))
        s3 = np.empty((m, nb))
        r = np.empty(nb)
        for q in range(th.shape[0]):
            for b in range(lo, hi):
                out[q, b] = 0.0
        for k in range(n):
            residual(th, lo, hi, p, k, m, d, code, c, z, s, s1, s2, s3, r)
            for j in range(m):
                for b in range(lo, hi):
                    out[m * d + j, b] += c * r[b] * s[j, b] / n
                for i in range(d):
                    xki = p[_HEAD + k * d + i]
                    for b in range(lo, hi):
                        out[j * d + i, b] += c * r[b] * th[m * d + j, b] * s1[j, b] * xki / n

    @jit
    def jacobian(th, lo, hi, p, k, m, d, c, s, s1, jac):
        """``jac[q, b] = d f(x_k) / d theta_q``."""
        for j in range(m):
            for b in range(lo, hi):
                jac[m * d + j, b] = c * s[j, b]
            for i in range(d):
                xki = p[_HEAD + k * d + i]
                for b in range(lo, hi):
                    jac[j * d + i, b] = c * th[m * d + j, b] * s1[j, b] * xki

    @jit
    def hess(th, lo, hi, p, out):
        code = int(p[0])
        n = int(p[1])
        d = int(p[2])
        c = p[3]
        dim = th.shape[0]
        m = dim // (d + 1)
        nb = th.shape[1]
        z = np.empty((m, nb))
        s = np.empty((m, nb))
        s1 = np.empty((m, nb))
        s2 = np.empty((m, nb))
        s3 = np.empty((m, nb))
        r = np.empty(nb)
        jac = np.empty((dim, nb))
        for q in range(dim):
            for q2 in range(dim):
                for b in range(lo, hi):
                    out[q, q2, b] = 0.0
        for k in range(n):
            residual(th, lo, hi, p, k, m, d, code, c, z, s, s1, s2, s3, r)
            jacobian(th, lo, hi, p, k, m, d, c, s, s1, jac)
            # Gauss-Newton part J J^T / n
            for q in range(dim):
                for q2 in range(dim):
                    for b in range(lo, hi):
                        out[q, q2, b] += jac[q, b] * jac[q2, b] / n
            # r d^2 f / n: blocks (a_j, W_ji) and (W_ji, W_jl)
            for j in range(m):
                for i in range(d):
                    xki = p[_HEAD + k * d + i]
                    for b in range(lo, hi):
                        h = r[b] * c * s1[j, b] * xki / n
                        out[m * d + j, j * d + i, b] += h
                        out[j * d + i, m * d + j, b] += h
                    for l in range(d):
                        xkl = p[_HEAD + k * d + l]
                        for b in range(lo, hi):
                            out[j * d + i, j * d + l, b] += (
                                r[b] * c * th[m * d + j, b] * s2[j, b] * xki * xkl / n
                            )

    @jit
    def dir3(th, u, lo, hi, p, out):
        code = int(p[0])
        n = int(p[1])
        d = int(p[2])
        c = p[3]
        dim = th.shape[0]
        m = dim // (d + 1)
        nb = th.shape[1]
        z = np.empty((m, nb))
        s = np.empty((m, nb))
        s1 = np.empty((m, nb))
        s2 = np.empty((m, nb))
        s3 = np.empty((m, nb))
        r = np.empty(nb)
        zeta = np.empty((m, nb))
        jw = np.empty(nb)
        whw = np.empty(nb)
        for q in range(dim):
            for b in range(lo, hi):
                out[q, b] = 0.0
        for k in range(n):
            residual(th, lo, hi, p, k, m, d, code, c, z, s, s1, s2, s3, r)
            # zeta_j = omega_j . x_k (the direction's first-layer part applied to x_k)
            for j in range(m):
                for b in range(lo, hi):
                    zeta[j, b] = 0.0
                for i in range(d):
                    xki = p[_HEAD + k * d + i]
                    for b in range(lo, hi):
                        zeta[j, b] += u[j * d + i, b] * xki
            for b in range(lo, hi):
                jw[b] = 0.0
                whw[b] = 0.0
            for j in range(m):
                for b in range(lo, hi):
                    al = u[m * d + j, b]
                    aj = th[m * d + j, b]
                    ze = zeta[j, b]
                    jw[b] += c * (al * s[j, b] + aj * s1[j, b] * ze)
                    whw[b] += c * (2.0 * al * s1[j, b] * ze + aj * s2[j, b] * ze * ze)
            # out += (2 (J.u) (d2f u) + (u d2f u) J + r D3f[u, u]) / n
            for j in range(m):
                for b in range(lo, hi):
                    al = u[m * d + j, b]
                    aj = th[m * d + j, b]
                    ze = zeta[j, b]
                    out[m * d + j, b] += (
                        2.0 * jw[b] * c * s1[j, b] * ze
                        + whw[b] * c * s[j, b]
                        + r[b] * c * s2[j, b] * ze * ze
                    ) / n
                for i in range(d):
                    xki = p[_HEAD + k * d + i]
                    for b in range(lo, hi):
                        al = u[m * d + j, b]
                        aj = th[m * d + j, b]
                        ze = zeta[j, b]
                        out[j * d + i, b] += (
                            2.0 * jw[b] * c * (al * s1[j, b] + aj * s2[j, b] * ze)
                            + whw[b] * c * aj * s1[j, b]
                            + r[b] * c * (2.0 * al * s2[j, b] * ze + aj * s3[j, b] * ze * ze)
                        ) * xki / n

    sharp = make_sharpness_kernel(hess, 3)
    return Kernels(loss, grad, hess, dir3, sharp)


@dataclass(frozen=True)
class TwoLayerNetwork(Model):
    """``L = 1/(2n) sum_k (c sum_j a_j sigma(w_j . x_k) - y_k)^2``: a two-layer network.

    Parameters
    ----------
    width
        The number of hidden units ``m``.
    activation
        ``"tanh"`` or ``"relu"``.
    inputs
        The ``n`` inputs, shape ``(n, d)`` (append a column of ones for first-layer biases).
    targets
        The ``n`` targets, shape ``(n,)``.
    output_scale
        The constant ``c``; ``1 / sqrt(m)`` by default.

    Notes
    -----
    Coordinates are ``theta = (W, a)`` with ``W`` (``m x d``) flattened row by row, so the
    dimension is ``m (d + 1)``. With ``f_k = c sum_j a_j sigma(z_jk)``, ``z_jk = w_j . x_k``
    and ``r_k = f_k - y_k``, the exact Hessian is
    ``H = 1/n sum_k (J_k J_k^T + r_k grad^2 f_k)``, where ``J_k = grad f_k`` has entries
    ``c sigma(z_jk)`` (for ``a_j``) and ``c a_j sigma'(z_jk) x_ki`` (for ``W_ji``), and
    ``grad^2 f_k`` has the blocks ``c sigma'(z_jk) x_ki`` (``a_j, W_ji``) and
    ``c a_j sigma''(z_jk) x_ki x_kl`` (``W_ji, W_jl``). For ReLU the second and third
    derivatives of ``sigma`` are taken as zero (the Hessian away from the kinks).
    The kernels are written by hand (innermost loops over the batch) and tested against
    :meth:`symbolic`. Cohen et al. (arXiv 2103.00065) observe progressive sharpening and
    the edge of stability on such networks.

    Examples
    --------
    >>> net = TwoLayerNetwork(2, "tanh", [[1.0], [-1.0]], [1.0, -1.0])
    >>> net.dim
    4
    """

    width: int
    activation: str
    inputs: np.ndarray
    targets: np.ndarray
    output_scale: float | None = None
    name: ClassVar[str] = "two-layer"

    def __post_init__(self) -> None:
        positive_int(self.width, "width")
        choice(self.activation, "activation", ACTIVATIONS)
        x = as_float_array(self.inputs, "inputs", ndim=2)
        y = as_float_array(self.targets, "targets", ndim=1)
        if x.shape[0] == 0 or x.shape[1] == 0 or x.shape[0] != y.shape[0]:
            raise ValueError(
                f"inputs must have shape (n, d) with n, d >= 1 and targets shape (n,); got "
                f"{x.shape} and {y.shape}"
            )
        c = 1.0 / math.sqrt(self.width) if self.output_scale is None else self.output_scale
        object.__setattr__(self, "output_scale", positive_float(c, "output_scale"))
        x.setflags(write=False)
        y.setflags(write=False)
        object.__setattr__(self, "inputs", x)
        object.__setattr__(self, "targets", y)

    def __hash__(self) -> int:
        return hash((self.width, self.activation, self.inputs.tobytes(), self.targets.tobytes(),
                     self.output_scale))

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, TwoLayerNetwork)
            and (self.width, self.activation, self.output_scale)
            == (other.width, other.activation, other.output_scale)
            and np.array_equal(self.inputs, other.inputs)
            and np.array_equal(self.targets, other.targets)
        )

    @classmethod
    def toy(cls, width: int = 16, activation: str = "tanh", *, n_points: int = 16,
            input_dim: int = 2, seed: int = 1, output_scale: float = 1.0) -> TwoLayerNetwork:
        """A small regression problem: ``x_k ~ N(0, I_d)``, ``y_k = sin(2 x_k1) + x_k2 / 2``
        (the second term when ``d >= 2``), rescaled so that ``max |y| = 2``.

        With the defaults and :meth:`init` at scale 0.25, GD shows progressive sharpening
        (the sharpness roughly quadruples over 400 time units at small steps) and then the
        edge of stability at ``eta = 0.5``.
        """
        rng = np.random.default_rng(positive_int(seed, "seed", minimum=0))
        x = rng.standard_normal((positive_int(n_points, "n_points"),
                                 positive_int(input_dim, "input_dim")))
        y = np.sin(2.0 * x[:, 0]) + (0.5 * x[:, 1] if input_dim >= 2 else 0.0)
        y = 2.0 * y / np.max(np.abs(y))
        return cls(width, activation, x, y, output_scale=output_scale)

    @property
    def n_points(self) -> int:
        """Number of data points ``n``."""
        return self.inputs.shape[0]

    @property
    def input_dim(self) -> int:
        """Input dimension ``d``."""
        return self.inputs.shape[1]

    @property
    def dim(self) -> int:
        return self.width * (self.input_dim + 1)

    def param_vector(self) -> np.ndarray:
        code = float(ACTIVATIONS.index(self.activation))
        head = [code, float(self.n_points), float(self.input_dim), self.output_scale]
        return np.concatenate([head, self.inputs.ravel(), self.targets])

    def example_params(self) -> np.ndarray:
        """Row ``k``: the network on the point ``(x_k, y_k)`` alone (loss ``r_k^2 / 2``)."""
        return np.stack([
            TwoLayerNetwork(self.width, self.activation, self.inputs[k:k + 1],
                            self.targets[k:k + 1], self.output_scale).param_vector()
            for k in range(self.n_points)
        ])

    def kernels(self) -> Kernels:
        return cached_kernels("two-layer", _two_layer_kernels)

    def split(self, theta) -> tuple[np.ndarray, np.ndarray]:
        """``(W, a)`` from ``theta``: shapes ``(m, d)`` and ``(m,)``."""
        th = self.check_theta(theta)
        md = self.width * self.input_dim
        return th[:md].reshape(self.width, self.input_dim), th[md:]

    def outputs(self, theta) -> np.ndarray:
        """The network outputs ``f(x_k)`` on the training inputs, shape ``(n,)``."""
        w, a = self.split(theta)
        z = self.inputs @ w.T
        act = np.tanh(z) if self.activation == "tanh" else np.maximum(z, 0.0)
        return self.output_scale * act @ a

    def init(self, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
        """``W_ji ~ N(0, scale^2 / d)`` and ``a_j ~ N(0, scale^2)``."""
        if not isinstance(rng, np.random.Generator):
            raise ValueError("rng must be a numpy.random.Generator")
        scale = positive_float(scale, "scale")
        w = rng.standard_normal((self.width, self.input_dim)) * scale / math.sqrt(self.input_dim)
        a = rng.standard_normal(self.width) * scale
        return np.concatenate([w.ravel(), a])

    def symbolic(self) -> SymbolicLoss:
        """The same loss in sympy for this instance (small sizes only: tests the kernels).

        The constants are the parameter vector's entries after the activation code, in the
        same order (``n``, ``d``, ``c``, the inputs, the targets).
        """
        m, d, n = self.width, self.input_dim, self.n_points
        w = sp.symbols(f"w0:{m * d}")
        a = sp.symbols(f"a0:{m}")
        nn, dd, c = sp.symbols("n d c")
        xs = sp.symbols(f"x0:{n * d}")
        ys = sp.symbols(f"y0:{n}")

        def sigma(z):
            if self.activation == "tanh":
                return sp.tanh(z)
            return sp.Piecewise((z, z > 0), (0, True))

        expr = 0
        for k in range(n):
            f = c * sum(
                a[j] * sigma(sum(w[j * d + i] * xs[k * d + i] for i in range(d)))
                for j in range(m)
            )
            expr += (f - ys[k]) ** 2 / (2 * n)
        return SymbolicLoss((*w, *a), expr, (nn, dd, c, *xs, *ys))
