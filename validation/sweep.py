"""``python -m validation.sweep SPEC``: sweeps of validation runs on dask.distributed.

A sweep is a list of configurations of :class:`validation.experiment.Config` (plus the
device), written as a JSON file::

    {
      "name": "example",
      "out": "results/sweeps/example",
      "base": {"dataset": "mnist1d", "n": 500, "steps": 400, "device": "cpu"},
      "grid": {"eta": [0.1, 0.2, 0.4], "width": [32, 64], "depth": [1, 2], "seed": [0]},
      "configs": [{"eta": 0.05, "width": 128}]
    }

``grid`` is a cartesian product (keys vary in the order written, the last fastest),
``configs`` a list of single configurations; both are laid over ``base``, and a spec may
have either or both. Each configuration runs as one task on a dask cluster: a
LocalCluster on this machine by default, or an existing cluster given by
``--scheduler``. Tasks whose device is ``cuda`` need the worker resource ``GPU=1``.

Results land in the output folder as they finish: ``results/<key>.json`` per
configuration, named by a stable hash of the full configuration (:func:`config_key`), and
``index.json`` listing every configuration with its status. All files are written
atomically. A rerun of the same command skips the configurations that already have a
result; a task that raises is recorded with its error and the sweep goes on.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fcntl
import hashlib
import itertools
import json
import logging
import math
import os
import socket
import sys
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from validation.checkpoint import json_ready, read_json, write_json, write_strict_json
from validation.cli import OneLineParser
from validation.experiment import Config
from validation.preflight import (
    MAX_HOURS,
    check_concurrent_memory,
    check_config,
    check_output_folder,
    data_info,
    usable_cores,
)

#: Options of a run that are not fields of :class:`~validation.experiment.Config`.
RUN_OPTIONS = ("device",)
DEVICES = ("cpu", "auto", "cuda")
SPEC_KEYS = ("name", "out", "base", "grid", "configs")
#: Sweep defaults that differ from :class:`Config`'s: only the edge check (no flows).
SWEEP_DEFAULTS = {"checks": ("edge",), "device": "cpu"}
RESULTS = "results"
FAILED = "failed"
INDEX = "index.json"
#: Lock file of a running sweep in its output folder.
LOCK = "sweep.lock"
CHECKPOINTS = "checkpoints"
#: Minimum number of seconds between two rewrites of the index while results arrive.
INDEX_INTERVAL = 1.0


# -- the spec ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepEntry:
    """One configuration of a sweep.

    Attributes
    ----------
    key : str
        :func:`config_key` of ``config``, ``device`` and ``threads``; the name of its
        result file.
    config : Config
        The full configuration.
    device : str
        ``"cpu"``, ``"auto"`` (CUDA when the worker has it) or ``"cuda"``/``"cuda:N"``.
    overrides : dict
        The fields the spec set for this configuration (base, grid point, list entry).
    threads : int
        torch CPU threads of the task (they change the rounding, hence the numbers).
    """

    key: str
    config: Config
    device: str
    overrides: dict = field(default_factory=dict)
    threads: int = 1

    @property
    def resources(self) -> dict | None:
        """dask worker resources the task needs: ``{"GPU": 1}`` for a CUDA device."""
        return {"GPU": 1} if self.device.startswith("cuda") else None


def config_key(config: Config, device: str, threads: int = 1) -> str:
    """Stable 16-hex-digit key of a configuration: SHA-256 of its canonical JSON.

    Every field of ``config`` enters (defaults included), and the device and the torch
    thread count (a sum split over more threads rounds differently), so a result is never
    reused for a run that could differ in any number; the key does not depend on the
    order in which fields were given, nor on the Python process.
    """
    text = json.dumps({"config": config.to_dict(), "device": device, "threads": threads},
                      sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_spec(path: str | os.PathLike) -> dict:
    """Read a JSON spec file (ValueError naming the file when missing or not JSON)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"spec file {path!r} does not exist")
    with open(path) as fh:
        try:
            spec = json.load(fh)
        except json.JSONDecodeError as exc:
            raise ValueError(f"spec file {path!r} is not valid JSON: {exc}") from None
    if not isinstance(spec, dict):
        raise ValueError(f"spec file {path!r} must hold a JSON object with keys "
                         f"{', '.join(SPEC_KEYS)}")
    return spec


def expand_spec(spec: dict, *, max_hours: float = MAX_HOURS,
                threads: int = 1) -> list[SweepEntry]:
    """The configurations of a spec, in order: grid points first, then ``configs``.

    Every configuration is checked in full before it is returned, as a single run is:
    its fields, its data (data folders exist and every CIFAR-10 batch reads) and its
    size (:func:`~validation.preflight.check_config`), so that no bad configuration
    reaches a worker.

    Parameters
    ----------
    spec : dict
        Keys ``base`` (fields common to all), ``grid`` (field -> non-empty list of
        values; the cartesian product), ``configs`` (list of field dicts), and the
        informative ``name`` and ``out``. Fields are those of
        :class:`~validation.experiment.Config` and ``device``. With neither ``grid`` nor
        ``configs`` the sweep is the single configuration ``base``.
    max_hours : float
        Refuse a configuration whose estimated time exceeds this many hours.
    threads : int
        torch threads of every task (part of each key).

    Returns
    -------
    list of SweepEntry
        Duplicates (same key) appear once, at their first place.

    Raises
    ------
    ValueError
        Unknown keys or fields, values of the wrong type, a ``name`` that is not a plain
        file name (:func:`check_name`), an empty ``grid`` or ``configs``, or a
        configuration that :class:`Config` or
        :func:`~validation.preflight.check_config` rejects (the message names the
        configuration and the field).
    """
    if not isinstance(spec, dict):
        raise ValueError(f"the spec must be a JSON object; got {type(spec).__name__}")
    unknown = [k for k in spec if k not in SPEC_KEYS]
    if unknown:
        raise ValueError(f"unknown spec key {unknown[0]!r}; accepted: {', '.join(SPEC_KEYS)}")
    if spec.get("name") is not None:
        check_name(spec["name"])
    base = spec.get("base", {})
    _check_fields(base, "base")
    points: list[dict] = []
    grid = spec.get("grid")
    if grid is not None:
        _check_fields(grid, "grid")
        if not grid:
            raise ValueError("grid must map at least one field to a list of values; got {}")
        for name, values in grid.items():
            if not isinstance(values, list) or not values:
                raise ValueError(f"grid field {name!r} must be a non-empty list of values; "
                                 f"got {values!r}")
        names = list(grid)
        points += [dict(zip(names, combo, strict=True))
                   for combo in itertools.product(*(grid[n] for n in names))]
    configs = spec.get("configs")
    if configs is not None:
        if not isinstance(configs, list) or not configs:
            raise ValueError(f"configs must be a non-empty list of objects; got {configs!r}")
        for i, c in enumerate(configs):
            _check_fields(c, f"configs[{i}]")
        points += list(configs)
    if grid is None and configs is None:
        points = [{}]
    entries: list[SweepEntry] = []
    seen: set[str] = set()
    infos: dict = {}  # each data source is read once
    for i, point in enumerate(points):
        overrides = {**base, **point}
        try:
            entry = make_entry(overrides, threads=threads)
            if entry.key not in seen:
                source = (entry.config.dataset, entry.config.cifar_path)
                if source not in infos:
                    infos[source] = data_info(entry.config)
                check_config(entry.config, info=infos[source], max_hours=max_hours)
        except ValueError as exc:
            raise ValueError(f"configuration {i} {json.dumps(overrides)}: {exc}") from None
        if entry.key not in seen:
            seen.add(entry.key)
            entries.append(entry)
    return entries


def make_entry(overrides: dict, threads: int = 1) -> SweepEntry:
    """A :class:`SweepEntry` from spec fields (sweep defaults for the fields not given),
    run with ``threads`` torch threads."""
    threads = _positive_int(threads, "threads")
    _check_fields(overrides, "configuration")
    fields = {**SWEEP_DEFAULTS, **overrides}
    device = fields.pop("device")
    if not isinstance(device, str) or not (device in DEVICES or device.startswith("cuda:")):
        raise ValueError(f"unknown device {device!r}; accepted: {', '.join(DEVICES)}, cuda:N")
    config = config_from_fields(fields)
    return SweepEntry(config_key(config, device, threads), config, device, dict(overrides),
                      threads)


def check_name(name) -> str:
    """``name`` if it is a plain file name: letters, digits, ``.``, ``_`` and ``-``, not
    starting with a dot (so never ``..`` nor a path); else ValueError naming it."""
    if (not isinstance(name, str) or not name or name.startswith(".")
            or not all(c.isascii() and (c.isalnum() or c in "._-") for c in name)):
        raise ValueError(f"name must be a plain file name (letters, digits, '.', '_', '-', "
                         f"not starting with '.'); got {name!r}")
    return name


def config_from_fields(fields: dict) -> Config:
    """:class:`Config` from JSON values: lists to tuples, integers of float fields to floats."""
    types = {f.name: str(f.type) for f in dataclasses.fields(Config)}
    kwargs = {}
    for name, value in fields.items():
        if name in ("checks", "classes") and isinstance(value, list):
            value = tuple(value)
        elif (types[name].startswith("float") and isinstance(value, int)
              and not isinstance(value, bool)):
            value = float(value)
        kwargs[name] = value
    checks = kwargs.get("checks")
    if checks is not None and not isinstance(checks, tuple):
        raise ValueError(f"checks must be a list of check names; got {checks!r}")
    return Config(**kwargs)


def _check_fields(fields, where: str) -> None:
    if not isinstance(fields, dict):
        raise ValueError(f"{where} must be a JSON object of fields; got {fields!r}")
    accepted = [f.name for f in dataclasses.fields(Config)] + list(RUN_OPTIONS)
    for name in fields:
        if name not in accepted:
            raise ValueError(f"unknown field {name!r} in {where}; accepted: "
                             f"{', '.join(accepted)}")


# -- one task (runs on a worker) ----------------------------------------------------------------
def run_configuration(config: Config, device: str = "cpu", *, threads: int = 1,
                      checkpoint_dir: str | None = None) -> dict:
    """Run one configuration and return its record; an exception becomes a failed record.

    Parameters
    ----------
    config : Config
        The run (its checks decide the prediction rows).
    device : str
        ``"cpu"``, ``"auto"`` or ``"cuda"``/``"cuda:N"``.
    threads : int
        torch CPU threads.
    checkpoint_dir : str, optional
        Checkpoint the run there and resume from a checkpoint found there (a task rerun
        after its worker died); removed once the run completes.

    Returns
    -------
    dict
        ``status`` (``"done"`` or ``"failed"``), ``measurements`` (:func:`measure`),
        ``predictions`` (the rows of :func:`validation.predictions.evaluate`),
        ``series`` (the main run's sharpness ``(t, S)`` and loss), or ``error`` and
        ``traceback``; and where it ran (``worker``, ``host``, ``device_used``) and how
        long it took (``seconds``).
    """
    t0 = time.perf_counter()
    record: dict = {"worker": _worker_address(), "host": socket.gethostname()}
    try:
        import torch

        from validation.experiment import CHECKPOINT, pick_device, run_experiment
        from validation.predictions import evaluate

        torch.set_num_threads(threads)
        dev = pick_device(device)
        if dev.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        results = run_experiment(config, out_dir=checkpoint_dir, device=str(dev),
                                 resume=checkpoint_dir is not None)
        rows = evaluate(results, config)
        main = results["runs"]["main"]
        record.update(status="done", device_used=str(dev), measurements=measure(results),
                      predictions=rows, resumed_from=results["resumed_from"],
                      series={"sharpness": main["sharpness"], "loss": main["loss"]})
        if checkpoint_dir is not None:
            ckpt = os.path.join(checkpoint_dir, CHECKPOINT)
            if os.path.exists(ckpt):
                os.remove(ckpt)
            if os.path.isdir(checkpoint_dir) and not os.listdir(checkpoint_dir):
                os.rmdir(checkpoint_dir)
    except Exception as exc:  # reported in the record; the sweep goes on
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc())
    record["seconds"] = round(time.perf_counter() - t0, 3)
    return json_ready(record)


def _worker_address() -> str | None:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return None


def measure(results: dict) -> dict:
    """The sweep's numbers for one run, from :func:`validation.experiment.run_experiment`.

    Returns
    -------
    dict
        ``edge``: the main optimizer's critical sharpness (``2/eta`` for GD);
        ``initial_sharpness``; ``onset_step``: first tracked step at the edge after being
        10% below it (None without progressive sharpening);
        ``plateau_sharpness``: median sharpness from the onset on (NaN without onset, or
        when the run diverged: its records up to there can look like a plateau);
        ``plateau_ratio``: ``plateau_sharpness / edge``;
        ``sharpening_rate``: ``dS / d(eta t)``, the least-squares slope of the sharpness
        against gradient-flow time ``eta t`` over the tracked steps before the sharpness
        first reaches the edge (NaN with fewer than 3 such steps, or when the run starts
        at or above the edge); ``alpha_at_onset``: ``-grad L . grad S`` at the onset;
        ``final_loss``, ``diverged_at``, ``mean_hvps``.

    Notes
    -----
    Below the edge, GD sharpens at ``S_{t+1} - S_t ~ eta alpha`` with
    ``alpha = -grad L . grad S`` (Damian, Nichani, Lee, arXiv 2209.15594), so the slope
    against ``eta t`` estimates ``alpha`` averaged over the sharpening phase, in units
    that do not depend on the step size.
    """
    from validation.predictions import onset_step

    main = results["runs"]["main"]
    edge = float(main["edge"])
    eta = float(main["eta"])
    pts = [(int(t), float(s)) for t, s in main["sharpness"]]
    on = onset_step(pts, edge)
    post = [s for t, s in pts if on is not None and t >= on and main["diverged_at"] is None]
    plateau = float(np.median(post)) if post else math.nan
    before = []
    for t, s in pts:
        if s >= edge:
            break
        before.append((t, s))
    rate = math.nan
    if len(before) >= 3:
        t, s = np.array(before).T
        rate = float(np.polyfit(eta * t, s, 1)[0])
    onset = results.get("onset")
    return {"edge": edge, "initial_sharpness": pts[0][1] if pts else math.nan,
            "onset_step": on, "plateau_sharpness": plateau, "plateau_ratio": plateau / edge,
            "sharpening_rate": rate,
            "alpha_at_onset": float(onset["alpha"]) if onset else math.nan,
            "final_loss": float(main["loss"][-1]) if main["loss"] else math.nan,
            "diverged_at": main["diverged_at"], "mean_hvps": float(main["mean_hvps"])}


# -- the sweep (client side) --------------------------------------------------------------------
@dataclass
class SweepOutcome:
    """What :func:`run_sweep` returns.

    Attributes
    ----------
    entries : list of SweepEntry
        The configurations, in spec order.
    records : dict
        key -> record (from this run or an earlier one); missing for unfinished keys.
    ran, skipped : list of str
        Keys run now, and keys skipped because their result was already there.
    failed : list of str
        Keys whose task failed in this run.
    index : str
        Path of ``index.json``.
    seconds : float
        Wall time of the sweep.
    """

    entries: list
    records: dict
    ran: list
    skipped: list
    failed: list
    index: str
    seconds: float

    @property
    def complete(self) -> bool:
        """Every configuration has a result."""
        return all(self.records.get(e.key, {}).get("status") == "done" for e in self.entries)


def result_path(out_dir: str | os.PathLike, key: str) -> str:
    """Where the result of configuration ``key`` lives."""
    return os.path.join(os.fspath(out_dir), RESULTS, f"{key}.json")


def read_result(out_dir: str | os.PathLike, key: str) -> dict | None:
    """The finished record of ``key`` in ``out_dir``, or None (missing or unreadable)."""
    try:
        rec = read_json(result_path(out_dir, key))
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and rec.get("key") == key and \
        rec.get("status") == "done" else None


def run_sweep(entries: list[SweepEntry], out_dir: str | os.PathLike, *, client=None,
              workers: int | None = None, resume: bool = True,
              checkpoints: bool = False, progress: bool = True, spec: dict | None = None,
              callback: Callable[[SweepEntry, dict], None] | None = None,
              dashboard: int | None = None) -> SweepOutcome:
    """Run every configuration as a dask task; write results as they finish.

    Parameters
    ----------
    entries : list of SweepEntry
        From :func:`expand_spec`.
    out_dir : path
        Output folder (``results/``, ``failed/``, ``index.json``).
    client : distributed.Client, optional
        The cluster to use. None: a LocalCluster on 127.0.0.1 with ``workers`` worker
        processes of one thread each, closed at the end.
    workers : int, optional
        Worker processes of the local cluster (default: every core).
    resume : bool
        Skip configurations whose result is already in ``out_dir``; False reruns all.
    checkpoints : bool
        Tasks checkpoint their run under ``out_dir/checkpoints/<key>`` (the folder must
        be shared with the workers), so a task rerun after its worker died resumes.
    progress : bool
        tqdm progress bar over the tasks.
    spec : dict, optional
        Stored in the index.
    callback : callable, optional
        ``callback(entry, record)`` on the client after each record is written.
    dashboard : int, optional
        Port of the local cluster's dashboard on 127.0.0.1 (default: no dashboard).

    Returns
    -------
    SweepOutcome

    Raises
    ------
    ValueError
        ``out_dir`` holds the index of other configurations (another spec, or other
        ``--threads``), or another sweep is running in it (:data:`LOCK` is held).
        On the local cluster, when its workers running the largest configurations at
        once would exceed the machine's memory
        (:func:`~validation.preflight.check_concurrent_memory`).

    Notes
    -----
    Each task runs with its entry's ``threads`` torch threads.
    """
    t0 = time.perf_counter()
    out_dir = os.path.abspath(os.fspath(out_dir))
    if workers is not None:
        workers = _positive_int(workers, "workers")
        if client is not None:
            raise ValueError("workers applies to the local cluster; with a client, the "
                             "cluster's own workers run the tasks")
    keys = [e.key for e in entries]
    if len(set(keys)) != len(keys):
        raise ValueError("entries hold the same configuration twice")
    os.makedirs(os.path.join(out_dir, RESULTS), exist_ok=True)
    with _locked(out_dir):
        _check_same_sweep(out_dir, keys)
        return _sweep(entries, out_dir, client, workers, resume, checkpoints, progress, spec,
                      callback, dashboard, t0)


def _sweep(entries, out_dir, client, workers, resume, checkpoints, progress, spec, callback,
           dashboard, t0) -> SweepOutcome:
    records: dict = {}
    skipped = []
    if resume:
        for e in entries:
            rec = read_result(out_dir, e.key)
            if rec is not None:
                records[e.key] = rec
                skipped.append(e.key)
    todo = [e for e in entries if e.key not in records]
    if client is None and todo:
        check_concurrent_memory([e.config for e in todo],
                                workers if workers is not None else usable_cores())
    index = _Index(os.path.join(out_dir, INDEX), entries, records, spec)
    index.write()
    ran: list = []
    failed: list = []
    if todo:
        own = client is None
        cluster = None
        if own:
            cluster, client = local_cluster(workers, todo, dashboard)
        try:
            _warn_without_gpus(client, todo)
            _run_tasks(client, todo, out_dir, checkpoints, progress, len(entries),
                       len(skipped), records, index, ran, failed, callback)
        finally:
            index.write()
            if own:
                client.close()
                cluster.close()
    return SweepOutcome(entries=entries, records=records, ran=ran, skipped=skipped,
                        failed=failed, index=index.path, seconds=time.perf_counter() - t0)


def _run_tasks(client, todo, out_dir, checkpoints, progress, total, initial, records,
               index, ran, failed, callback) -> None:
    from distributed import as_completed

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=initial, desc="sweep", unit="config")
    futures = {}
    for e in todo:
        ckpt = os.path.join(out_dir, CHECKPOINTS, e.key) if checkpoints else None
        fut = client.submit(run_configuration, e.config, e.device, threads=e.threads,
                            checkpoint_dir=ckpt, resources=e.resources, pure=False,
                            key=f"config-{e.key}-{uuid.uuid4().hex[:8]}")
        futures[fut] = e
    try:
        for fut in as_completed(futures):
            e = futures[fut]
            if fut.status == "finished":
                rec = fut.result()
            else:
                # the task itself never raises: this is the cluster giving up on it, e.g.
                # KilledWorker after its workers died too often, or a cancelled task
                exc = fut.exception() if fut.status == "error" else None
                rec = {"status": "failed", "worker": None,
                       "error": f"{type(exc).__name__}: {exc}" if exc else f"task {fut.status}",
                       "traceback": ""}
            fut.release()
            rec = {"key": e.key, "config": e.config.to_dict(), "device": e.device,
                   "threads": e.threads, "overrides": e.overrides, **rec}
            _store(out_dir, e, rec, records)
            ran.append(e.key)
            if rec["status"] != "done":
                failed.append(e.key)
                line = f"failed {e.key} {json.dumps(e.overrides)}: {rec['error']}"
                if bar is not None:
                    bar.write(line, file=sys.stderr)
                else:
                    print(line, file=sys.stderr)
            index.write(throttle=True)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(failed=len(failed), refresh=False)
            if callback is not None:
                callback(e, rec)
    finally:
        if bar is not None:
            bar.close()
        client.cancel(list(futures))


def _store(out_dir: str, entry: SweepEntry, rec: dict, records: dict) -> None:
    """Write a record: a result file when done, ``failed/<key>.json`` when not."""
    failed_path = os.path.join(out_dir, FAILED, f"{entry.key}.json")
    if rec["status"] == "done":
        write_strict_json(result_path(out_dir, entry.key), rec)
        if os.path.exists(failed_path):
            os.remove(failed_path)
    else:
        write_strict_json(failed_path, rec)
    records[entry.key] = rec


class _Index:
    """``index.json``: every configuration with its status, rewritten atomically."""

    def __init__(self, path: str, entries: list, records: dict, spec: dict | None) -> None:
        self.path = path
        self.entries = entries
        self.records = records
        self.spec = spec
        self.last = -math.inf

    def write(self, throttle: bool = False) -> None:
        now = time.monotonic()
        if throttle and now - self.last < INDEX_INTERVAL:
            return
        self.last = now
        rows = []
        for e in self.entries:
            rec = self.records.get(e.key)
            status = rec["status"] if rec else "pending"
            row = {"key": e.key, "status": status, "overrides": e.overrides, "device": e.device,
                   "threads": e.threads,
                   "file": os.path.join(RESULTS, f"{e.key}.json") if status == "done" else None}
            if status == "failed":
                row["error"] = rec["error"]
                row["file"] = os.path.join(FAILED, f"{e.key}.json")
            rows.append(row)
        counts = {s: sum(r["status"] == s for r in rows) for s in ("done", "failed", "pending")}
        write_json(self.path, json_ready({"spec": self.spec, "total": len(rows), **counts,
                                      "configurations": rows}))


@contextlib.contextmanager
def _locked(out_dir: str):
    """Hold an exclusive lock on ``out_dir/LOCK`` (ValueError when another sweep holds it).

    The lock is ``flock`` on an open file: the kernel releases it when the holder exits,
    killed or not, so a stale lock file never blocks a later sweep.
    """
    fh = open(os.path.join(out_dir, LOCK), "a")
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ValueError(f"another sweep is running in {out_dir} (it holds {LOCK}); "
                             "wait for it or use another --out") from None
        yield
    finally:
        fh.close()


def _check_same_sweep(out_dir: str, keys: list) -> None:
    """Refuse an ``out_dir`` whose ``index.json`` lists other configurations than ``keys``."""
    path = os.path.join(out_dir, INDEX)
    if not os.path.exists(path):
        return
    try:
        with open(path) as fh:
            old = {row["key"] for row in json.load(fh)["configurations"]}
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(f"{path} is unreadable; remove it or use another --out") from None
    if old != set(keys):
        extra = sorted(old - set(keys))
        missing = sorted(set(keys) - old)
        which = (f"it lists {extra[0]}, which this sweep does not run" if extra
                 else f"it lacks {missing[0]}, which this sweep runs")
        raise ValueError(f"{out_dir} holds the results of another sweep ({which}: another "
                         "spec, or other --threads); use another --out or remove the folder")


def local_cluster(workers: int | None, todo: list, dashboard: int | None):
    """A LocalCluster on 127.0.0.1 (one thread per worker process) and its client.

    Its worker processes preload :mod:`validation.children`, so that they die with this
    process even when it is killed with SIGKILL.
    """
    from distributed import Client, LocalCluster

    from validation.children import PARENT_ENV

    resources = None
    if any(e.resources for e in todo):
        import torch

        if not torch.cuda.is_available():
            raise ValueError("configurations with device 'cuda' need CUDA, which this "
                             "machine does not have; use --scheduler with GPU workers")
        # every local worker may hold one GPU task; they share this machine's GPUs
        resources = {"GPU": 1}
    n = workers if workers is not None else usable_cores()
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None if dashboard is None
                           else f"127.0.0.1:{dashboard}",
                           resources=resources, silence_logs=logging.ERROR,
                           preload=["validation.children"],
                           env={PARENT_ENV: str(os.getpid())})
    return cluster, Client(cluster)


def connect(scheduler: str | None):
    """A client of the dask scheduler at ``scheduler``, or None for a local cluster.

    Raises
    ------
    ValueError
        The scheduler cannot be reached within 20 seconds.
    """
    if scheduler is None:
        return None
    from distributed import Client

    try:
        return Client(scheduler, timeout="20s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise ValueError(f"cannot reach the scheduler at {scheduler}: {exc}") from None


def run_with_client(parser: argparse.ArgumentParser, scheduler: str | None, out: str, work):
    """The cluster part of a command line: connect to ``scheduler`` (:func:`connect`),
    return ``work(client)`` and close the client.

    A ValueError, from connecting or from ``work``, becomes ``parser.error`` (one line,
    exit status 2). On Ctrl-C it prints where the finished results are and returns None.
    """
    try:
        client = connect(scheduler)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        return work(client)
    except ValueError as exc:
        parser.error(str(exc))
    except KeyboardInterrupt:
        print(f"interrupted; finished results are in {out}; rerun the same command to "
              "resume", file=sys.stderr)
        return None
    finally:
        if client is not None:
            client.close()


def _warn_without_gpus(client, todo: list) -> None:
    need = sum(1 for e in todo if e.resources)
    if not need:
        return
    workers = client.scheduler_info().get("workers", {})
    if not any(w.get("resources", {}).get("GPU", 0) >= 1 for w in workers.values()):
        print(f"warning: {need} configuration(s) need a GPU and no worker offers the resource "
              "GPU yet; they wait until one joins (start GPU workers with "
              "`dask worker ADDRESS --resources GPU=1`)", file=sys.stderr)


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    return value


# -- command line -------------------------------------------------------------------------------
EPILOG = """\
spec (JSON):
  {"name": "...", "out": "results/sweeps/...",
   "base":    {field: value, ...},              common to every configuration
   "grid":    {field: [value, ...], ...},       cartesian product over base
   "configs": [{field: value, ...}, ...]}       single configurations over base
fields: those of validation.experiment.Config (eta, width, depth, seed, n, dataset,
optimizer, steps, checks, ...) and device (cpu | auto | cuda | cuda:N; default cpu).
Sweep default: checks ["edge"]. Configurations with device cuda run on workers that
offer the resource GPU (dask worker ADDRESS --resources GPU=1).

results: OUT/results/KEY.json per configuration (KEY: hash of the full configuration),
OUT/failed/KEY.json for failed tasks, OUT/index.json, OUT/summary.csv and figures.
Rerunning the same command skips finished configurations and reruns failed ones.
exit status: 0 all done, 1 some failed, 2 bad input, 130 interrupted.
"""


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    p = OneLineParser(prog="python -m validation.sweep",
                      description="Run a sweep of validation runs as tasks on dask.distributed.",
                      epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", help="JSON spec file (see below)")
    p.add_argument("--out", default=None,
                   help="output folder (default: the spec's 'out', else results/sweeps/NAME)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="address of a running dask scheduler, e.g. tcp://10.0.0.5:8786 "
                        "(default: start a local cluster)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes of the local cluster (default: every core)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads per task (default %(default)s)")
    p.add_argument("--max-hours", type=float, default=MAX_HOURS,
                   help="refuse a configuration whose estimated time exceeds this "
                        "(default %(default)s)")
    p.add_argument("--dashboard", type=int, default=None, metavar="PORT",
                   help="serve the local cluster's dashboard on 127.0.0.1:PORT (default: off)")
    p.add_argument("--checkpoints", action="store_true",
                   help="tasks checkpoint their run under OUT/checkpoints (OUT must be "
                        "shared with the workers); a rerun task resumes from it")
    p.add_argument("--force", action="store_true",
                   help="rerun configurations that already have a result")
    p.add_argument("--list", action="store_true",
                   help="print the configurations, their keys and status; run nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-figures", action="store_true", help="skip the figures")
    return p


def default_out(spec: dict, spec_path: str) -> str:
    """The output folder named by the spec, else ``results/sweeps/<name or file stem>``."""
    if spec.get("out") is not None:
        if not isinstance(spec["out"], str) or not spec["out"]:
            raise ValueError(f"out must be a folder name; got {spec['out']!r}")
        return spec["out"]
    if spec.get("name"):
        return os.path.join("results", "sweeps", check_name(spec["name"]))
    return os.path.join("results", "sweeps", os.path.splitext(os.path.basename(spec_path))[0])


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    t0 = time.perf_counter()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        for name in ("threads", "workers", "dashboard"):
            value = getattr(args, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name} must be >= 1; got {value}")
        if not (math.isfinite(args.max_hours) and args.max_hours > 0):
            raise ValueError(f"--max-hours must be a finite number > 0; got {args.max_hours}")
        if args.scheduler is not None and args.workers is not None:
            raise ValueError("--workers sets the local cluster; with --scheduler the "
                             "cluster's own workers run the tasks")
        cores = usable_cores()
        if args.scheduler is None and args.threads > cores:
            raise ValueError(f"--threads must be at most the {cores} cores of this machine "
                             f"(its local cluster runs the tasks); got {args.threads}")
        spec = load_spec(args.spec)
        out = args.out or default_out(spec, args.spec)
        try:
            check_output_folder(out)
        except ValueError as exc:
            raise ValueError(f"--out: {exc}") from None
        entries = expand_spec(spec, max_hours=args.max_hours, threads=args.threads)
    except ValueError as exc:
        parser.error(str(exc))
    from validation.sweep_report import format_summary, write_figures, write_summary_csv

    if args.list:
        records = {e.key: rec for e in entries if (rec := read_result(out, e.key)) is not None}
        print(format_summary(entries, records))
        return 0
    def work(client):
        print(f"{len(entries)} configuration(s); results in {out}", flush=True)
        return run_sweep(entries, out, client=client, workers=args.workers,
                         resume=not args.force, checkpoints=args.checkpoints,
                         progress=not args.no_progress, spec=spec, dashboard=args.dashboard)

    outcome = run_with_client(parser, args.scheduler, out, work)
    if outcome is None:
        return 130
    print(format_summary(entries, outcome.records))
    csv_path = write_summary_csv(out, entries, outcome.records)
    print(f"index: {outcome.index}")
    print(f"summary: {csv_path}")
    if not args.no_figures:
        for f in write_figures(out, entries, outcome.records):
            print(f"figure: {f}")
    print(f"ran {len(outcome.ran)}, skipped {len(outcome.skipped)} already done, "
          f"{len(outcome.failed)} failed; wall time {time.perf_counter() - t0:.1f} s "
          f"(sweep {outcome.seconds:.1f} s)")
    return 0 if outcome.complete else 1


if __name__ == "__main__":
    sys.exit(main())
