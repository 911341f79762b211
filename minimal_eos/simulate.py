"""One entry point: :func:`simulate` runs a batch of optimizer runs on a model."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from ._checks import batch_of_runs, positive_float, positive_int, record_count
from ._kernels import PERIODS_KERNEL, simulation_kernel
from ._sgd import sgd_kernel
from .models.base import Model
from .optimizers import KERNEL_OPTIMIZERS, SGD, Optimizer, check_optimizer
from .schedules import Schedule, check_schedule

SAVE_FIELDS = ("loss", "sharpness", "theta")
_MAX_RECORD_BYTES = 4 * 2**30


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
        saved). Records at and after a run's divergence are masked; no entry is NaN.
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
        (non-finite, or a coordinate above ``divergence_bound`` in magnitude); -1 otherwise.
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
        (or non-finite).
    chunk
        Runs per parallel chunk (tuning only; results do not depend on it).
    seed
        For SGD: the seed of the mini-batch draws. Run ``b`` draws its batch at step ``t``
        from a counter-based generator keyed by ``(seed, b, t)``, so results are the same
        bit for bit whatever the number of threads or ``chunk``.

    Returns
    -------
    SimulationResult

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
    rec_bytes = 8 * n_rec * nb * (("loss" in save) + ("sharpness" in save) + d * ("theta" in save))
    if rec_bytes > _MAX_RECORD_BYTES:
        raise ValueError(
            f"the records would take {rec_bytes / 2**30:.1f} GiB; record less often "
            f"(every=...) or save fewer fields (save=...)"
        )
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
