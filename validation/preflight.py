"""Checks of a run before it starts: its fields against its data, and its size.

:class:`~validation.experiment.Config` checks each field alone and against the other
fields. :func:`check_config` adds what needs the data source (its shape, classes, task
and number of examples, and for CIFAR-10 every batch read and checked) and an estimate
of the run's memory and time, refused when it exceeds the machine's memory or a bound on
the time. Every refusal is a :class:`ConfigError` naming one field, so that the command
line can name its option.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import TYPE_CHECKING

from validation.data import DataInfo, dataset_info
from validation.networks import HEADS, PATCH, network_size

if TYPE_CHECKING:
    from validation.experiment import Config

#: Default bound on the estimated time of one run, in hours.
MAX_HOURS = 168.0
#: Assumed floating-point rate of one CPU thread (FLOP/s); rough, for the time estimate.
FLOP_RATE = 5e9
#: Assumed fixed cost of one forward-pass equivalent on one chunk (s): kernel launches and
#: Python dispatch, which dominate small networks.
CHUNK_OVERHEAD = 2e-3
#: Seconds to generate one MNIST-1D example.
MNIST1D_SECONDS = 7e-4
#: Multiples of a forward pass: a gradient, a Hessian-vector product, a third derivative.
GRAD, HVP, THIRD = 3, 6, 12
#: Hessian-vector products per sharpness estimate and tracked eigenpair (warm LOBPCG).
HVPS_PER_ESTIMATE = 10
#: Fields a size refusal may name: those that scale the estimate.
SIZE_FIELDS = ("n", "width", "depth", "steps", "eigs", "track_vectors", "chunk_size",
               "track_every", "record_every")


class ConfigError(ValueError):
    """A bad value of one field of a run.

    Parameters
    ----------
    field : str
        The :class:`~validation.experiment.Config` field (or command-line option, with
        underscores) the message is about.
    message : str
        One line saying what is wrong, with the value.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Estimate:
    """Rough size of a run.

    Attributes
    ----------
    params : int
        Parameters of the network.
    memory : float
        Peak memory in bytes: ``data + vectors + activations``.
    data, vectors, activations : float
        The three parts of ``memory`` (bytes).
    flops : float
        Floating-point operations of the whole run.
    seconds : float
        Estimated wall time on one CPU thread.
    """

    params: int
    memory: float
    data: float
    vectors: float
    activations: float
    flops: float
    seconds: float


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the platform has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine_memory() -> float | None:
    """Physical memory of this machine in bytes (None when the system does not say)."""
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def estimate(config: Config, info: DataInfo) -> Estimate:
    """Memory and time of ``config`` on a data source described by ``info``.

    Notes
    -----
    With ``p`` parameters, ``b`` bytes per number of the run's dtype, ``n`` examples of
    input size ``d`` and ``o`` outputs, ``A`` activations and ``M`` multiply-adds per
    example (:func:`~validation.networks.network_size`), ``c = min(chunk_size, n)`` and
    ``k = max(eigs, track_vectors)``:

    * data: ``n (d + o) (16 + b)`` (float64 on the host, twice while standardising,
      and the run's dtype on the device), plus the generated or read source;
    * vectors: ``p b V`` with ``V = 4 R + sum_j 7 k_j + max(30, k + 2)``: four vectors
      per optimizer run (``R`` runs), seven per eigenpair of every tracker (its vectors
      and LOBPCG's working set), and one cold Lanczos basis; the flows add six RK4 vectors
      each and the central flow ``k (k + 1) / 2`` third-derivative vectors;
    * activations: ``8 k c A b`` (a third derivative of ``k`` vectors at once holds about
      eight copies of the forward pass);
    * operations per step: a forward pass costs ``F = 2 n M``; a gradient ``3 F``, a
      Hessian-vector product ``6 F``, a third derivative ``12 F``; every run takes a
      gradient per step and ``10 k`` products per estimate (one every ``track_every``
      steps); gradient flow and the central flow take four gradients per step (RK4) and
      an estimate per record, the central flow ``k (k + 1) / 2`` third derivatives.

    Time is ``flops / FLOP_RATE`` plus ``CHUNK_OVERHEAD`` per forward-pass equivalent and
    chunk, plus the generation of MNIST-1D examples. These are rough: the point is to
    refuse a run that is orders of magnitude too big, with the numbers in the message.
    """
    checks = set(config.checks)
    size = network_size(config.arch, info.input_shape, info.num_outputs, depth=config.depth,
                        width=config.width)
    p = size.params
    b = 4 if config.dtype == "float32" else 8
    n = config.n
    d = math.prod(info.input_shape)
    o = info.num_outputs
    kept = len(config.classes) if config.classes is not None else o
    source = 0.0
    if info.labels is not None:
        source = float(info.labels.size) * d * (1 if config.dataset == "cifar10" else 8)
    elif config.dataset == "mnist1d":
        source = (n * o / kept) * d * 8
    data = n * (d + o) * (16 + b) + source

    k = max(config.eigs, config.track_vectors)
    runs = 1 + ("momentum" in checks) + ("drop" in checks)
    flows = bool(checks & {"central-flow", "flow-distance"})
    pgd = "constrained" in checks
    k_run = config.track_vectors
    trackers = [k_run] * runs
    v = 4 * runs
    if flows:
        trackers += [k_run, k, k_run]
        v += 12 + k * (k + 1) // 2
    if pgd:
        trackers.append(k_run)
        v += 6
    v += sum(7 * kj for kj in trackers) + max(30, k + 2)
    vectors = float(p) * b * v
    chunk = min(config.chunk_size, n)
    activations = 8.0 * k * chunk * size.activations * b

    forward = 2.0 * n * size.macs
    passes = 0.0  # in forward passes per step
    passes += runs * (GRAD + HVPS_PER_ESTIMATE * k_run * HVP / config.track_every)
    if flows:
        per_record = (HVPS_PER_ESTIMATE * (k_run + k) * HVP + k * (k + 1) / 2 * THIRD
                      + HVPS_PER_ESTIMATE * k_run * HVP)
        passes += 2 * 4 * GRAD + per_record / config.record_every
    if pgd:
        passes += GRAD + (HVPS_PER_ESTIMATE * k_run * HVP + THIRD) / config.record_every
    steps = config.steps + 1
    flops = steps * passes * forward
    chunks = math.ceil(n / chunk)
    seconds = flops / FLOP_RATE + steps * passes * chunks * CHUNK_OVERHEAD
    if config.dataset == "mnist1d":
        seconds += n * o / kept * MNIST1D_SECONDS
    return Estimate(params=p, memory=data + vectors + activations, data=data, vectors=vectors,
                    activations=activations, flops=flops, seconds=seconds)


def data_info(config: Config) -> DataInfo:
    """:func:`~validation.data.dataset_info` of ``config``'s source (ConfigError naming
    ``cifar_path`` when the CIFAR-10 folder or one of its batches is bad)."""
    try:
        return dataset_info(config.dataset, cifar_path=config.cifar_path)
    except ValueError as exc:
        raise ConfigError("cifar_path", str(exc)) from None


def check_config(config: Config, *, info: DataInfo | None = None, max_hours: float = MAX_HOURS,
                 memory_limit: float | None = None) -> Estimate:
    """Check ``config`` against its data and its size; return the size estimate.

    Parameters
    ----------
    config : Config
        A run (its fields are already checked one by one).
    info : DataInfo, optional
        :func:`data_info` of ``config``, when already known (default: read it).
    max_hours : float
        Refuse a run whose estimated time exceeds this many hours.
    memory_limit : float, optional
        Refuse a run whose estimated memory exceeds this many bytes (default: the
        machine's physical memory).

    Returns
    -------
    Estimate

    Raises
    ------
    ConfigError
        Naming the field: a data source that cannot be read (``cifar_path``), classes
        the source does not have (``classes``), more
        examples than the source has (``n``), cross-entropy on a regression task
        (``loss``), a CNN on vector inputs (``arch``), a transformer on inputs that are not
        signals ``(C, L)`` with ``L`` a multiple of ``PATCH`` (``arch``) or of a width
        that is not a multiple of ``HEADS`` (``width``), more eigenpairs than parameters
        (``eigs``, ``track_vectors``), or a run too big for the memory or the time bound
        (the field whose default value shrinks the estimate most, with the estimate).
    """
    if not (isinstance(max_hours, int | float) and max_hours > 0):
        raise ConfigError("max_hours", f"max_hours must be a number > 0; got {max_hours!r}")
    if info is None:
        info = data_info(config)
    if info.task == "regression" and config.loss == "ce":
        raise ConfigError("loss", f"loss 'ce' needs classes; the {config.dataset} task is a "
                          "regression (use loss 'mse')")
    try:
        available = info.available(config.classes)
    except ValueError as exc:
        raise ConfigError("classes", str(exc)) from None
    if available is not None and config.n > available:
        kept = "" if config.classes is None else f" of classes {list(config.classes)}"
        raise ConfigError("n", f"n={config.n} exceeds the {available} examples{kept} of "
                          f"{config.dataset}")
    if config.arch == "cnn" and len(info.input_shape) not in (2, 3):
        raise ConfigError("arch", f"arch 'cnn' needs signals (C, L) or images (C, H, W); "
                          f"{config.dataset} has inputs of shape {info.input_shape}")
    if config.arch == "transformer":
        shape = info.input_shape
        if len(shape) != 2 or shape[1] % PATCH:
            raise ConfigError("arch", f"arch 'transformer' reads signals (C, L) as tokens of "
                              f"{PATCH} samples and needs L a multiple of {PATCH}; "
                              f"{config.dataset} has inputs of shape {shape}")
        if config.width % HEADS:
            raise ConfigError("width", f"width must be a multiple of the transformer's "
                              f"{HEADS} heads; got {config.width}")
    est = estimate(config, info)
    for name in ("eigs", "track_vectors"):
        if getattr(config, name) > est.params:
            raise ConfigError(name, f"{name}={getattr(config, name)} exceeds the "
                              f"{est.params} parameters of the network")
    limit = machine_memory() if memory_limit is None else float(memory_limit)
    if limit is not None and est.memory > limit:
        field = _blame(config, info, lambda e: e.memory)
        raise ConfigError(field, f"{field}={getattr(config, field)}: the run needs an "
                          f"estimated {_bytes(est.memory)} (data {_bytes(est.data)}, "
                          f"vectors of {est.params:.3g} parameters {_bytes(est.vectors)}, "
                          f"activations {_bytes(est.activations)}), more than the "
                          f"{_bytes(limit)} of memory")
    if est.seconds > max_hours * 3600:
        field = _blame(config, info, lambda e: e.seconds)
        raise ConfigError(field, f"{field}={getattr(config, field)}: the run needs an "
                          f"estimated {est.seconds / 3600:.3g} hours ({est.flops:.3g} "
                          f"floating-point operations at {FLOP_RATE:.3g}/s), more than "
                          f"the bound of {max_hours:g} hours")
    return est


def check_concurrent_memory(configs: list, workers: int, *,
                            memory_limit: float | None = None) -> float:
    """Check that ``workers`` runs of ``configs`` at once fit in memory; return the need.

    Parameters
    ----------
    configs : list of Config
        The runs still to do (each already checked alone by :func:`check_config`).
    workers : int
        How many run at once (the worker processes of a local cluster).
    memory_limit : float, optional
        Bytes available (default: the machine's physical memory).

    Returns
    -------
    float
        The estimated bytes of the ``workers`` largest runs together.

    Raises
    ------
    ConfigError
        Naming ``workers`` when they do not fit, with the estimate and the largest number
        of workers that would.
    """
    infos: dict = {}
    sizes = []
    for config in configs:
        source = (config.dataset, config.cifar_path)
        if source not in infos:
            infos[source] = data_info(config)
        sizes.append(estimate(config, infos[source]).memory)
    sizes.sort(reverse=True)
    need = sum(sizes[:workers])
    limit = machine_memory() if memory_limit is None else float(memory_limit)
    if limit is not None and need > limit:
        fit = 0
        while fit < len(sizes) and sum(sizes[:fit + 1]) <= limit:
            fit += 1
        raise ConfigError("workers", f"workers={workers}: {min(workers, len(sizes))} runs at "
                          f"once need an estimated {_bytes(need)} (the largest alone "
                          f"{_bytes(sizes[0])}), more than the {_bytes(limit)} of memory; "
                          f"at most {fit} worker(s) fit")
    return need


def check_output_folder(path: str | os.PathLike) -> None:
    """Check that the folder ``path`` exists or can be created, and can be written.

    Nothing is created. Raises :class:`ConfigError` naming ``out`` when ``path`` is a
    file, lies under a file, or its nearest existing folder is not writable.
    """
    out = os.path.abspath(os.fspath(path))
    if os.path.exists(out) and not os.path.isdir(out):
        raise ConfigError("out", f"out {os.fspath(path)!r} is a file, not a folder")
    parent = out
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ConfigError("out", f"out {os.fspath(path)!r} lies under the file {parent!r}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError("out", f"out {os.fspath(path)!r} cannot be written: no write "
                          f"permission on {parent!r}")


def _blame(config: Config, info: DataInfo, measure: Callable[[Estimate], float]) -> str:
    """The size field whose default value shrinks ``measure(estimate)`` the most."""
    from validation.experiment import Config

    defaults = Config()
    base = measure(estimate(config, info))
    best, best_ratio = SIZE_FIELDS[0], 0.0
    for name in SIZE_FIELDS:
        value = getattr(defaults, name)
        if getattr(config, name) == value:
            continue
        trial = SimpleNamespace(**{**vars(config), name: value})
        ratio = base / max(measure(estimate(trial, info)), 1e-300)
        if ratio > best_ratio:
            best, best_ratio = name, ratio
    return best


def _bytes(x: float) -> str:
    """``x`` bytes with a decimal unit, three significant digits."""
    if x < 1000:
        return f"{x:.0f} B"
    exponent = min(int(math.log10(x) // 3), 5)
    return f"{x / 1000 ** exponent:.3g} {'kMGTP'[exponent - 1]}B"
