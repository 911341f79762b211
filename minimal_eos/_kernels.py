"""The compiled simulation loop (private; see :func:`minimal_eos.simulate`).

One kernel per model structure, built by :func:`simulation_kernel` around the model's
batch kernels. The batch of runs is cut into chunks of ``chunk`` columns; chunks run in
parallel (``prange``), and inside a chunk the loop over steps is outermost while every
innermost loop runs over the chunk's runs, so that LLVM can vectorise it.

Generated models compile this loop in the same module file as their kernels
(:meth:`minimal_eos.symbolic.SymbolicLoss.compile`, from :func:`loop_source`), so that numba
caches it on disk; hand-written models compile it once per process.

The blocks this loop shares with the loop of SGD, RMSProp and Adam
(:mod:`minimal_eos._sgd`) are the compiled functions of :data:`LOOP_HELPERS`. numba's disk
cache keys a function by its own file, so it would not see a change in a compiled function
it calls from another file; hence the rule: a loop cached on disk calls only functions of
its own file. The helpers are therefore compiled here without the disk cache (for the loops
compiled in memory, this one around hand-written kernels and SGD's), and
:func:`loop_source` copies their source into every generated module, whose text, hence
cache key, changes with them.
"""

from __future__ import annotations

import inspect
import textwrap
from typing import TYPE_CHECKING

import numba
import numpy as np
from numba import prange

from ._trace import traced_rules

if TYPE_CHECKING:
    from .symbolic import Kernels

LOOP_OPTIONS = {"parallel": True, "nogil": True, "error_model": "numpy"}
#: Options of the helpers of :data:`LOOP_HELPERS` (never ``cache=True``: see the module
#: docstring).
HELPER_OPTIONS = {"nogil": True, "error_model": "numpy"}
_CACHE: dict[int, tuple[Kernels, numba.core.registry.CPUDispatcher]] = {}


def simulation_kernel(kernels: Kernels):
    """The simulation loop compiled around ``kernels`` (cached per kernels object).

    Kernels that come with their loop (``kernels.loop``, compiled and cached on disk with
    them) return it.
    """
    if kernels.loop is not None:
        return kernels.loop
    key = id(kernels)
    if key not in _CACHE or _CACHE[key][0] is not kernels:
        step_k = kernels.step if kernels.step is not None else make_generic_step(kernels.grad)
        loop = _make_loop(kernels.loss, kernels.sharp, step_k, PERIODS_KERNEL)
        _CACHE[key] = (kernels, numba.njit(**LOOP_OPTIONS)(loop))
    return _CACHE[key][1]


def loop_source() -> str:
    """Source of :func:`detect_periods`, of the helpers of :data:`LOOP_HELPERS` (without
    their decorator) and of the simulation loop, which calls the globals ``loss_k``,
    ``sharp_k``, ``step_k`` and ``periods_k`` and the helpers by their names; the module
    that holds it compiles the helpers under the same names."""
    helpers = [_undecorated(h.py_func) for h in LOOP_HELPERS]
    loop = textwrap.dedent(inspect.getsource(_make_loop(None, None, None, None)))
    return "\n\n".join([inspect.getsource(detect_periods), *helpers, loop])


def _undecorated(fn) -> str:
    """Source of the module-level function ``fn`` without its decorator lines."""
    lines = inspect.getsource(fn).splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("def "))
    return "".join(lines[start:])


def generic_step_source() -> str:
    """Source of the generic step (see :func:`make_generic_step`), traced from the maps."""
    ind = " " * 4
    lines = [
        "def step(x, v, e, death, t, beta, opt, bound, lo, hi, p, scratch):",
        f"{ind}d = x.shape[0]",
        f"{ind}tf = float(t + 1)",
        *(f"{ind}{name} = scratch[{i}]" for i, name in enumerate(("xn", "vn", "qa", "ga"))),
        f"{ind}ok = scratch[4, 0]",
    ]
    rules = traced_rules()
    for i, rule in enumerate(rules):
        loads = [f"{ind * 4}s = x[k, b]"] + ([f"{ind * 4}w = v[k, b]"] if rule.reads_v else [])
        lines.append(f"{ind}{'if' if i == 0 else 'elif'} opt == {rule.code}:")
        if rule.query_out == "s":
            lines.append(f"{ind * 2}grad_k(x, lo, hi, p, ga)")
        else:
            lines += [f"{ind * 2}for k in range(d):", f"{ind * 3}for b in range(lo, hi):",
                      *loads, *(ind * 4 + q for q in rule.query),
                      f"{ind * 4}qa[k, b] = {rule.query_out}",
                      f"{ind * 2}grad_k(qa, lo, hi, p, ga)"]
        lines += [f"{ind * 2}for k in range(d):", f"{ind * 3}for b in range(lo, hi):", *loads,
                  f"{ind * 4}g = ga[k, b]", f"{ind * 4}eb = e[b]",
                  *(ind * 4 + u for u in rule.update), f"{ind * 4}xn[k, b] = {rule.x_out}"]
        if rule.writes_v:
            lines.append(f"{ind * 4}vn[k, b] = {rule.v_out}")
    momentum = " or ".join(f"opt == {r.code}" for r in rules if r.writes_v) or "False"
    lines += [
        f"{ind}for b in range(lo, hi):",
        f"{ind * 2}ok[b] = 1.0 if death[b] > tf else 0.0",
        f"{ind}for k in range(d):",
        f"{ind * 2}for b in range(lo, hi):",
        f"{ind * 3}ok[b] = ok[b] if abs(xn[k, b]) <= bound else 0.0",
        f"{ind}for b in range(lo, hi):",
        f"{ind * 2}death[b] = death[b] if ok[b] > 0.0 else min(death[b], tf)",
        f"{ind}for k in range(d):",
        f"{ind * 2}for b in range(lo, hi):",
        f"{ind * 3}x[k, b] = xn[k, b] if ok[b] > 0.0 else x[k, b]",
        f"{ind}if {momentum}:",
        f"{ind * 2}for k in range(d):",
        f"{ind * 3}for b in range(lo, hi):",
        f"{ind * 4}v[k, b] = vn[k, b] if ok[b] > 0.0 else v[k, b]",
    ]
    return "\n".join(lines) + "\n"


def make_generic_step(grad_k):
    """One optimizer step in place, for any gradient kernel ``grad_k``.

    ``step(x, v, e, death, t, beta, opt, bound, lo, hi, p, scratch)`` moves the
    columns ``lo <= b < hi`` of ``x`` (positions) and ``v`` (velocities) one step of the
    optimizer ``opt`` (0 GD, 1 heavy ball, 2 Nesterov) with step sizes ``e``:

    - GD: ``x+ = x - e g(x)``;
    - heavy ball: ``v+ = beta v - e g(x)``, ``x+ = x + v+``;
    - Nesterov: ``v+ = beta v - e g(x + beta v)``, ``x+ = x + v+``.

    The update of each optimizer is traced from its own ``query`` and ``update``
    (:mod:`minimal_eos._trace`), one loop over the batch per pass so that LLVM vectorises
    it. ``death[b]`` is ``inf`` while run ``b`` is alive; a run whose new position is not
    finite or leaves ``|x_k| <= bound`` keeps its old state and gets ``death[b] = t + 1``
    (a float, so that every array in the loop has 64-bit float lanes and the loop
    vectorises). ``scratch`` has shape ``(5, d, B)``.
    """
    namespace = {"grad_k": grad_k}
    exec(compile(generic_step_source(), "<minimal_eos generic step>", "exec"), namespace)
    return numba.njit(nogil=True, error_model="numpy")(namespace["step"])


def detect_periods(hist, diverged_at, tol, max_period, period):
    """``period[b]`` = the smallest period of run ``b`` in the tail ``hist`` (0 if none).

    ``hist`` has shape ``(H, d, B)``, the last ``H`` iterates; run ``b`` has period
    ``p <= max_period`` (with ``2 p <= H``) when
    ``|x_{T-j, k} - x_{T-j-p, k}| <= tol (1 + max_k |x_{T, k}|)`` for all ``j < p`` and
    ``k``. Runs with ``diverged_at[b] >= 0`` are skipped (period 0). The search stops at the
    first coordinate that breaks a period: a converged run costs ``O(d)``, any run at most
    ``O(max_period^2 d)``.
    """
    nh, d, nb = hist.shape
    for b in range(nb):
        period[b] = 0
        if diverged_at[b] >= 0:
            continue
        top = 0.0
        for k in range(d):
            top = max(top, abs(hist[nh - 1, k, b]))
        scale = tol * (1.0 + top)
        for q in range(1, max_period + 1):
            if 2 * q > nh:
                break
            closed = True
            for j in range(nh - q, nh):
                for k in range(d):
                    # written so that a NaN gap breaks the period
                    if not abs(hist[j, k, b] - hist[j - q, k, b]) <= scale:
                        closed = False
                        break
                if not closed:
                    break
            if closed:
                period[b] = q
                break


PERIODS_KERNEL = numba.njit(nogil=True, error_model="numpy", cache=True)(detect_periods)


@numba.njit(**HELPER_OPTIONS)
def keep_row(buf, rec, r, lo):
    """``rec[r, lo + b] = buf[b]`` for the chunk's runs ``b``: a recorded loss or sharpness."""
    for b in range(buf.shape[0]):
        rec[r, lo + b] = buf[b]


@numba.njit(**HELPER_OPTIONS)
def keep_iterates(x, out, i, lo):
    """``out[i, k, lo + b] = x[k, b]``: the chunk's iterates ``x`` (shape ``(d, n)``) into a
    record of ``theta`` or into the chunk's tail of last iterates (``lo = 0``)."""
    d, n = x.shape
    for k in range(d):
        for b in range(n):
            out[i, k, lo + b] = x[k, b]


@numba.njit(**HELPER_OPTIONS)
def step_sizes(etas, lo, sharp, scode, spar, t, f_prev, e):
    """Step sizes ``e[b]`` of the chunk's runs at step ``t``; returns the schedule's factor.

    Schedule ``scode``: 0 constant, ``f = 1``; 1 a drop, ``f = spar[1]`` from step
    ``spar[0]`` on; 2 a warm-up, ``f = min(1, (t + 1) / spar[0])``; then
    ``e[b] = eta_b f``, written only at ``t = 0`` and when ``f`` differs from ``f_prev``.
    Schedule 3 (adaptive): ``e[b] = eta_b / max(S_b, spar[0])`` with the sharpness
    ``S_b = sharp[b]`` of the current iterate, and ``f_prev`` is returned unchanged.
    """
    n = e.shape[0]
    if scode == 3:
        floor = spar[0]
        for b in range(n):
            e[b] = etas[lo + b] / max(sharp[b], floor)
        return f_prev
    f = 1.0
    if scode == 1 and t >= spar[0]:
        f = spar[1]
    elif scode == 2:
        f = min(1.0, (t + 1) / spar[0])
    if t == 0 or f != f_prev:
        for b in range(n):
            e[b] = etas[lo + b] * f
    return f


@numba.njit(**HELPER_OPTIONS)
def finish_chunk(x, death, lo, x_out, div_out, dead):
    """The chunk's last iterates into ``x_out``, and the step at which each run diverged
    (``death[b]``, or -1 for ``inf``) into ``dead`` and ``div_out``."""
    d, n = x.shape
    for k in range(d):
        for b in range(n):
            x_out[k, lo + b] = x[k, b]
    for b in range(n):
        dead[b] = -1 if death[b] == np.inf else int(death[b])
        div_out[lo + b] = dead[b]


#: The blocks shared by the loops of this module and of :mod:`minimal_eos._sgd`.
LOOP_HELPERS = (keep_row, keep_iterates, step_sizes, finish_chunk)


def _make_loop(loss_k, sharp_k, step_k, periods_k):
    def loop(th0, etas, beta, opt, steps, scode, spar, p, every, save_loss, save_sharp,
             save_theta, bound, tol, max_period, chunk, x_out, div_out, rec_loss, rec_sharp,
             rec_theta, period_out):
        """Run ``steps`` steps of the optimizer ``opt`` (0 GD, 1 heavy ball, 2 Nesterov).

        Writes the last finite iterates to ``x_out``, the step of divergence (or -1) to
        ``div_out``, records every ``every`` steps (and at the last) to ``rec_*``, and the
        period of each run, detected by ``periods_k`` from its last ``2 max_period``
        iterates (kept per chunk only over those final steps), to ``period_out``.
        """
        d = th0.shape[0]
        nb = th0.shape[1]
        nhist = min(2 * max_period, steps + 1)
        nchunks = (nb + chunk - 1) // chunk
        for c in prange(nchunks):
            lo = c * chunk
            n = min(nb, lo + chunk) - lo
            tail = np.empty((nhist, d, n))
            x = np.empty((d, n))
            v = np.zeros((d, n))
            scratch = np.empty((5, d, n))
            e = np.empty(n)
            death = np.full(n, np.inf)
            buf = np.empty(n)
            for k in range(d):
                for b in range(n):
                    x[k, b] = th0[k, lo + b]
            r = 0
            f_prev = 1.0
            for t in range(steps + 1):
                if t % every == 0 or t == steps:
                    if save_loss:
                        loss_k(x, 0, n, p, buf)
                        keep_row(buf, rec_loss, r, lo)
                    if save_sharp:
                        sharp_k(x, 0, n, p, buf)
                        keep_row(buf, rec_sharp, r, lo)
                    if save_theta:
                        keep_iterates(x, rec_theta, r, lo)
                    r += 1
                h = t - (steps + 1 - nhist)
                if h >= 0:
                    keep_iterates(x, tail, h, 0)
                if t == steps:
                    break
                # step sizes: recomputed only when the schedule's factor changes
                if scode == 3:
                    sharp_k(x, 0, n, p, buf)
                f_prev = step_sizes(etas, lo, buf, scode, spar, t, f_prev, e)
                step_k(x, v, e, death, t, beta, opt, bound, 0, n, p, scratch)
            dead = np.empty(n, dtype=np.int64)
            finish_chunk(x, death, lo, x_out, div_out, dead)
            found = np.empty(n, dtype=np.int64)
            periods_k(tail, dead, tol, max_period, found)
            for b in range(n):
                period_out[lo + b] = found[b]

    return loop
