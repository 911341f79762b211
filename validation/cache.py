"""Results cached as files named after a stable hash of what produced them.

A *job* is a computation ``func(config) -> dict`` with a JSON-able ``config``. Its
result is stored as ``<kind>-<hash>.npz`` in the cache folder, where ``hash`` is the
SHA-256 (first 16 hex digits) of the canonical JSON of ``{"kind", "version",
"config"}``; ``version`` is bumped by hand when the computation changes. A result is a
flat dictionary whose values are numpy arrays (stored as arrays) or JSON-able values
(stored together as one JSON document inside the file, beside the job's configuration
and the seconds it took). Writes are atomic, so a killed build leaves either no file or
a complete one.

The paper caches every result it draws this way (``paper/cache``), and
``python -m validation.compare`` its quadratic threshold checks (``results/cache``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from validation.checkpoint import atomic_write

_META = "__meta__"
#: Key of the compute time (seconds) in a loaded result.
SECONDS = "_seconds"


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys, no spaces, tuples as lists and floats by ``repr``.

    Raises ValueError for values that have no stable JSON form (NaN, objects).
    """
    return json.dumps(_plain(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return _plain(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        raise ValueError(f"configurations must hold finite numbers; got {obj!r}")
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise ValueError(f"configurations must be JSON-able; got {type(obj).__name__}")


def config_hash(kind: str, config: dict, version: int = 1) -> str:
    """First 16 hex digits of the SHA-256 of the canonical JSON of the job."""
    text = canonical_json({"kind": kind, "version": version, "config": config})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Job:
    """One cached computation.

    Attributes
    ----------
    kind : str
        Short name of the computation (letters, digits, ``-`` and ``_``); the file
        name starts with it.
    config : dict
        Everything the result depends on (JSON-able).
    func : callable
        ``func(config) -> dict`` (``func(config, workdir) -> dict`` with ``workdir``); a
        module-level function, so that jobs can run in other processes.
    version : int
        Bumped when ``func`` changes what it returns.
    cost : float
        Rough relative cost, used only to start long jobs first.
    label : str
        Text for progress messages.
    workdir : bool
        The job keeps intermediate files in a folder of the cache,
        ``<key>.work`` beside its result, which ``func`` gets as its second argument: a
        long job (a sweep of many runs) killed half-way resumes from there.
    """

    kind: str
    config: dict
    func: Callable[..., dict]
    version: int = 1
    cost: float = 1.0
    label: str = field(default="")
    workdir: bool = False

    def __post_init__(self) -> None:
        if not self.kind or not all(c.isalnum() or c in "-_" for c in self.kind):
            raise ValueError(f"job kind must be letters, digits, '-' or '_'; got {self.kind!r}")
        config_hash(self.kind, self.config, self.version)

    @property
    def key(self) -> str:
        """``<kind>-<hash>``: the file name without its extension."""
        return f"{self.kind}-{config_hash(self.kind, self.config, self.version)}"


class Cache:
    """A folder of results named after their jobs.

    Parameters
    ----------
    root : path
        The folder (created on first write).
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = os.fspath(root)

    def path(self, job: Job) -> str:
        """Where ``job``'s result lives."""
        return os.path.join(self.root, job.key + ".npz")

    def workdir(self, job: Job) -> str:
        """The folder of ``job``'s intermediate files (for jobs with ``workdir``)."""
        return os.path.join(self.root, job.key + ".work")

    def has(self, job: Job) -> bool:
        """Whether ``job``'s result is on disk."""
        return os.path.exists(self.path(job))

    def load(self, job: Job) -> dict:
        """Read ``job``'s result (ValueError when it is missing or unreadable).

        The compute time in seconds is under the key :data:`SECONDS`.
        """
        path = self.path(job)
        if not os.path.exists(path):
            raise ValueError(f"no cached result for {job.key} in {self.root}")
        try:
            with np.load(path, allow_pickle=False) as f:
                out = {k: f[k] for k in f.files if k != _META}
                meta = json.loads(str(f[_META]))
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"cached result {path} is unreadable ({exc}); rebuild it with "
                             "--force") from None
        out.update(meta["values"])
        out[SECONDS] = meta.get("seconds")
        return out

    def save(self, job: Job, result: dict, seconds: float | None = None) -> str:
        """Write ``result`` for ``job`` atomically and return the path."""
        arrays, values = {}, {}
        for k, v in result.items():
            if not isinstance(k, str) or k in (_META, SECONDS):
                raise ValueError(f"result keys must be strings other than {_META!r} and "
                                 f"{SECONDS!r}; got {k!r}")
            if isinstance(v, np.ndarray):
                if v.dtype == object:
                    raise ValueError(f"result {k!r} is an object array; store numbers or text")
                arrays[k] = v
            else:
                values[k] = _json_value(v, k)
        meta = {"kind": job.kind, "version": job.version, "config": _plain(job.config),
                "seconds": seconds, "values": values}
        arrays[_META] = np.array(json.dumps(meta, allow_nan=True))
        path = self.path(job)

        def _write(tmp: str) -> None:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)

        atomic_write(path, _write)
        return path

    def compute(self, job: Job, *, fresh: bool = False) -> str:
        """Run ``job`` (timed) and write its result; returns the path.

        ``fresh``: first delete the job's work folder, so that nothing is resumed.
        """
        if fresh and job.workdir:
            shutil.rmtree(self.workdir(job), ignore_errors=True)
        t0 = time.perf_counter()
        result = (job.func(job.config, self.workdir(job)) if job.workdir
                  else job.func(job.config))
        return self.save(job, result, seconds=round(time.perf_counter() - t0, 3))

    def get(self, job: Job, *, force: bool = False) -> dict:
        """The result of ``job``: read from disk, or computed, written, then read back."""
        if force or not self.has(job):
            self.compute(job, fresh=force)
        return self.load(job)


def _json_value(v: Any, name: str) -> Any:
    """A JSON-able copy of ``v`` (NaN and infinities allowed, as results may hold them)."""
    if isinstance(v, dict):
        return {str(k): _json_value(x, name) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_json_value(x, name) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if v is None or isinstance(v, bool | int | float | str):
        return v
    raise ValueError(f"result {name!r} holds a {type(v).__name__}; store arrays, numbers or "
                     "text")
