"""Files written atomically, and checkpoints that are checked before they are trusted.

Every file goes through :func:`atomic_write`: a temporary file with a unique name in the
same folder, created with mode ``0o666`` minus the umask (as ``open`` would), then moved
onto its name with ``os.replace``. A reader, or a run killed mid-write, sees the old file
or the complete new one.

A checkpoint (:func:`save_checkpoint`) is three parts::

    minimal-eos checkpoint 1\\n
    {"sha256": ..., "bytes": ..., "meta": {...}}\\n
    <payload: torch.save of plain tensors, numbers, strings, lists, tuples and dicts>

:func:`load_checkpoint` reads the header, checks the payload's length and the SHA-256 of
``meta`` and payload, compares ``meta`` (the run's configuration, device and thread
count) with the caller's, naming the first field that differs, and only then unpickles
the payload with ``torch.load(weights_only=True)``, which builds tensors and plain
containers and never calls arbitrary code. Any failure is a :class:`CheckpointError`
of one line naming the file.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import uuid
from collections.abc import Callable
from typing import Any

import numpy as np

#: First line of every checkpoint file.
MAGIC = b"minimal-eos checkpoint 1\n"
#: Largest header line accepted (the configuration is a few kB).
MAX_HEADER = 1 << 20
#: The strings that stand for the floats strict JSON has no number for (the words of the
#: tokens Python's ``json`` writes by default, so old and new files spell them alike).
NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


class CheckpointError(ValueError):
    """A checkpoint that cannot be trusted or does not belong to this run (one line)."""


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` and move the result onto ``path`` in one ``os.replace``.

    The temporary file lies in the same folder, has a unique name, and is created with
    mode ``0o666`` minus the process umask, so the final file has the permissions of any
    file the user creates. A reader (or a run killed mid-write) sees either the old file
    or the complete new one, never a partial file.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json(path: str | os.PathLike, data: Any, *, allow_nan: bool = True) -> None:
    """Write ``data`` as indented JSON, atomically.

    With ``allow_nan=False`` the file is strict JSON: a NaN or infinity raises
    ValueError instead of writing the non-standard tokens ``NaN``/``Infinity``.
    """
    write_text(path, json.dumps(data, indent=2, allow_nan=allow_nan) + "\n", sync=True)


def write_text(path: str | os.PathLike, text: str, *, sync: bool = False) -> str:
    """Write ``text`` to ``path`` atomically (:func:`atomic_write`), newlines as given;
    with ``sync``, flushed to the disk (``os.fsync``) before it replaces the old file.
    Returns the path."""
    def _write(tmp: str) -> None:
        with open(tmp, "w", newline="") as fh:
            fh.write(text)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())

    atomic_write(path, _write)
    return os.fspath(path)


def json_ready(obj: Any, *, strict: bool = False) -> Any:
    """JSON-ready copy of ``obj``: keys as strings, tuples as lists, numpy scalars as Python
    numbers.

    With ``strict``, also a NaN or infinite float as the string ``"NaN"``, ``"Infinity"``
    or ``"-Infinity"`` (:data:`NONFINITE`): ``json.dumps(..., allow_nan=False)`` accepts the
    copy, and :func:`decode_nonfinite` inverts it, so that
    ``decode_nonfinite(json.loads(json.dumps(json_ready(x, strict=True))))`` equals ``x``
    with NaN in the places of NaN.
    """
    if isinstance(obj, np.generic):
        obj = obj.item()
    if strict and isinstance(obj, float) and not math.isfinite(obj):
        return "NaN" if math.isnan(obj) else ("Infinity" if obj > 0 else "-Infinity")
    if isinstance(obj, dict):
        return {str(k): json_ready(v, strict=strict) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_ready(v, strict=strict) for v in obj]
    return obj


def decode_nonfinite(obj: Any) -> Any:
    """Inverse of :func:`json_ready` with ``strict``: each string of :data:`NONFINITE` becomes its
    float; anything else (also the NaN tokens of files written before) is kept."""
    if isinstance(obj, str):
        return NONFINITE.get(obj, obj)
    if isinstance(obj, dict):
        return {k: decode_nonfinite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode_nonfinite(v) for v in obj]
    return obj


def write_strict_json(path: str | os.PathLike, data: Any) -> None:
    """:func:`write_json` of ``json_ready(data, strict=True)``: strict JSON that any tool
    reads, with NaN and infinities as strings; read it back with :func:`read_json`."""
    write_json(path, json_ready(data, strict=True), allow_nan=False)


def read_json(path: str | os.PathLike) -> Any:
    """The content of a JSON file, with the strings of :data:`NONFINITE` as floats.

    Reads the files of :func:`write_strict_json` and, as before, those written with the
    tokens ``NaN``/``Infinity``. Raises OSError or ValueError (``json.JSONDecodeError``)
    when the file cannot be read.
    """
    with open(path) as fh:
        return decode_nonfinite(json.load(fh))


def _plain_state(obj: Any, where: str = "state") -> Any:
    """``obj`` with numpy arrays as tensors and numpy scalars as Python numbers.

    Raises ValueError for anything but tensors, numbers, strings, None, and lists, tuples
    and dicts of them: what ``torch.load(weights_only=True)`` can read back.
    """
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise ValueError(f"{where} is an object array; a checkpoint holds numbers")
        return torch.from_numpy(obj.copy())
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str | int) or isinstance(k, bool):
                raise ValueError(f"{where} has the key {k!r}; a checkpoint's keys are "
                                 "strings or integers")
            out[k] = _plain_state(v, f"{where}[{k!r}]")
        return out
    if isinstance(obj, list | tuple):
        items = [_plain_state(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    raise ValueError(f"{where} holds a {type(obj).__name__}; a checkpoint holds tensors, "
                     "numbers, strings and containers of them")


def save_checkpoint(path: str | os.PathLike, state: dict, meta: dict) -> None:
    """Write ``state`` with its header ``meta`` and checksum, atomically.

    Parameters
    ----------
    path : path
        The checkpoint file.
    state : dict
        Tensors, numpy arrays (stored as tensors), numbers, strings, None and lists,
        tuples and dicts of them.
    meta : dict
        JSON-able description of the run that wrote it (configuration, device, threads);
        :func:`load_checkpoint` refuses the file when it differs from the reader's.

    Notes
    -----
    The header holds ``bytes = len(payload)`` and ``sha256 = SHA-256(canonical JSON of
    meta, a zero byte, payload)``; a flipped bit anywhere in the meta or the payload
    changes the digest (a collision would need ~2^128 work).
    """
    import torch

    buffer = io.BytesIO()
    torch.save(_plain_state(state), buffer)
    payload = buffer.getvalue()
    header = json.dumps({"sha256": _digest(meta, payload), "bytes": len(payload),
                         "meta": meta}, sort_keys=True, allow_nan=False).encode()

    def _write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(MAGIC + header + b"\n" + payload)
            fh.flush()
            os.fsync(fh.fileno())

    atomic_write(path, _write)


def load_checkpoint(path: str | os.PathLike, meta: dict) -> dict:
    """Read a checkpoint of :func:`save_checkpoint` after checking it in full.

    Parameters
    ----------
    path : path
        The checkpoint file.
    meta : dict
        What the reading run expects: the header's ``meta`` must be equal.

    Returns
    -------
    dict
        The state, as saved (numpy arrays come back as tensors).

    Raises
    ------
    CheckpointError
        One line naming the file: unreadable, empty, not a checkpoint, a truncated or
        altered payload (length or SHA-256), a header that differs from ``meta`` (naming
        the first differing field, its stored and its expected value), or a payload that
        holds anything but tensors and plain values.
    """
    import torch

    path = os.fspath(path)

    def bad(why: str) -> CheckpointError:
        return CheckpointError(f"checkpoint {path!r} {why}; remove it to start afresh")

    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise bad(f"cannot be read ({exc.strerror or exc})") from None
    if not data:
        raise bad("is empty")
    if not data.startswith(MAGIC):
        raise bad("is not a checkpoint of this program (wrong first line)")
    end = data.find(b"\n", len(MAGIC), len(MAGIC) + MAX_HEADER)
    if end < 0:
        raise bad("has no complete header (truncated or not a checkpoint)")
    try:
        header = json.loads(data[len(MAGIC):end])
        digest, size, stored = header["sha256"], header["bytes"], header["meta"]
        payload = data[end + 1:]
        actual = _digest(stored, payload)
    except (ValueError, TypeError, KeyError):
        raise bad("has an unreadable header") from None
    if len(payload) != size:
        raise bad(f"is truncated or extended: its payload has {len(payload)} bytes, its "
                  f"header says {size}")
    if actual != digest:
        raise bad("is corrupted: the SHA-256 of its content differs from the one in its "
                  "header")
    field = _first_difference(stored, meta)
    if field is not None:
        name, old, new = field
        raise CheckpointError(f"checkpoint {path!r} was written by a different run: {name} "
                              f"is {old!r} there and {new!r} here; remove it or use the same "
                              "options")
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise bad(f"holds more than tensors and plain values ({type(exc).__name__}: "
                  f"{first[:200]})") from None
    if not isinstance(state, dict):
        raise bad(f"holds a {type(state).__name__}, not a dict")
    return state


def _digest(meta: Any, payload: bytes) -> str:
    """SHA-256 (hex) of the canonical JSON of ``meta``, a zero byte, and ``payload``."""
    text = json.dumps(meta, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode() + b"\0" + payload).hexdigest()


def _first_difference(stored: Any, expected: Any, prefix: str = "") -> tuple | None:
    """``(field, stored value, expected value)`` of the first difference, in ``expected``'s
    order (nested dicts give dotted names), or None when they are equal."""
    if isinstance(expected, dict) and isinstance(stored, dict):
        for k, v in expected.items():
            name = f"{prefix}{k}"
            if k not in stored:
                return name, "<missing>", v
            diff = _first_difference(stored[k], v, name + ".")
            if diff is not None:
                return diff
        for k in stored:
            if k not in expected:
                return f"{prefix}{k}", stored[k], "<missing>"
        return None
    if _jsonable(stored) != _jsonable(expected):
        return prefix.rstrip("."), stored, expected
    return None


def _jsonable(value: Any) -> Any:
    """``value`` as JSON reads it back (tuples become lists)."""
    return json.loads(json.dumps(value))
