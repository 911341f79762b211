"""The paper's build: cache files named by their configuration, and the quick build end to end."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from paper.build import load_modules
from paper.cache import SECONDS, Cache, Job, config_hash


def _square(config: dict) -> dict:
    x = np.arange(config["n"], dtype=float)
    return {"x": x, "sum": float(np.sum(x**2)), "name": config["name"], "nested": [1, 2.5]}


def test_hash_is_stable_and_depends_on_everything():
    a = config_hash("k", {"b": 1, "a": [1.0, 2]})
    assert a == config_hash("k", {"a": [1.0, 2], "b": 1})  # key order does not matter
    assert a == config_hash("k", {"a": (1.0, 2), "b": 1})  # tuples are lists
    assert len({a, config_hash("k", {"b": 2, "a": [1.0, 2]}),
                config_hash("j", {"b": 1, "a": [1.0, 2]}),
                config_hash("k", {"b": 1, "a": [1.0, 2]}, version=2)}) == 4
    # Independent route: the SHA-256 of the canonical JSON written out by hand.
    literal = b'{"config":{"n":3,"x":0.1},"kind":"k","version":1}'
    assert config_hash("k", {"x": 0.1, "n": 3}) == hashlib.sha256(literal).hexdigest()[:16]


def test_bad_configs_and_results_raise(tmp_path):
    with pytest.raises(ValueError, match="finite"):
        config_hash("k", {"x": float("nan")})
    with pytest.raises(ValueError, match="JSON-able"):
        config_hash("k", {"x": object()})
    with pytest.raises(ValueError, match="kind"):
        Job("bad kind", {}, _square)
    job = Job("sq", {"n": 2, "name": "a"}, lambda c: {"x": np.array([object()])})
    with pytest.raises(ValueError, match="object array"):
        Cache(tmp_path).get(job)
    assert not os.listdir(tmp_path)  # nothing half-written


def test_cache_round_trip_and_force(tmp_path):
    calls = []

    def counted(config):
        calls.append(1)
        return _square(config)

    cache = Cache(tmp_path)
    job = Job("sq", {"n": 4, "name": "four"}, counted)
    first = cache.get(job)
    assert cache.path(job).endswith(f"sq-{config_hash('sq', job.config)}.npz")
    np.testing.assert_array_equal(first["x"], np.arange(4.0))
    assert first["sum"] == 14.0 and first["name"] == "four" and first["nested"] == [1, 2.5]
    assert first[SECONDS] >= 0
    again = cache.get(job)
    assert len(calls) == 1  # read from the file
    np.testing.assert_array_equal(again["x"], first["x"])
    cache.get(job, force=True)
    assert len(calls) == 2
    other = Job("sq", {"n": 5, "name": "four"}, counted)
    assert cache.path(other) != cache.path(job)


def test_a_job_with_a_work_folder_resumes_from_it(tmp_path):
    """A ``workdir`` job gets ``<cache>/<key>.work``; what a killed attempt left there is
    what the next attempt finds."""
    def steps(config, workdir):
        os.makedirs(workdir, exist_ok=True)
        done = [f for f in os.listdir(workdir) if f.startswith("step")]
        for i in range(len(done), config["n"]):
            if i == config["die_at"] and not os.path.exists(os.path.join(workdir, "died")):
                open(os.path.join(workdir, "died"), "w").close()
                raise KeyboardInterrupt
            open(os.path.join(workdir, f"step{i}"), "w").close()
        return {"files": sorted(os.listdir(workdir))}

    cache = Cache(tmp_path)
    job = Job("resumable", {"n": 4, "die_at": 2}, steps, workdir=True)
    assert cache.workdir(job) == os.path.join(str(tmp_path), job.key + ".work")
    with pytest.raises(KeyboardInterrupt):
        cache.get(job)
    assert not cache.has(job) and sorted(os.listdir(cache.workdir(job))) == [
        "died", "step0", "step1"]
    assert cache.get(job)["files"] == ["died", "step0", "step1", "step2", "step3"]
    # forced: the work folder is cleared first, so the job starts over
    with pytest.raises(KeyboardInterrupt):
        cache.get(job, force=True)
    assert sorted(os.listdir(cache.workdir(job))) == ["died", "step0", "step1"]
    assert cache.get(Job("plain", {"n": 2, "name": "x"}, _square))["sum"] == 1.0


def test_figure_selection():
    modules = load_modules(None)
    numbers = [m.NUMBER for m in modules]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)
    assert len({m.NAME for m in modules}) == len(modules)
    chosen = load_modules([modules[-1].NAME, str(modules[0].NUMBER)])
    assert chosen == [modules[0], modules[-1]]
    with pytest.raises(ValueError, match="unknown figure 'nope'"):
        load_modules(["nope"])


def test_cli_errors_are_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "paper", "--only", "nope", "--out",
                           str(tmp_path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "unknown figure 'nope'" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "paper", "--jobs", "0", "--out",
                           str(tmp_path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "--jobs must be >= 1" in proc.stderr


@pytest.mark.slow
def test_quick_build(tmp_path, full):
    """``python -m paper --quick`` writes every figure and a paper.md that shows each one.

    Default: the quick build, then a rebuild from the cache that must give the same
    numbers. With ``--full``: the rebuild recomputes every result (``--force``) and the
    numbers must still be identical (runs are deterministic on the CPU).
    """
    out = tmp_path / "paper"
    cmd = [sys.executable, "-m", "paper", "--quick", "--out", str(out), "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = (out / "paper.md").read_text()
    modules = load_modules(None)
    for m in modules:
        png = out / "figures" / f"fig{m.NUMBER:02d}-{m.NAME}.png"
        assert png.exists() and png.stat().st_size > 10_000, png
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"](figures/{png.name})" in text, png.name
        assert f"## Figure {m.NUMBER}. {m.TITLE}" in text
    embedded = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert len(embedded) == len(modules)
    assert "{" not in text and "}" not in text  # no unfilled template field
    numbers = json.loads((out / "numbers.json").read_text())
    assert set(numbers) == {m.NAME for m in modules}
    build = json.loads((out / "build.json").read_text())
    assert build["mode"] == "quick" and build["from_scratch"]
    cached = sorted(f for f in os.listdir(out / "cache") if f.endswith(".npz"))
    assert len(cached) == build["results"]
    rebuild = cmd + (["--force"] if full else [])
    proc = subprocess.run(rebuild, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((out / "numbers.json").read_text()) == numbers
    assert sorted(f for f in os.listdir(out / "cache") if f.endswith(".npz")) == cached
    again = json.loads((out / "build.json").read_text())
    assert again["computed"] == (again["results"] if full else 0)
    # --only ... --text prints the figure's own section, the one paper.md embeds
    first = modules[0]
    shown = subprocess.run([*cmd, "--only", first.NAME, "--text"], capture_output=True,
                           text=True, check=False)
    assert shown.returncode == 0, shown.stderr[-3000:]
    section = text.split(f"## Figure {first.NUMBER}. ")[1].split("\n## Figure ")[0]
    printed = shown.stdout.split(f"## Figure {first.NUMBER}. ")[1]
    body = [line for line in section.splitlines() if line and not line.startswith("![")]
    assert body and all(line in printed for line in body[1:])


def test_last_build_from_scratch_is_quoted_only_for_the_same_results(tmp_path):
    """The timing of the last build from scratch is kept while the results are the same ones
    (same number, same recorded compute seconds), and dropped once they change."""
    from paper.writer import write_paper

    def info(scratch: bool, results: int, results_s: float) -> dict:
        return {"mode": "full", "workers": 2, "cpus": 2, "results": results,
                "computed": results if scratch else 0, "from_scratch": scratch,
                "results_s": results_s, "compute_wall_s": 1.0, "wall_s": 100.0,
                "figures": {}}

    def last() -> dict | None:
        return json.loads((tmp_path / "build.json").read_text())["last_from_scratch"]

    write_paper(str(tmp_path), [], info(True, 3, 50.0))
    assert last()["wall_s"] == 100.0
    write_paper(str(tmp_path), [], info(False, 3, 50.0))
    assert last() is not None and "from scratch" in (tmp_path / "paper.md").read_text()
    write_paper(str(tmp_path), [], info(False, 4, 60.0))
    assert last() is None
    assert "from scratch" not in (tmp_path / "paper.md").read_text()
