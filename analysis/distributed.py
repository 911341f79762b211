"""Orbit and phase diagrams split into step-size chunks across a dask.distributed cluster.

:func:`distributed_orbit_diagram` and :func:`distributed_phase_diagram` cut the grid of
step sizes into contiguous chunks, compute each chunk on a worker with the same compiled
loop as :func:`~analysis.orbits.orbit_diagram` and :func:`~analysis.orbits.phase_diagram`,
and put the pieces back in order. The result equals the single-machine one bit for bit:
every run (one step size, one initialisation) is computed by the same arithmetic whatever
chunk it lands in, and the random tangent vectors of the phase diagram are drawn once, on
the client, for the whole grid.

dask.distributed is imported only inside the functions; a worker compiles the loop once
per model structure (a few seconds) and reuses it for every later chunk.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np

from minimal_eos._checks import positive_float, positive_int
from minimal_eos.models.base import Model

from .checks import check_etas, check_model, check_thetas
from .orbits import OrbitDiagram, PhaseDiagram, orbit_diagram, phase_diagram


def distributed_orbit_diagram(
    model: Model,
    etas,
    theta0,
    *,
    client=None,
    chunks: int | None = None,
    transient: int = 1000,
    keep: int = 200,
    divergence_bound: float = 1e8,
    tol: float = 1e-9,
    max_period: int = 64,
    progress: bool = False,
) -> OrbitDiagram:
    """The orbit diagram of GD over ``etas``, computed in step-size chunks on a dask cluster.

    Equal, bit for bit, to ``orbit_diagram(model, etas, theta0, continuation=False, ...)``
    on one machine.

    Parameters
    ----------
    model
        Any :class:`~minimal_eos.models.Model` (it is pickled to the workers).
    etas
        Step sizes ``(E,)``, non-empty, each finite and > 0.
    theta0
        One initial point ``(d,)`` for every step size, or one per step size ``(E, d)``.
    client
        A :class:`distributed.Client`; None uses the current default client.
    chunks
        Number of tasks (contiguous chunks of step sizes). None: four per worker thread,
        at most ``E``.
    transient, keep, divergence_bound, tol, max_period
        As in :func:`~analysis.orbits.orbit_diagram`.
    progress
        Show a tqdm progress bar over the chunks.

    Returns
    -------
    OrbitDiagram
        With ``continuation=False``.

    Notes
    -----
    Every step size starts from ``theta0`` (or its own row): the runs are independent, so
    the grid splits into chunks ``etas[a:b]`` whose results concatenate to the whole.
    Continuation (each step size starting from the previous one's final state) visits the
    grid in sequence and cannot be split; use :func:`~analysis.orbits.orbit_diagram` on
    one machine for it.

    Examples
    --------
    >>> from distributed import Client, LocalCluster          # doctest: +SKIP
    >>> from minimal_eos import ScalarNetwork
    >>> with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cl, \\
    ...         Client(cl) as client:                          # doctest: +SKIP
    ...     d = distributed_orbit_diagram(ScalarNetwork(depth=2), np.linspace(0.5, 1.2, 64),
    ...                                   [1.2, 0.8], client=client, keep=16)
    >>> d.points.shape                                         # doctest: +SKIP
    (64, 16, 2)
    """
    model = check_model(model)
    etas = check_etas(etas)
    th = check_thetas(model, theta0)
    if th.shape[0] not in (1, len(etas)):
        raise ValueError(f"theta0 must have shape (d,) or (E, d) with E = {len(etas)} step "
                         f"sizes; got {th.shape}")
    opts = {"transient": positive_int(transient, "transient", minimum=0),
            "keep": positive_int(keep, "keep"),
            "divergence_bound": positive_float(divergence_bound, "divergence_bound"),
            "tol": positive_float(tol, "tol"),
            "max_period": positive_int(max_period, "max_period")}
    client = _get_client(client)
    bounds = _chunk_bounds(len(etas), chunks, client)
    tasks = []
    for a, b in bounds:
        rows = th[0] if th.shape[0] == 1 else th[a:b]
        tasks.append((_orbit_chunk, model, etas[a:b], rows, opts))
    diagram = OrbitDiagram.concatenate(_compute(client, tasks, progress, "orbit diagram"))
    # the caller's model, not the copy unpickled on a worker
    return dataclasses.replace(diagram, model=model)


def distributed_phase_diagram(
    model: Model,
    etas,
    thetas0,
    *,
    client=None,
    chunks: int | None = None,
    transient: int = 2000,
    measure: int = 2000,
    tol: float = 1e-9,
    max_period: int = 32,
    chaos_threshold: float = 0.01,
    divergence_bound: float = 1e8,
    seed: int = 0,
    progress: bool = False,
) -> PhaseDiagram:
    """The phase diagram of GD, computed in chunks of step sizes on a dask cluster.

    Equal, bit for bit, to ``phase_diagram(model, etas, thetas0, ...)`` on one machine.

    Parameters
    ----------
    model
        Any :class:`~minimal_eos.models.Model` (it is pickled to the workers).
    etas
        Step sizes ``(E,)``, non-empty, each finite and > 0.
    thetas0
        Initialisations ``(I, d)`` (or one point ``(d,)``); every chunk runs all of them.
    client
        A :class:`distributed.Client`; None uses the current default client.
    chunks
        Number of tasks (contiguous chunks of step sizes). None: four per worker thread,
        at most ``E``.
    transient, measure, tol, max_period, chaos_threshold, divergence_bound, seed
        As in :func:`~analysis.orbits.phase_diagram`.
    progress
        Show a tqdm progress bar over the chunks.

    Returns
    -------
    PhaseDiagram

    Notes
    -----
    Cell ``(i, j)`` is run ``b = i I + j`` of the single-machine diagram, whose tangent
    vector is column ``b`` of one ``(d, E I)`` standard normal draw from ``seed``,
    normalised per column. The client draws that matrix once and sends each chunk its
    columns, so the Lyapunov exponents (which depend on the initial tangent vector
    through rounding) come out the same bits as on one machine.
    """
    model = check_model(model)
    etas = check_etas(etas)
    th = check_thetas(model, thetas0, "thetas0")
    transient = positive_int(transient, "transient", minimum=0)
    measure = positive_int(measure, "measure")
    opts = {"transient": transient, "measure": measure,
            "tol": positive_float(tol, "tol"),
            "max_period": positive_int(max_period, "max_period"),
            "chaos_threshold": positive_float(chaos_threshold, "chaos_threshold"),
            "divergence_bound": positive_float(divergence_bound, "divergence_bound")}
    seed = positive_int(seed, "seed", minimum=0)
    client = _get_client(client)
    ne, ni, d = len(etas), len(th), model.dim
    rng = np.random.default_rng(seed)
    v0 = rng.standard_normal((d, ne * ni))
    v0 /= np.linalg.norm(v0, axis=0)
    tasks = []
    for a, b in _chunk_bounds(ne, chunks, client):
        tasks.append((_phase_chunk, model, etas[a:b], th,
                      np.ascontiguousarray(v0[:, a * ni:b * ni]), opts))
    return PhaseDiagram.concatenate(_compute(client, tasks, progress, "phase diagram"))


# -- tasks (run on the workers) ---------------------------------------------------------------
def _orbit_chunk(model: Model, etas: np.ndarray, theta0: np.ndarray, opts: dict):
    """One chunk of an orbit diagram (independent starts)."""
    return orbit_diagram(model, etas, theta0, continuation=False, **opts)


def _phase_chunk(model: Model, etas: np.ndarray, th: np.ndarray, v0: np.ndarray, opts: dict):
    """One chunk of a phase diagram, with its columns ``v0`` of the whole diagram's tangents."""
    return phase_diagram(model, etas, th, tangents=v0, **opts)


# -- client side ------------------------------------------------------------------------------
def _get_client(client):
    """``client``, or the current default :class:`distributed.Client`."""
    from distributed import Client, get_client

    if client is None:
        try:
            return get_client()
        except ValueError:
            raise ValueError("client is None and there is no default dask client; pass "
                             "client=distributed.Client(...)") from None
    if not isinstance(client, Client):
        raise ValueError(f"client must be a distributed.Client; got {type(client).__name__}")
    return client


def _chunk_bounds(n: int, chunks: int | None, client) -> list[tuple[int, int]]:
    """``[(a, b), ...]``: ``chunks`` contiguous slices of ``range(n)``, sizes differing by <= 1."""
    if chunks is None:
        threads = sum(client.nthreads().values())
        chunks = 4 * max(threads, 1)
    chunks = min(positive_int(chunks, "chunks"), n)
    edges = np.linspace(0, n, chunks + 1).round().astype(np.int64)
    return [(int(a), int(b)) for a, b in itertools.pairwise(edges)]


def _compute(client, tasks: list, progress: bool, what: str) -> list:
    """Submit ``tasks`` (function, *args) and return their results in submission order."""
    from distributed import as_completed

    futures = [client.submit(fn, *args, pure=False) for fn, *args in tasks]
    try:
        if progress:
            from tqdm import tqdm

            with tqdm(total=len(futures), desc=what, unit="chunk") as bar:
                for _ in as_completed(futures):
                    bar.update(1)
        return client.gather(futures)
    finally:
        client.cancel(futures)
