"""Generated kernel modules kept on disk, so that numba compiles each structure once.

:func:`import_generated` writes a generated module to the cache folder as
``k<key>.py``, where ``key`` is a SHA-256 of its text and of the numba, numpy and Python
versions, and imports it from there; its functions are compiled with numba's
``cache=True``, so numba stores the machine code in the folder's ``__pycache__`` and a
later process loads it instead of compiling.

The folder is ``$MINIMAL_EOS_CACHE`` when set, else ``$XDG_CACHE_HOME/minimal-eos``, else
``~/.cache/minimal-eos``; deleting it is always safe. An entry is checked on every import:
a module file whose text differs from the text it must hold (truncated, edited, written by
another version) is rewritten, atomically, and numba's files for it are dropped; numba
files that cannot be read back are dropped too, so that numba compiles again. When the
folder cannot be written the module is compiled in memory, without a disk cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pickle
import sys
import tempfile
import types
from pathlib import Path

import numba
import numpy as np

ENV_VAR = "MINIMAL_EOS_CACHE"


def cache_dir() -> Path:
    """The folder of the kernel cache (see the module docstring)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "minimal-eos"


def entry_key(text: str) -> str:
    """Key of a module text: SHA-256 of the text and of the numba, numpy, Python versions."""
    versions = f"numba {numba.__version__}; numpy {np.__version__}; python {sys.version}"
    return hashlib.sha256(f"{versions}\n{text}".encode()).hexdigest()[:32]


def import_generated(text: str, *, in_memory_text: str | None = None) -> types.ModuleType:
    """Import the module ``text`` from the cache folder (written there if needed).

    ``in_memory_text`` is the same module without numba's disk cache, used when the folder
    cannot be written.
    """
    key = entry_key(text)
    name = f"minimal_eos_kernels_{key}"
    if name in sys.modules:
        return sys.modules[name]
    folder = cache_dir()
    path = folder / f"k{key}.py"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if _read(path) != text:
            _drop_numba_files(path, lambda _: True)
            _write_atomically(path, text)
    except OSError:
        return _exec_in_memory(name, in_memory_text if in_memory_text is not None else text)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    # numba's data files name the module, so they are read back once it is imported
    _drop_numba_files(path, lambda f: not _readable_pickle(f))
    return module


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, UnicodeDecodeError):
        return None


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _drop_numba_files(path: Path, bad) -> None:
    """Delete numba's index and data files of the module ``path`` for which ``bad(file)``."""
    pycache = path.parent / "__pycache__"
    for f in pycache.glob(f"{path.stem}.*.nb[ic]"):
        if bad(f):
            f.unlink(missing_ok=True)


def _readable_pickle(path: Path) -> bool:
    """Whether numba's file ``path`` unpickles (an index holds two pickles in a row)."""
    try:
        with open(path, "rb") as f:
            pickle.load(f)
            if path.suffix == ".nbi":
                pickle.loads(f.read())
        return True
    except Exception:
        return False


def _exec_in_memory(name: str, text: str) -> types.ModuleType:
    module = types.ModuleType(name)
    exec(compile(text, f"<{name}>", "exec"), module.__dict__)
    return module
