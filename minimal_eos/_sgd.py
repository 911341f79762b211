"""The compiled loop of SGD, RMSProp and Adam (private; see :func:`minimal_eos.simulate`).

The loop has the layout of :mod:`minimal_eos._kernels`: chunks of runs in parallel, steps
outermost, every innermost loop over the chunk's runs. At each step run ``b`` (its index in
the whole batch) draws its mini-batch from :func:`batch_counts`, keyed by
``(seed, b, step)`` only, so the result is the same bit for bit whatever the number of
threads or the chunk size. The mini-batch gradient is accumulated example by example:
``g_B = (1/|B|) sum_i c_ib grad l_i`` with ``c_ib`` the number of times run ``b`` drew
example ``i``, each ``grad l_i`` from the model's own gradient kernel given that
example's parameters (:meth:`minimal_eos.models.Model.example_params`), computed for the
whole chunk at once and skipped when no run of the chunk drew it.

The blocks it shares with the loop of GD (records, tail, step sizes, final write-out) are
the compiled helpers of :data:`minimal_eos._kernels.LOOP_HELPERS`; this loop is compiled in
memory once per process, so a change in them is always seen (see the rule in
:mod:`minimal_eos._kernels`).

RMSProp and Adam take the full gradient and update their moment estimates with the same
floating-point operations, in the same order, as their update maps in
:mod:`minimal_eos.optimizers` on numpy arrays, so that the loop equals
:func:`~minimal_eos.optimizers.reference_run` bit for bit.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ._kernels import (
    LOOP_OPTIONS,
    PERIODS_KERNEL,
    finish_chunk,
    keep_iterates,
    keep_row,
    step_sizes,
)
from ._random import below

_CACHE: dict[int, tuple[object, numba.core.registry.CPUDispatcher]] = {}


# Not cached on disk: it calls ``below`` of another file (see the rule in _kernels).
@numba.njit(nogil=True, error_model="numpy")
def batch_counts(n, batch, replacement, seed, run, step, perm, counts):
    """Add to ``counts[i]`` how many times example ``i`` is in run ``run``'s batch at ``step``.

    Without replacement: the first ``batch`` entries of a Fisher-Yates shuffle of
    ``0..n-1`` (``perm`` is scratch of length ``n``); with replacement: ``batch``
    independent uniform draws. Draw ``j`` uses the counter ``(seed, run, step, j)``.
    """
    if replacement:
        for j in range(batch):
            counts[below(n, seed, run, step, j)] += 1.0
        return
    for i in range(n):
        perm[i] = i
    for j in range(batch):
        k = j + below(n - j, seed, run, step, j)
        tmp = perm[j]
        perm[j] = perm[k]
        perm[k] = tmp
        counts[perm[j]] += 1.0


def sgd_kernel(kernels):
    """The loop of SGD, RMSProp and Adam compiled around a model's ``loss``, ``sharp`` and
    ``grad`` kernels."""
    key = id(kernels)
    if key not in _CACHE or _CACHE[key][0] is not kernels:
        loop = _make_sgd_loop(kernels.loss, kernels.sharp, kernels.grad, PERIODS_KERNEL,
                              batch_counts)
        _CACHE[key] = (kernels, numba.njit(**LOOP_OPTIONS)(loop))
    return _CACHE[key][1]


def _make_sgd_loop(loss_k, sharp_k, grad_k, periods_k, counts_k):
    def loop(th0, etas, opt, hyper, examples, batch, replacement, seed, steps, scode, spar, p,
             every, save_loss, save_sharp, save_theta, bound, tol, max_period, chunk, x_out,
             div_out, rec_loss, rec_sharp, rec_theta, period_out):
        """Run ``steps`` steps of ``opt`` (3 SGD, 4 RMSProp, 5 Adam); outputs as in the loop
        of the traced maps.

        ``hyper`` is ``(beta1, beta2, eps, bias_correction)`` (RMSProp reads ``beta2`` and
        ``eps``). For SGD ``examples`` holds one row of kernel parameters per example; ``p``
        is the full model's (the adaptive methods' gradient, the recorded loss and
        sharpness, and the adaptive schedule).
        """
        b1 = hyper[0]
        b2 = hyper[1]
        eps = hyper[2]
        correct = hyper[3] != 0.0
        c1 = 1.0 - b1
        c2 = 1.0 - b2
        d = th0.shape[0]
        nb = th0.shape[1]
        n_ex = examples.shape[0]
        nhist = min(2 * max_period, steps + 1)
        nchunks = (nb + chunk - 1) // chunk
        inv_batch = 1.0 / batch
        for c in prange(nchunks):
            lo = c * chunk
            n = min(nb, lo + chunk) - lo
            tail = np.empty((nhist, d, n))
            x = np.empty((d, n))
            xn = np.empty((d, n))
            g = np.empty((d, n))
            ga = np.empty((d, n))
            m = np.zeros((d, n))
            v = np.zeros((d, n))
            mn = np.empty((d, n))
            vn = np.empty((d, n))
            counts = np.zeros((n, n_ex))
            perm = np.empty(n_ex, dtype=np.int64)
            used = np.empty(n_ex)
            e = np.empty(n)
            ok = np.empty(n)
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
                if scode == 3:
                    sharp_k(x, 0, n, p, buf)
                f_prev = step_sizes(etas, lo, buf, scode, spar, t, f_prev, e)
                tf = float(t + 1)
                if opt == 3:
                    # the mini-batches of every run of the chunk
                    for i in range(n_ex):
                        used[i] = 0.0
                    for b in range(n):
                        for i in range(n_ex):
                            counts[b, i] = 0.0
                        counts_k(n_ex, batch, replacement, seed, lo + b, t, perm, counts[b])
                        for i in range(n_ex):
                            used[i] += counts[b, i]
                    for k in range(d):
                        for b in range(n):
                            g[k, b] = 0.0
                    for i in range(n_ex):
                        if used[i] == 0.0:
                            continue
                        grad_k(x, 0, n, examples[i], ga)
                        for k in range(d):
                            for b in range(n):
                                g[k, b] = g[k, b] + counts[b, i] * ga[k, b]
                    for k in range(d):
                        for b in range(n):
                            xn[k, b] = x[k, b] - e[b] * (g[k, b] * inv_batch)
                elif opt == 4:
                    grad_k(x, 0, n, p, g)
                    for k in range(d):
                        for b in range(n):
                            gk = g[k, b]
                            vn[k, b] = b2 * v[k, b] + c2 * gk * gk
                            xn[k, b] = x[k, b] - e[b] * gk / (np.sqrt(vn[k, b]) + eps)
                else:
                    grad_k(x, 0, n, p, g)
                    bc1 = 1.0 - b1**tf
                    bc2 = 1.0 - b2**tf
                    for k in range(d):
                        for b in range(n):
                            gk = g[k, b]
                            mn[k, b] = b1 * m[k, b] + c1 * gk
                            vn[k, b] = b2 * v[k, b] + c2 * gk * gk
                            mh = mn[k, b]
                            vh = vn[k, b]
                            if correct:
                                mh = mh / bc1
                                vh = vh / bc2
                            xn[k, b] = x[k, b] - e[b] * mh / (np.sqrt(vh) + eps)
                for b in range(n):
                    ok[b] = 1.0 if death[b] > tf else 0.0
                for k in range(d):
                    for b in range(n):
                        ok[b] = ok[b] if abs(xn[k, b]) <= bound else 0.0
                for b in range(n):
                    death[b] = death[b] if ok[b] > 0.0 else min(death[b], tf)
                for k in range(d):
                    for b in range(n):
                        x[k, b] = xn[k, b] if ok[b] > 0.0 else x[k, b]
                if opt >= 4:
                    for k in range(d):
                        for b in range(n):
                            v[k, b] = vn[k, b] if ok[b] > 0.0 else v[k, b]
                if opt == 5:
                    for k in range(d):
                        for b in range(n):
                            m[k, b] = mn[k, b] if ok[b] > 0.0 else m[k, b]
            dead = np.empty(n, dtype=np.int64)
            finish_chunk(x, death, lo, x_out, div_out, dead)
            found = np.empty(n, dtype=np.int64)
            periods_k(tail, dead, tol, max_period, found)
            for b in range(n):
                period_out[lo + b] = found[b]

    return loop


def minibatch_gradient(model, theta, optimizer, seed: int, run: int, step: int) -> np.ndarray:
    """The mini-batch gradient of run ``run`` at ``step``, in plain numpy, summed in the
    kernel's order: ``(sum_i c_i grad l_i) * (1/|B|)`` over ``i = 0, ..., n - 1``."""
    rows = model.example_params()
    counts = np.zeros(len(rows))
    batch_counts(len(rows), optimizer.batch_size, optimizer.replacement, seed, run, step,
                 np.empty(len(rows), dtype=np.int64), counts)
    grads = model.example_grads(theta)
    acc = np.zeros(model.dim)
    for i in range(len(rows)):
        if counts[i] != 0.0:
            acc = acc + counts[i] * grads[i]
    return acc * (1.0 / optimizer.batch_size)
