"""One entry point: :func:`simulate` runs a batch of optimizer runs on a model."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

import numba
import numpy as np

from ._checks import batch_of_runs, positive_float, positive_int, record_count
from ._kernels import PERIODS_KERNEL, simulation_kernel
from ._sgd import sgd_kernel
from .models.base import Model
from .optimizers import KERNEL_OPTIMIZERS, SGD, Optimizer, check_optimizer
from .schedules import Schedule, check_schedule

SAVE_FIELDS = ("loss", "sharpness", "theta")
#: Largest estimated memory of one call (bytes); half the machine's memory when smaller.
MAX_BYTES = 4 * 2**30


class Status(StrEnum):
    """Outcome of one run."""

    CONVERGED = "converged"
    PERIODIC = "periodic"
    DIVERGED = "diverged"
    RUNNING = "running"


@dataclass(frozen=True)
class SimulationResult:
    """What :func:`simulate` returns. Arrays are indexed by run first.

    Attributes
    ----------
    eta
        Base step size of each run, shape ``(B,)``.
    theta0
        Initial points, shape ``(B, d)``.
    steps
        Number of steps taken (a diverged run stops at its step of divergence).
    t
        Steps at which records were taken, shape ``(R,)``.
    loss, sharpness
        Recorded loss and sharpness, masked arrays of shape ``(B, R)`` (``None`` when not
        saved). Records at and after a run's divergence are masked; no entry is NaN or
        infinite.
    theta
        Recorded iterates, masked array of shape ``(B, R, d)``, or ``None``.
    final_theta
        The last finite iterate of each run, shape ``(B, d)``.
    status
        :class:`Status` of each run, shape ``(B,)`` (object array).
    period
        1 for converged runs, the detected period for periodic ones, 0 otherwise.
    diverged_at
        For diverged runs the first step ``k`` whose iterate ``x_k`` left the bound
        (non-finite, or a coordinate above ``divergence_bound`` in magnitude; 0 for a start
        already beyond it), or the first recorded step whose loss or sharpness is not
        finite at a finite iterate (an overflow), whichever comes first; -1 otherwise.
    message
        A one-paragraph summary of the batch.
    """

    eta: np.ndarray
    theta0: np.ndarray
    steps: int
    t: np.ndarray
    loss: np.ma.MaskedArray | None
    sharpness: np.ma.MaskedArray | None
    theta: np.ma.MaskedArray | None
    final_theta: np.ndarray
    status: np.ndarray
    period: np.ndarray
    diverged_at: np.ndarray
    message: str = field(default="")

    def __len__(self) -> int:
        return len(self.eta)

    def describe(self, i: int) -> str:
        """A sentence on run ``i``."""
        s = self.status[i]
        head = f"run {i} (eta={self.eta[i]:.6g})"
        if s is Status.DIVERGED:
            return f"{head}: diverged at step {self.diverged_at[i]}"
        if s is Status.PERIODIC:
            return f"{head}: periodic with period {self.period[i]}"
        if s is Status.CONVERGED:
            return f"{head}: converged"
        return f"{head}: still moving after {self.steps} steps"


def simulate(
    model: Model,
    optimizer: Optimizer | str,
    theta0,
    steps: int,
    *,
    eta,
    schedule: Schedule | str = "constant",
    save: tuple[str, ...] = SAVE_FIELDS,
    every: int = 1,
    tol: float = 1e-10,
    max_period: int = 64,
    divergence_bound: float = 1e8,
    chunk: int = 256,
    seed: int = 0,
) -> SimulationResult:
    """Run ``optimizer`` on ``model`` for a batch of (step size, initialisation) pairs.

    The whole loop over steps and runs is one compiled numba kernel, parallel over chunks
    of runs; a run that diverges stops there (its state is frozen at its last finite
    iterate) without warnings and without producing NaN.

    Parameters
    ----------
    model
        A :class:`~minimal_eos.models.Model`.
    optimizer
        :class:`~minimal_eos.optimizers.GD`, ``HeavyBall(beta)``, ``Nesterov(beta)``,
        ``SGD(batch_size, replacement)`` (on a model with per-example losses),
        ``RMSProp(beta2, eps)``, ``Adam(beta1, beta2, eps, bias_correction)``, or one of the
        names ``"gd"``, ``"heavy_ball"``, ``"nesterov"``, ``"rmsprop"``, ``"adam"``.
    theta0
        Initial point(s), shape ``(d,)`` or ``(B, d)``.
    steps
        Number of steps, ``>= 0``.
    eta
        Base step size(s), a number or shape ``(B,)``; broadcast against ``theta0``.
        Each must be finite and > 0. For the adaptive schedule it is the constant ``c``.
    schedule
        A schedule from :mod:`minimal_eos.schedules` or its name.
    save
        Which records to keep: any of ``"loss"``, ``"sharpness"``, ``"theta"``.
    every
        Record every ``every`` steps (and at the last step).
    tol
        Tolerance of the status detection: run ``b`` has period ``p`` when its last
        ``2p`` iterates satisfy ``max|x_{T-j} - x_{T-j-p}| <= tol (1 + max|x_T|)``.
        Period 1 is reported as converged.
    max_period
        Largest period looked for.
    divergence_bound
        A run diverges at the first iterate with a coordinate above this in magnitude
        (or non-finite), at step 0 when it starts there; it also diverges at the first
        recorded step whose loss or sharpness overflows (is not finite).
    chunk
        Runs per parallel chunk (tuning only; results do not depend on it).
    seed
        For SGD: the seed of the mini-batch draws. Run ``b`` draws its batch at step ``t``
        from a counter-based generator keyed by ``(seed, b, t)``, so results are the same
        bit for bit whatever the number of threads or ``chunk``.

    Returns
    -------
    SimulationResult

    Raises
    ------
    ValueError
        Naming the argument: a bad value (a string or a bool where numbers are expected,
        an empty batch, a non-finite or non-positive step size...), or a batch whose
        estimated memory (:func:`memory_estimate`) exceeds :data:`MAX_BYTES` or half
        the machine's memory, with the estimate.

    Notes
    -----
    Each step evaluates ``g = grad L(query(state))`` and applies the optimizer's update
    map with ``eta_t`` from the schedule (see :mod:`minimal_eos.optimizers`). For SGD
    ``g`` is the mini-batch gradient ``(1/|B|) sum_{i in B} grad l_i``; the recorded loss
    and sharpness are the full ones.

    Examples
    --------
    >>> from minimal_eos import GD, Quadratic, simulate
    >>> res = simulate(Quadratic([1.0]), GD(), [1.0], 200, eta=[0.5, 1.5, 2.1])
    >>> [str(s) for s in res.status]
    ['converged', 'converged', 'diverged']
    """
    if not isinstance(model, Model):
        raise ValueError(f"model must be a minimal_eos Model; got {type(model).__name__}")
    optimizer = check_optimizer(optimizer)
    traced = optimizer.name in KERNEL_OPTIMIZERS
    if isinstance(optimizer, SGD):
        examples = np.ascontiguousarray(model.example_params(), dtype=np.float64)
        optimizer.check_data(len(examples))
        batch, replacement, hyper = optimizer.batch_size, optimizer.replacement, np.zeros(4)
    elif not traced:
        examples = np.ascontiguousarray(model.param_vector(), dtype=np.float64)[None, :]
        batch, replacement = 1, False
        hyper = np.array([getattr(optimizer, "beta1", 0.0), optimizer.beta2, optimizer.eps,
                          float(getattr(optimizer, "bias_correction", False))])
    seed = positive_int(seed, "seed", minimum=0)
    schedule = check_schedule(schedule)
    steps = positive_int(steps, "steps", minimum=0)
    every = positive_int(every, "every")
    max_period = positive_int(max_period, "max_period")
    chunk = positive_int(chunk, "chunk")
    tol = positive_float(tol, "tol")
    bound = positive_float(divergence_bound, "divergence_bound")
    if isinstance(save, str):
        save = (save,)
    unknown = set(save) - set(SAVE_FIELDS)
    if unknown:
        raise ValueError(f"save accepts {', '.join(SAVE_FIELDS)}; got {sorted(unknown)}")

    d = model.dim
    th, etas = batch_of_runs(theta0, eta, d)
    nb = len(etas)

    n_rec = record_count(steps, every)
    need = memory_estimate(nb, d, steps, every=every, save=save, max_period=max_period,
                           chunk=chunk)
    limit = memory_limit()
    if need["total"] > limit:
        parts = ", ".join(f"{k} {v / 2**30:.2f} GiB" for k, v in need.items() if k != "total")
        raise ValueError(
            f"theta0, eta: a batch of {nb} run(s) of {steps} steps would need an estimated "
            f"{need['total'] / 2**30:.1f} GiB ({parts}), more than the "
            f"{limit / 2**30:.1f} GiB allowed; run fewer at a time, record less often "
            f"(every=...) or save fewer fields (save=...)"
        )
    outside = np.any(np.abs(th) > bound, axis=1)
    out_x = np.empty((d, nb))
    out_div = np.empty(nb, dtype=np.int64)
    period = np.empty(nb, dtype=np.int64)
    rec_loss = np.zeros((n_rec if "loss" in save else 0, nb))
    rec_sharp = np.zeros((n_rec if "sharpness" in save else 0, nb))
    rec_theta = np.zeros((n_rec if "theta" in save else 0, d, nb))

    if not traced:
        sgd_kernel(model.kernels())(
            np.ascontiguousarray(th.T), etas, int(optimizer.code), hyper, examples, batch,
            replacement, seed, steps, int(schedule.code), schedule.encode(),
            model.param_vector(), every, "loss" in save, "sharpness" in save, "theta" in save,
            bound, tol, max_period, chunk, out_x, out_div, rec_loss, rec_sharp, rec_theta,
            period,
        )
    else:
        loop = simulation_kernel(model.kernels())
        loop(
            np.ascontiguousarray(th.T), etas, float(optimizer.beta), int(optimizer.code), steps,
            int(schedule.code), schedule.encode(), model.param_vector(), every,
            "loss" in save, "sharpness" in save, "theta" in save, bound, tol, max_period, chunk,
            out_x, out_div, rec_loss, rec_sharp, rec_theta, period,
        )

    t = np.minimum(np.arange(n_rec) * every, steps)
    # A start beyond the bound diverged at step 0 (the kernel sees it at its first step).
    out_div[outside] = 0
    # A loss or sharpness that overflows at a finite iterate: divergence at that record.
    for rec in (rec_loss, rec_sharp):
        if rec.shape[0]:
            bad = ~np.isfinite(rec)
            first = np.where(bad.any(axis=0), t[np.argmax(bad, axis=0)], -1)
            hit = (first >= 0) & ((out_div < 0) | (first < out_div))
            out_div[hit] = first[hit]
            rec[bad] = 0.0
    period[out_div >= 0] = 0
    invalid = None
    if save:
        invalid = (out_div[:, None] >= 0) & (t[None, :] >= out_div[:, None])

    def wrap(rec):
        return None if rec.shape[0] == 0 else np.ma.MaskedArray(rec.T.copy(), mask=invalid)

    theta_rec = None
    if "theta" in save:
        theta_rec = np.ma.MaskedArray(
            np.transpose(rec_theta, (2, 0, 1)).copy(),
            mask=np.broadcast_to(invalid[:, :, None], (nb, n_rec, d)),
        )
    status = _statuses(period, out_div)
    return SimulationResult(
        eta=etas.copy(),
        theta0=np.array(th),
        steps=steps,
        t=t,
        loss=wrap(rec_loss),
        sharpness=wrap(rec_sharp),
        theta=theta_rec,
        final_theta=out_x.T.copy(),
        status=status,
        period=period,
        diverged_at=out_div,
        message=_summary(status, period, out_div, steps),
    )


def memory_estimate(runs: int, dim: int, steps: int, *, every: int = 1,
                    save: tuple[str, ...] = SAVE_FIELDS, max_period: int = 64,
                    chunk: int = 256) -> dict:
    """Estimated peak memory (bytes) of :func:`simulate` on ``runs`` runs in ``dim``
    coordinates, by part.

    Returns
    -------
    dict
        ``batch``: the initial points and step sizes (given, broadcast, transposed for the
        kernel, and copied into the result), the final iterates, step of divergence,
        period and status of each run, ``8 B (6 d + 6)`` bytes; ``records``: the saved
        records, written by the kernel and copied into the result's masked arrays, with
        their masks and overflow checks, ``R B (17 f + 17 d [theta] + 1)`` with ``R``
        records and ``f`` saved scalar fields; ``history``: the working arrays of the
        chunks that run at once (``T`` threads), ``8 T c ((h + 7) d + 5)`` with
        ``h = min(2 max_period, steps + 1)`` tail iterates kept for the period detection
        and ``c`` runs per chunk; ``total``: their sum.

    Notes
    -----
    ``python -m benchmarks.simulate_memory`` measured the peak memory of a call (GD on a
    depth-2 scalar network) at 0.98 to 1.18 times this estimate: 1,485 MiB against 1,520
    for 10^6 runs of 200 steps recording every field every 10 steps, 324 MiB against 275
    for 2 x 10^6 runs recording nothing.
    """
    n_rec = record_count(steps, every)
    fields = ("loss" in save) + ("sharpness" in save)
    batch = 8.0 * runs * (6 * dim + 6)
    records = float(n_rec) * runs * (17 * fields + 17 * dim * ("theta" in save)
                                     + (1 if save else 0))
    chunks = -(-runs // chunk)
    nhist = min(2 * max_period, steps + 1)
    threads = min(chunks, numba.get_num_threads())
    history = 8.0 * threads * min(chunk, runs) * ((nhist + 7) * dim + 5)
    return {"batch": batch, "records": records, "history": history,
            "total": batch + records + history}


def memory_limit() -> float:
    """:data:`MAX_BYTES`, or half the machine's physical memory when that is smaller."""
    try:
        machine = float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return float(MAX_BYTES)
    return min(float(MAX_BYTES), machine / 2)


def classify(hist: np.ndarray, diverged_at: np.ndarray, tol: float, max_period: int):
    """Status and period of each run from its last iterates ``hist`` (shape ``(H, d, B)``).

    Run ``b`` has period ``p`` (the smallest such ``p <= max_period`` with ``2 p <= H``)
    when ``max_{j < p, k} |x_{T-j, k} - x_{T-j-p, k}| <= tol (1 + max_k |x_{T, k}|)``, with
    ``x_T = hist[-1, :, b]``; period 1 is converged. Runs with ``diverged_at >= 0`` are
    diverged (see :func:`minimal_eos._kernels.detect_periods`).
    """
    period = np.empty(hist.shape[2], dtype=np.int64)
    PERIODS_KERNEL(hist, diverged_at, float(tol), int(max_period), period)
    return _statuses(period, diverged_at), period


def _statuses(period: np.ndarray, diverged_at: np.ndarray) -> np.ndarray:
    status = np.full(len(period), Status.RUNNING, dtype=object)
    status[diverged_at >= 0] = Status.DIVERGED
    status[period == 1] = Status.CONVERGED
    status[period > 1] = Status.PERIODIC
    return status


def _summary(status, period, diverged_at, steps: int) -> str:
    counts = Counter(status)
    parts = [f"{len(status)} run(s) of {steps} steps:"]
    if counts[Status.CONVERGED]:
        parts.append(f"{counts[Status.CONVERGED]} converged;")
    if counts[Status.PERIODIC]:
        per = Counter(period[status == Status.PERIODIC])
        detail = ", ".join(f"period {p}: {n}" for p, n in sorted(per.items()))
        parts.append(f"{counts[Status.PERIODIC]} periodic ({detail});")
    if counts[Status.DIVERGED]:
        first = int(diverged_at[diverged_at >= 0].min())
        parts.append(f"{counts[Status.DIVERGED]} diverged (the first at step {first});")
    if counts[Status.RUNNING]:
        parts.append(f"{counts[Status.RUNNING]} still moving;")
    return " ".join(parts).rstrip(";") + "."
