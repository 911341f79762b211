"""Losses written once in sympy, with their derivatives derived and compiled to numba.

A :class:`SymbolicLoss` holds a sympy expression in the coordinates ``theta`` and the
constants ``consts`` (data, targets, ...). From it come, symbolically, the gradient,
the Hessian and the directional third derivative ``D^3 L[u, u]``; :meth:`SymbolicLoss.compile`
turns each into a numba kernel that works on a batch of points stored column-wise.

Kernel conventions (shared with the hand-written kernels of large models)
--------------------------------------------------------------------------
Points are stored as an array ``th`` of shape ``(d, B)``: coordinate ``k`` of run ``b`` is
``th[k, b]``. Every kernel works on the columns ``lo <= b < hi`` so that a batch can be
split between threads, and reads the model's constants from a flat float64 vector ``p``.

- ``loss(th, lo, hi, p, out)``: ``out[b] = L(th[:, b])``
- ``grad(th, lo, hi, p, out)``: ``out[k, b] = dL/dtheta_k``
- ``hess(th, lo, hi, p, out)``: ``out[i, j, b] = d^2 L / dtheta_i dtheta_j``
- ``dir3(th, u, lo, hi, p, out)``: ``out[i, b] = sum_jk T_ijk u[j, b] u[k, b]``
- ``sharp(th, lo, hi, p, out)``: ``out[b] =`` largest Hessian eigenvalue
- ``step(x, v, e, death, t, beta, opt, bound, lo, hi, p, scratch)``: one optimizer
  step in place (see :func:`minimal_eos._kernels.make_generic_step`). Generated models
  get a fused version, with the gradient inlined in the update, that LLVM vectorises over
  the batch; hand-written models may leave it ``None`` to use the generic one.
- ``loop``: the simulation loop of :mod:`minimal_eos._kernels` compiled around these
  kernels in the same cached module (generated models), or ``None`` (compiled once per
  process around hand-written kernels).

The innermost loop of every generated kernel runs over the batch, so that LLVM can
vectorise it.
"""

from __future__ import annotations

import inspect
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

import numba
import numpy as np
import sympy as sp
from sympy.printing.pycode import PythonCodePrinter

from ._checks import sympy_expr
from ._diskcache import import_generated
from ._kernels import LOOP_HELPERS, LOOP_OPTIONS, loop_source
from ._trace import traced_rules

JIT_OPTIONS = {"nogil": True, "error_model": "numpy"}
_KERNEL_NAMES = ("loss", "grad", "hess", "dir3", "step")


class Kernels(NamedTuple):
    """The compiled kernels of a model (see the module docstring for their signatures)."""

    loss: numba.core.registry.CPUDispatcher
    grad: numba.core.registry.CPUDispatcher
    hess: numba.core.registry.CPUDispatcher
    dir3: numba.core.registry.CPUDispatcher
    sharp: numba.core.registry.CPUDispatcher
    source: str = ""
    step: numba.core.registry.CPUDispatcher | None = None
    loop: numba.core.registry.CPUDispatcher | None = None


class _Printer(PythonCodePrinter):
    """Python printer whose output numba compiles (``math.*`` functions, float literals)."""

    def _print_Rational(self, expr):
        return f"({float(expr.p)!r}/{float(expr.q)!r})"

    def _print_Integer(self, expr):
        return f"{float(expr)!r}"

    def _print_Pow(self, expr, rational=False):
        base, exp = expr.as_base_exp()
        if exp.is_Integer and 1 <= abs(int(exp)) <= 4:
            n = abs(int(exp))
            b = self.parenthesize(base, sp.printing.precedence.PRECEDENCE["Mul"] + 1)
            prod = "*".join([b] * n)
            return f"(1.0/({prod}))" if exp < 0 else f"({prod})"
        if exp == sp.Rational(1, 2):
            return f"math.sqrt({self._print(base)})"
        return super()._print_Pow(expr, rational=rational)


def _render(exprs: Sequence[sp.Expr], targets: Sequence[str], indent: str) -> list[str]:
    """Lines computing ``exprs`` into ``targets``, with common subexpressions shared."""
    printer = _Printer({"fully_qualified_modules": True})
    repl, reduced = sp.cse(list(exprs), symbols=sp.numbered_symbols("_c"), optimizations="basic")
    lines = [f"{indent}{sym} = {printer.doprint(val)}" for sym, val in repl]
    lines += [f"{indent}{t} = {printer.doprint(e)}" for t, e in zip(targets, reduced, strict=True)]
    return lines


def make_sharpness_kernel(hess, dim: int):
    """Return a ``sharp(th, lo, hi, p, out)`` kernel built on a Hessian kernel.

    The largest eigenvalue is closed-form for ``dim <= 2`` and computed by LAPACK
    (``numpy.linalg.eigvalsh``) otherwise.
    """
    return numba.njit(**JIT_OPTIONS)(_sharpness_function(hess, dim))


def _sharpness_function(hess, dim: int):
    """The pure-Python ``sharp`` of :func:`make_sharpness_kernel`; it calls ``hess``."""
    if dim == 1:

        def sharp(th, lo, hi, p, out):
            buf = np.empty((1, 1, th.shape[1]))
            hess(th, lo, hi, p, buf)
            for b in range(lo, hi):
                out[b] = buf[0, 0, b]

    elif dim == 2:

        def sharp(th, lo, hi, p, out):
            buf = np.empty((2, 2, th.shape[1]))
            hess(th, lo, hi, p, buf)
            for b in range(lo, hi):
                a = buf[0, 0, b]
                c = buf[1, 1, b]
                m = buf[0, 1, b]
                half = 0.5 * (a - c)
                out[b] = 0.5 * (a + c) + math.sqrt(half * half + m * m)

    else:

        def sharp(th, lo, hi, p, out):
            d = th.shape[0]
            buf = np.empty((d, d, th.shape[1]))
            hess(th, lo, hi, p, buf)
            mat = np.empty((d, d))
            for b in range(lo, hi):
                for i in range(d):
                    for j in range(d):
                        mat[i, j] = buf[i, j, b]
                out[b] = np.linalg.eigvalsh(mat)[d - 1]

    return sharp


@dataclass(frozen=True)
class SymbolicLoss:
    """A loss ``L(theta; consts)`` written once as a sympy expression.

    Parameters
    ----------
    coords
        The coordinates ``theta_1, ..., theta_d`` (sympy symbols), in order.
    expr
        The loss as a sympy expression in ``coords`` and ``consts``.
    consts
        Constants of the model (data, targets, widths, ...), in the order in which the
        model stores their values in its parameter vector.

    Examples
    --------
    >>> import sympy as sp
    >>> x, y = sp.symbols("x y")
    >>> loss = SymbolicLoss((x, y), (x * y - 1) ** 2 / 2)
    >>> loss.gradient
    [y*(x*y - 1), x*(x*y - 1)]
    """

    coords: tuple[sp.Symbol, ...]
    expr: sp.Expr
    consts: tuple[sp.Symbol, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "coords", tuple(self.coords))
        object.__setattr__(self, "consts", tuple(self.consts))
        object.__setattr__(self, "expr", sympy_expr(self.expr, "expr"))
        if not self.coords:
            raise ValueError("coords must name at least one coordinate")
        if len(set(self.coords) | set(self.consts)) != len(self.coords) + len(self.consts):
            raise ValueError("coords and consts must be distinct symbols")
        unknown = self.expr.free_symbols - set(self.coords) - set(self.consts)
        if unknown:
            names = ", ".join(sorted(map(str, unknown)))
            raise ValueError(f"expr has symbols that are neither coords nor consts: {names}")

    @property
    def dim(self) -> int:
        """Number of coordinates ``d``."""
        return len(self.coords)

    @cached_property
    def gradient(self) -> list[sp.Expr]:
        """``[dL/dtheta_k for k]``."""
        return [sp.diff(self.expr, c) for c in self.coords]

    @cached_property
    def hessian(self) -> sp.Matrix:
        """The Hessian matrix ``d^2 L / dtheta_i dtheta_j``."""
        g = self.gradient
        return sp.Matrix(self.dim, self.dim, lambda i, j: sp.diff(g[i], self.coords[j]))

    @cached_property
    def direction(self) -> tuple[sp.Symbol, ...]:
        """Symbols ``u_1, ..., u_d`` of the direction in :attr:`third_directional`."""
        return tuple(sp.Symbol(f"_u{k}") for k in range(self.dim))

    @cached_property
    def third_directional(self) -> list[sp.Expr]:
        """``D^3 L[u, u]_i = sum_jk d^3 L / dtheta_i dtheta_j dtheta_k u_j u_k``.

        With ``u`` the top Hessian eigenvector this is the gradient of the sharpness.
        """
        u = sp.Matrix(self.direction)
        quad = (u.T * self.hessian * u)[0, 0]
        return [sp.diff(quad, c) for c in self.coords]

    def lambdify(self, what: str = "loss"):
        """A numpy function ``f(theta, consts)`` of ``loss``, ``gradient`` or ``hessian``.

        Slow but independent of the code generator: tests use it as a second route.
        """
        exprs = {"loss": self.expr, "gradient": self.gradient, "hessian": self.hessian}
        fn = sp.lambdify((self.coords, self.consts), exprs[what], modules="numpy")
        return lambda theta, consts=(): np.asarray(fn(tuple(theta), tuple(consts)), dtype=float)

    def source(self) -> str:
        """Python source of the batch kernels generated from the expression."""
        d = self.dim
        unpack_c = [f"    c{k} = p[{k}]" for k in range(len(self.consts))]
        subs = {s: sp.Symbol(f"t{k}") for k, s in enumerate(self.coords)}
        subs.update({s: sp.Symbol(f"c{k}") for k, s in enumerate(self.consts)})
        subs.update({s: sp.Symbol(f"u{k}") for k, s in enumerate(self.direction)})
        load_t = [f"        t{k} = th[{k}, b]" for k in range(d)]
        load_u = [f"        u{k} = u[{k}, b]" for k in range(d)]

        def kernel(header: str, exprs, targets, loads) -> str:
            exprs = [sympy_expr(e, "expression").xreplace(subs) for e in exprs]
            body = _render(exprs, targets, " " * 8)
            lines = [header, *unpack_c, "    for b in range(lo, hi):", *loads, *body]
            if len(lines) == 2 + len(unpack_c):
                lines.append("        pass")
            return "\n".join(lines)

        hess = self.hessian
        parts = [
            kernel("def loss(th, lo, hi, p, out):", [self.expr], ["out[b]"], load_t),
            kernel(
                "def grad(th, lo, hi, p, out):",
                self.gradient,
                [f"out[{k}, b]" for k in range(d)],
                load_t,
            ),
            kernel(
                "def hess(th, lo, hi, p, out):",
                [hess[i, j] for i in range(d) for j in range(d)],
                [f"out[{i}, {j}, b]" for i in range(d) for j in range(d)],
                load_t,
            ),
            kernel(
                "def dir3(th, u, lo, hi, p, out):",
                self.third_directional,
                [f"out[{k}, b]" for k in range(d)],
                load_t + load_u,
            ),
        ]
        parts.append(self._step_source(subs, unpack_c))
        return "\n\n\n".join(parts) + "\n"

    def _step_source(self, subs, unpack_c) -> str:
        """A fused optimizer step: gradient expressions inlined in the update.

        Each optimizer's query and update are traced from its update map
        (:func:`minimal_eos._trace.traced_rules`), one loop over the batch per optimizer.
        """
        d = self.dim
        grads = [sympy_expr(e, "gradient").xreplace(subs) for e in self.gradient]
        body = _render(grads, [f"g{k}" for k in range(d)], " " * 12)
        ind = " " * 12
        lines = [
            "def step(x, v, e, death, t, beta, opt, bound, lo, hi, p, scratch):",
            *unpack_c,
            "    tf = float(t + 1)",
        ]
        per_coord = [traced_rules(k) for k in range(d)]
        for i, rules in enumerate(zip(*per_coord, strict=True)):
            lines += [f"    {'if' if i == 0 else 'elif'} opt == {rules[0].code}:",
                      "        for b in range(lo, hi):"]
            lines += [f"{ind}s{k} = x[{k}, b]" for k in range(d)]
            lines += [f"{ind}w{k} = v[{k}, b]" for k, r in enumerate(rules) if r.reads_v]
            for k, r in enumerate(rules):
                lines += [ind + q for q in r.query] + [f"{ind}t{k} = {r.query_out}"]
            lines += [*body, f"{ind}eb = e[b]"]
            for r in rules:
                lines += [ind + u for u in r.update]
            lines += [f"{ind}a = death[b]", f"{ind}ok = 1.0 if a > tf else 0.0"]
            lines += [f"{ind}ok = ok if abs({r.x_out}) <= bound else 0.0" for r in rules]
            lines.append(f"{ind}death[b] = a if ok > 0.0 else min(a, tf)")
            for k, r in enumerate(rules):
                lines.append(f"{ind}x[{k}, b] = {r.x_out} if ok > 0.0 else s{k}")
                if r.writes_v:
                    lines.append(f"{ind}v[{k}, b] = {r.v_out} if ok > 0.0 else w{k}")
        return "\n".join(lines)

    def module_source(self, cache: bool = True) -> str:
        """Python source of the module that :meth:`compile` imports.

        It holds the kernels of :meth:`source`, the sharpness kernel and the simulation
        loop of :mod:`minimal_eos._kernels`, each compiled by numba (with numba's disk cache
        when ``cache``), so that the module's text alone determines its machine code.
        """
        return self._module_text(self.source(), cache)

    def _module_text(self, src: str, cache: bool) -> str:
        header = (
            f"# Batch kernels generated by minimal-eos for the loss {self.expr!r}.\n"
            "import math\n\nimport numba\nimport numpy as np\nfrom numba import prange\n"
        )
        jit = {**JIT_OPTIONS, "cache": cache}
        loop_jit = {**LOOP_OPTIONS, "cache": cache}
        footer = [f"_JIT = {jit!r}"]
        footer += [f"{n} = numba.njit(**_JIT)({n})" for n in (*_KERNEL_NAMES, "sharp")]
        footer += ["loss_k, sharp_k, step_k = loss, sharp, step",
                   "periods_k = numba.njit(**_JIT)(detect_periods)",
                   *(f"{h.__name__} = numba.njit(**_JIT)({h.__name__})" for h in LOOP_HELPERS),
                   f"loop = numba.njit(**{loop_jit!r})(loop)"]
        sharp = textwrap.dedent(inspect.getsource(_sharpness_function(None, self.dim)))
        parts = [header, src, sharp, loop_source(), "\n".join(footer) + "\n"]
        return "\n\n".join(p.rstrip("\n") + "\n" for p in parts)

    def compile(self) -> Kernels:
        """Generate the batch kernels (see :meth:`source`) and compile them with numba.

        The generated module, with the sharpness kernel and the simulation loop, is
        imported from the disk cache of :mod:`minimal_eos._diskcache`, so that numba
        compiles each loss once per machine rather than once per process.
        """
        src = self.source()
        module = import_generated(self._module_text(src, True),
                                  in_memory_text=self._module_text(src, False))
        loss, grad, hess, dir3, step = (getattr(module, n) for n in _KERNEL_NAMES)
        return Kernels(loss, grad, hess, dir3, module.sharp, src, step, module.loop)
