"""The disk cache of generated kernels: where it lives, reuse across processes, repair."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from minimal_eos import GD, SymbolicModel, reference_run
from minimal_eos._diskcache import ENV_VAR, cache_dir, entry_key

ROOT = Path(__file__).resolve().parents[2]
x = sp.Symbol("x")
# a loss no other test compiles, so that every process starts from the folder's content
MODEL = SymbolicModel((x**2 - 1) ** 2 / 4 + x**3 / 7, (x,))
ETAS = [0.2, 0.9]
THETA0 = [[0.3], [1.4]]
STEPS = 40
SCRIPT = f"""
import json
import sympy as sp
from minimal_eos import GD, SymbolicModel, simulate
x = sp.Symbol("x")
model = SymbolicModel((x**2 - 1) ** 2 / 4 + x**3 / 7, (x,))
res = simulate(model, GD(), {THETA0}, {STEPS}, eta={ETAS}, save=("theta",))
loop = model.kernels().loop
print(json.dumps({{"hits": sum(loop.stats.cache_hits.values()),
                  "misses": sum(loop.stats.cache_misses.values()),
                  "theta": res.theta.data.tolist()}}))
"""


def _process(folder: Path) -> dict:
    """Run SCRIPT in a fresh interpreter with the kernel cache in ``folder``."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update({ENV_VAR: str(folder), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _assert_correct(result: dict) -> None:
    """The trajectories equal the numpy update map, bit for bit."""
    for b, eta in enumerate(ETAS):
        ref = reference_run(MODEL, GD(), THETA0[b], np.full(STEPS, eta))
        np.testing.assert_array_equal(np.array(result["theta"])[b], ref)


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    """A cache folder filled by one process, and that process's result."""
    folder = tmp_path_factory.mktemp("kernels")
    return folder, _process(folder)


def _entry(folder: Path) -> Path:
    (path,) = folder.glob("k*.py")
    return path


def test_cache_folder_and_its_override(monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    monkeypatch.delenv(ENV_VAR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "minimal-eos"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "minimal-eos"


def test_entry_key_depends_on_the_text_only_through_its_hash():
    assert entry_key("a = 1\n") == entry_key("a = 1\n")
    assert entry_key("a = 1\n") != entry_key("a = 2\n")


def test_a_second_process_loads_the_compiled_loop_from_disk(warm):
    folder, first = warm
    assert first["misses"] >= 1 and first["hits"] == 0
    second = _process(folder)
    assert second["hits"] >= 1 and second["misses"] == 0
    assert second["theta"] == first["theta"]
    _assert_correct(second)


def test_a_module_file_holding_other_code_is_rewritten(warm):
    """A valid module of another loss under this entry's name is never run: it is replaced."""
    folder, _ = warm
    path = _entry(folder)
    good = path.read_text()
    other = SymbolicModel(x**2 / 2, (x,)).symbolic()
    path.write_text(other.module_source())
    result = _process(folder)
    assert result["misses"] >= 1  # compiled again from the right source
    assert path.read_text() == good
    _assert_correct(result)


def test_unreadable_numba_files_are_dropped_and_rebuilt(warm):
    # the entry's numba files are those the last process that compiled it wrote (the
    # fixture's, or the rewrite test's): no process of its own is needed to have them
    folder, _ = warm
    files = list((folder / "__pycache__").glob(f"{_entry(folder).stem}.*.nb[ic]"))
    assert files
    for f in files:
        f.write_bytes(b"\x80\x04garbage")
    result = _process(folder)
    assert result["misses"] >= 1
    _assert_correct(result)
    assert _process(folder)["hits"] >= 1  # and the rebuilt entry is used again


def test_an_unwritable_cache_folder_compiles_in_memory(monkeypatch, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(ENV_VAR, str(blocker / "kernels"))
    model = SymbolicModel(x**4 / 4 - x**2 / 3, (x,))
    assert model.loss([1.0]) == pytest.approx(1 / 4 - 1 / 3, rel=1e-15)
    assert not (blocker / "kernels").exists()
