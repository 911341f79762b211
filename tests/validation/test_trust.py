"""Files and processes, tried as a careless or hostile user would: corrupted and crafted
checkpoints, crafted CIFAR-10 batches, text where sympy expressions belong, the quick paper
build, sweep folders, permissions, strict JSON, and children of a killed parent."""

import hashlib
import io
import json
import os
import pickle
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
import sympy as sp
import torch

from validation import compare
from validation.checkpoint import (
    MAGIC,
    CheckpointError,
    atomic_write,
    load_checkpoint,
    save_checkpoint,
    write_json,
)
from validation.experiment import CHECKPOINT, checkpoint_meta, run_experiment

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: A run small enough to checkpoint in a few seconds; edge only (no second process).
ARGV = ["--dataset", "digits", "--n", "60", "--width", "8", "--eta", "1.0", "--steps", "40",
        "--checks", "edge", "--track-every", "3", "--checkpoint-every", "10", "--window", "10",
        "--no-figures", "--no-progress", "--threads", "1", "--device", "cpu"]


class _Marker:
    """Unpickling it calls ``open(path, "w")``: the file appears if the loader runs code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def _config(argv):
    return compare.config_from_args(compare.build_parser().parse_args(argv))


def _refused(argv, capsys, *matches):
    """``validation.compare`` exits 2 with one line on stderr that holds every match."""
    with pytest.raises(SystemExit) as exc:
        compare.main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for m in matches:
        assert m in err, err
    return err


# -- checkpoints ----------------------------------------------------------------------------
def test_checkpoint_round_trip_and_its_digest(tmp_path):
    state = {"w": torch.arange(5, dtype=torch.float64), "pair": (1.5, torch.ones(2)),
             "sigma": np.eye(2), "nan": float("nan"), "steps": [1, 2], "none": None,
             "gen": torch.Generator().manual_seed(3).get_state(), "n": np.int64(7)}
    meta = {"config": {"eta": 0.3}, "device": "cpu", "threads": 1}
    path = tmp_path / "c.pt"
    save_checkpoint(path, state, meta)
    back = load_checkpoint(path, meta)
    assert torch.equal(back["w"], state["w"]) and back["w"].dtype == torch.float64
    assert isinstance(back["pair"], tuple) and back["pair"][0] == 1.5
    np.testing.assert_array_equal(np.asarray(back["sigma"]), np.eye(2))
    assert np.isnan(back["nan"]) and back["steps"] == [1, 2] and back["none"] is None
    assert torch.equal(back["gen"], state["gen"]) and back["n"] == 7 and type(back["n"]) is int
    # independent route: the digest is SHA-256 of the canonical meta, a zero byte, the payload
    data = path.read_bytes()
    end = data.index(b"\n", len(MAGIC))
    header, payload = json.loads(data[len(MAGIC):end]), data[end + 1:]
    text = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    assert header["sha256"] == hashlib.sha256(text + b"\0" + payload).hexdigest()
    assert header["bytes"] == len(payload)
    with pytest.raises(ValueError, match=r"state\['bad'\] holds a object"):
        save_checkpoint(tmp_path / "d.pt", {"bad": object()}, meta)


def _spoil(data: bytes, how: str) -> bytes:
    end = data.index(b"\n", len(MAGIC))
    if how == "empty":
        return b""
    if how == "garbage":
        return os.urandom(200)
    if how == "truncated":
        return data[: len(data) - 100]
    if how == "payload bit":
        i = end + 1 + (len(data) - end) // 2
        return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]
    if how == "header bit":
        i = data.index(b'"eta": ', 0, end) + len(b'"eta": ')  # 0.3 -> 0.2 or 1.3
        return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]
    raise AssertionError(how)


@pytest.mark.parametrize("how, match", [
    ("empty", "is empty"), ("garbage", "not a checkpoint"), ("truncated", "truncated"),
    ("payload bit", "corrupted"), ("header bit", "corrupted"),
])
def test_a_spoiled_checkpoint_is_one_error(how, match, tmp_path):
    meta = {"config": {"eta": 0.3}, "device": "cpu", "threads": 1}
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"w": torch.linspace(0, 1, 1000)}, meta)
    path.write_bytes(_spoil(path.read_bytes(), how))
    with pytest.raises(CheckpointError, match=match) as exc:
        load_checkpoint(path, meta)
    assert "\n" not in str(exc.value) and str(path) in str(exc.value)


def test_a_checkpoint_of_another_run_names_the_first_field(tmp_path):
    meta = {"config": {"eta": 0.3, "width": 8}, "device": "cpu", "threads": 1}
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"w": torch.zeros(2)}, meta)
    for other, field in (({"config": {"eta": 0.5, "width": 8}}, "config.eta is 0.3 there and "
                                                                 "0.5 here"),
                         ({"config": {"eta": 0.3, "width": 9}}, "config.width is 8"),
                         ({"threads": 2}, "threads is 1 there and 2 here"),
                         ({"device": "cuda:0"}, "device is 'cpu' there")):
        with pytest.raises(CheckpointError, match=field):
            load_checkpoint(path, {**meta, **other})


def _crafted(path, marker, *, header: bool, meta=None):
    """A checkpoint whose unpickling opens ``marker``: a bare pickle (what ``torch.load``
    with ``weights_only=False`` ran), or one behind a valid header and checksum."""
    buf = io.BytesIO()
    torch.save({"runs": _Marker(marker)}, buf)
    payload = buf.getvalue()
    if not header:
        path.write_bytes(payload)
        return
    text = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    head = json.dumps({"sha256": hashlib.sha256(text + b"\0" + payload).hexdigest(),
                       "bytes": len(payload), "meta": meta}).encode()
    path.write_bytes(MAGIC + head + b"\n" + payload)


@pytest.mark.parametrize("header", [False, True])
def test_a_crafted_checkpoint_runs_nothing(header, tmp_path, capsys):
    out, marker = tmp_path / "out", tmp_path / "marker"
    out.mkdir()
    argv = [*ARGV, "--out", str(out), "--resume"]
    _crafted(out / CHECKPOINT, marker, header=header,
             meta=checkpoint_meta(_config(argv), "cpu") | {"threads": 1})
    with pytest.raises(CheckpointError):
        load_checkpoint(out / CHECKPOINT, checkpoint_meta(_config(argv), "cpu"))
    _refused(argv, capsys, "argument --resume", "checkpoint")
    assert not marker.exists()


@pytest.fixture(scope="module")
def real_checkpoint(tmp_path_factory):
    """The bytes of a checkpoint of ``ARGV``'s run at step 20, and that run's records."""
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("ckpt")
    config = _config(ARGV)
    run_experiment(config, out_dir=folder, device="cpu", stop_after=25)
    data = (folder / CHECKPOINT).read_bytes()
    resumed = run_experiment(config, out_dir=folder, device="cpu", resume=True)
    return data, resumed


def test_a_resumed_run_equals_an_uninterrupted_one(real_checkpoint):
    _, resumed = real_checkpoint
    whole = run_experiment(_config(ARGV), device="cpu")
    assert resumed["resumed_from"] == 20
    assert resumed["runs"]["main"]["loss"] == whole["runs"]["main"]["loss"]
    assert resumed["runs"]["main"]["sharpness"] == whole["runs"]["main"]["sharpness"]
    assert resumed["runs"]["main"]["x"] == whole["runs"]["main"]["x"]


@pytest.mark.parametrize("how, extra, match", [
    ("empty", [], "is empty"), ("garbage", [], "not a checkpoint"),
    ("truncated", [], "truncated"), ("payload bit", [], "corrupted"),
    ("header bit", [], "corrupted"),
    (None, ["--eta", "0.9"], "config.eta is 1.0 there and 0.9 here"),
    (None, ["--threads", "2"], "threads is 1 there and 2 here"),
])
def test_compare_refuses_a_bad_checkpoint(how, extra, match, real_checkpoint, tmp_path, capsys):
    data, _ = real_checkpoint
    if "--threads" in extra and (os.cpu_count() or 1) < 2:
        pytest.skip("needs two cores for --threads 2")
    (tmp_path / CHECKPOINT).write_bytes(data if how is None else _spoil(data, how))
    try:
        _refused([*ARGV, *extra, "--out", str(tmp_path), "--resume"], capsys, match)
    finally:
        torch.set_num_threads(1)
    assert not (tmp_path / "report.json").exists()


# -- CIFAR-10 batches ---------------------------------------------------------------------------
def test_a_crafted_cifar_batch_runs_nothing(tmp_path, cifar_batch, write_pickle, capsys):
    from validation.data import read_cifar_batch

    marker = tmp_path / "marker"
    batch = cifar_batch(20)
    batch[b"filenames"] = _Marker(marker)
    write_pickle(tmp_path / "data_batch_1", batch)
    with pytest.raises(ValueError, match=r"io\.open"):
        read_cifar_batch(tmp_path / "data_batch_1")
    _refused(["--dataset", "cifar10", "--cifar-path", str(tmp_path), "--n", "20",
              "--out", str(tmp_path / "out")], capsys, "--cifar-path", "io.open")
    assert not marker.exists()


def test_a_cifar_batch_holds_only_arrays_lists_and_text(tmp_path, cifar_batch):
    from validation.data import read_cifar_batch

    path = tmp_path / "data_batch_1"
    for spoil, match in (({b"extra": {1, 2}}, "of type set"), ({3: b"x"}, "key of type int"),
                         ({b"filenames": [1.5]}, "item of type float"),
                         ({b"data": np.array([1] * 3072, dtype=object).reshape(1, -1)},
                          "dtype object")):
        with open(path, "wb") as fh:  # protocol 4 builds sets and dicts without any global
            pickle.dump({**cifar_batch(1), **spoil}, fh, protocol=4)
        with pytest.raises(ValueError, match=match):
            read_cifar_batch(path)
    # protocol 2 spells bytes as _codecs.encode(text, "latin1"); no other codec is reached
    path.write_bytes(b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x05\x00\x00\x00rot13"
                     b"\x86R.")
    with pytest.raises(ValueError, match="rot13"):
        read_cifar_batch(path)


# -- sympy input --------------------------------------------------------------------------------
def test_text_is_never_evaluated_as_a_sympy_expression(tmp_path):
    from analysis.maps import GDMap
    from minimal_eos import ScalarNetwork
    from minimal_eos.scalar_theory import flip_coefficients
    from minimal_eos.symbolic import SymbolicLoss

    marker = tmp_path / "marker"
    x = sp.Symbol("x")
    code = f"open({str(marker)!r}, 'w') and x**2"
    with pytest.raises(ValueError, match="expr must be a sympy expression"):
        SymbolicLoss((x,), code)
    with pytest.raises(ValueError, match="expr must be a sympy expression"):
        flip_coefficients(code, x, 1)
    with pytest.raises(ValueError, match="x_star must be a sympy expression"):
        flip_coefficients((x**2 - 1)**2, x, code)
    with pytest.raises(ValueError, match="eta must be a sympy expression"):
        GDMap(ScalarNetwork(depth=2), eta=0.5).symbolic(eta=code)
    assert not marker.exists()
    # numbers and expressions still work
    assert flip_coefficients((x**2 - 1)**2 / 4, x, 1)["condition"] == 96
    assert SymbolicLoss((x,), 2).expr == 2


# -- the quick paper build ---------------------------------------------------------------------
def test_a_quick_paper_build_never_writes_into_paper(monkeypatch, capsys):
    import paper.__main__ as cli
    import paper.build
    from paper.build import DEFAULT_OUT, QUICK_OUT, output_folder

    assert output_folder(None, quick=True) == QUICK_OUT != DEFAULT_OUT
    assert output_folder(None, quick=False) == DEFAULT_OUT
    with pytest.raises(ValueError, match="never writes into"):
        output_folder(DEFAULT_OUT + os.sep, quick=True)
    with pytest.raises(SystemExit) as exc:
        cli.main(["--quick", "--out", DEFAULT_OUT])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "never writes into" in err
    seen = {}

    def fake_build(modules, *, quick, out, **kwargs):
        seen.update(quick=quick, out=out)
        return {"figures": {}, "computed": 0, "results": 0, "mode": "quick"}

    monkeypatch.setattr(paper.build, "build", fake_build)
    assert cli.main(["--quick", "--no-progress"]) == 0
    assert seen == {"quick": True, "out": QUICK_OUT}
    ignored = subprocess.run(["git", "check-ignore", "-q", os.path.join(QUICK_OUT, "paper.md")],
                             cwd=ROOT)
    assert ignored.returncode == 0, "paper/quick is not git-ignored"


# -- files --------------------------------------------------------------------------------------
@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_files_are_written_with_the_umask_and_unique_temporary_names(tmp_path, umask_022):
    from paper.writer import write_paper
    from validation.cache import Cache, Job

    write_json(tmp_path / "a.json", {"x": 1})
    save_checkpoint(tmp_path / "c.pt", {"w": torch.zeros(1)}, {})
    cache = Cache(tmp_path / "cache")
    npz = cache.save(Job("sq", {"n": 1}, dict), {"x": np.zeros(2)})
    info = {"mode": "quick", "cpus": 1, "workers": 1, "from_scratch": True, "results": 0,
            "wall_s": 1.0, "results_s": 0.0, "computed": 0}
    md = write_paper(str(tmp_path / "paper"), [], info)
    for path in (tmp_path / "a.json", tmp_path / "c.pt", npz, md,
                 tmp_path / "paper" / "numbers.json", tmp_path / "paper" / "build.json"):
        assert _mode(path) == 0o644, (path, oct(_mode(path)))
    names = []
    for _ in range(2):
        atomic_write(tmp_path / "b.txt", lambda tmp: (names.append(tmp), open(tmp, "w").close()))
    assert len(set(names)) == 2 and all(os.path.dirname(n) == str(tmp_path) for n in names)
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def test_the_paper_writer_never_leaves_half_a_json_file(tmp_path):
    from paper.writer import write_paper

    info = {"mode": "quick", "cpus": 1, "workers": 1, "from_scratch": True, "results": 0,
            "wall_s": 1.0, "results_s": 0.0, "computed": 0}
    write_paper(str(tmp_path), [], info)
    before = (tmp_path / "build.json").read_text()
    with pytest.raises(TypeError):
        write_paper(str(tmp_path), [], {**info, "bad": object()})
    assert (tmp_path / "build.json").read_text() == before
    assert sorted(os.listdir(tmp_path)) == ["build.json", "numbers.json", "paper.md"]


def test_report_json_is_strict_json_with_reasons_for_nulls(tmp_path):
    from validation.report import NULL_REASONS, write_report

    report = {"predictions": [{"name": "p", "measured": float("nan"), "error": float("inf"),
                               "holds": False}],
              "records": {"cf_loss": [1.0, float("nan"), np.float64("nan")],
                          "sharpness": [(0, 2.0), (5, float("-inf"))]},
              "summary": {"cf_edge_gap": float("nan"), "n": 3}}
    path = write_report(tmp_path, report)

    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")

    with open(path) as fh:
        back = json.loads(fh.read(), parse_constant=refuse)
    row = back["predictions"][0]
    assert row["measured"] is None and row["error"] is None and row["holds"] is False
    assert row[NULL_REASONS] == {"measured": "NaN: undefined or not computed", "error": "+inf"}
    assert back["records"]["cf_loss"] == [1.0, None, None]
    assert back["records"][NULL_REASONS] == {
        "cf_loss": "2 of 3 entries were NaN or infinite",
        "sharpness": "1 of 4 entries were NaN or infinite"}
    assert back["summary"] == {"cf_edge_gap": None, "n": 3,
                               NULL_REASONS: {"cf_edge_gap": "NaN: undefined or not computed"}}


# -- sweeps -------------------------------------------------------------------------------------
SWEEP_BASE = {"dataset": "synthetic", "n": 100, "steps": 30, "track_every": 2}


def _spec_file(folder, spec):
    path = os.path.join(folder, "spec.json")
    with open(path, "w") as fh:
        json.dump(spec, fh)
    return path


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", ".hidden", "", "x y"])
def test_a_sweep_name_that_is_a_path_is_refused(name, tmp_path, capsys, monkeypatch):
    from validation.sweep import expand_spec, main

    monkeypatch.chdir(tmp_path)
    spec = {"name": name, "base": SWEEP_BASE}
    with pytest.raises(ValueError, match="name must be a plain file name"):
        expand_spec(spec)
    with pytest.raises(SystemExit) as exc:
        main([_spec_file(tmp_path, spec), "--no-progress"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "plain file name" in err, err
    assert os.listdir(tmp_path) == ["spec.json"]


def _done(out, entries):
    """Result files for ``entries``, as finished tasks would have written them."""
    from validation.sweep import result_path

    for e in entries:
        write_json(result_path(out, e.key), {"key": e.key, "status": "done"})


def test_two_sweeps_never_share_an_output_folder(tmp_path, capsys):
    import fcntl

    from validation.sweep import INDEX, LOCK, expand_spec, main, run_sweep

    first = expand_spec({"base": SWEEP_BASE, "grid": {"eta": [0.5, 1.0]}})
    _done(tmp_path, first)
    outcome = run_sweep(first, tmp_path, progress=False)  # every result there: no cluster
    assert outcome.complete and len(json.load(open(tmp_path / INDEX))["configurations"]) == 2
    # the same sweep again is welcome; another spec, or other threads, is refused
    run_sweep(first, tmp_path, progress=False)
    for other in (expand_spec({"base": SWEEP_BASE, "grid": {"eta": [0.5, 2.0]}}),
                  expand_spec({"base": SWEEP_BASE, "grid": {"eta": [0.5, 1.0]}}, threads=2)):
        with pytest.raises(ValueError, match="holds the results of another sweep"):
            run_sweep(other, tmp_path, progress=False)
    spec = _spec_file(tmp_path.parent, {"base": SWEEP_BASE, "grid": {"eta": [0.7]}})
    with pytest.raises(SystemExit) as exc:
        main([spec, "--out", str(tmp_path), "--no-progress", "--no-figures"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and "another sweep" in err, err
    assert len(json.load(open(tmp_path / INDEX))["configurations"]) == 2
    # a sweep running in the folder holds its lock
    with open(tmp_path / LOCK, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ValueError, match="another sweep is running"):
            run_sweep(first, tmp_path, progress=False)
    run_sweep(first, tmp_path, progress=False)  # released with the file


def test_threads_are_part_of_the_key_and_of_the_checkpoint(tmp_path):
    from validation.sweep import make_entry, run_configuration

    one, two = make_entry(SWEEP_BASE), make_entry(SWEEP_BASE, threads=2)
    assert one.key != two.key and (one.threads, two.threads) == (1, 2)
    config = make_entry({**SWEEP_BASE, "checkpoint_every": 4}).config
    run_experiment(config, out_dir=tmp_path, device="cpu", stop_after=12)
    try:
        rec = run_configuration(config, "cpu", threads=2, checkpoint_dir=str(tmp_path))
    finally:
        torch.set_num_threads(1)
    assert rec["status"] == "failed" and "threads is 1 there and 2 here" in rec["error"]


def test_a_sweep_task_refuses_a_crafted_checkpoint(tmp_path):
    from validation.sweep import make_entry, run_configuration

    marker = tmp_path / "marker"
    config = make_entry(SWEEP_BASE).config
    _crafted(tmp_path / CHECKPOINT, marker, header=False)
    rec = run_configuration(config, "cpu", checkpoint_dir=str(tmp_path))
    assert rec["status"] == "failed" and "not a checkpoint" in rec["error"]
    assert not marker.exists()


# -- children of a killed parent -----------------------------------------------------------------
def _children(pid: int) -> set:
    """Every descendant of ``pid`` (from /proc)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pids) -> set:
    out = set()
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] != "Z":
                    out.add(p)
        except OSError:
            pass
    return out


def _cmdline(pid) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _kill_and_watch(cmd, ready, count, env=None):
    """Start ``cmd``, wait until ``count`` descendants exist and ``ready(cmdlines)``,
    SIGKILL it, and return the descendants still alive after at most 20 s."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    kids: set = set()
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            kids = _children(proc.pid)
            if len(kids) >= count and ready([_cmdline(k) for k in kids]):
                break
            time.sleep(0.2)
        assert len(kids) >= count and proc.poll() is None, "the children never started"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 20
    while _alive(kids) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _alive(kids)
    for p in left:  # do not leave them to the next test
        os.kill(p, signal.SIGKILL)
    return left


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.timeout(600)
def test_the_quadratic_check_worker_dies_with_compare(tmp_path):
    cmd = [sys.executable, "-m", "validation.compare", *ARGV, "--steps", "2000",
           "--checks", "edge,quadratic-thresholds", "--no-cache", "--out", str(tmp_path)]
    # the worker and the resource tracker, once the worker has begun (it compiles kernels)
    left = _kill_and_watch(cmd, lambda lines: any("spawn_main" in c for c in lines), 2)
    assert not left, f"children alive 20 s after the parent's SIGKILL: {left}"


#: A sweep's local cluster running a task that holds the GIL (a regular expression that
#: backtracks for hours), so that no thread of the worker can act on its parent's death.
HOLD_THE_GIL = """
import pathlib, sys, time
from validation.sweep import local_cluster

def hold(flag):
    import re
    pathlib.Path(flag).touch()
    re.match(r"(a+)+$", "a" * 64 + "b")

if __name__ == "__main__":
    cluster, client = local_cluster(1, [], None)
    future = client.submit(hold, sys.argv[1])
    time.sleep(600)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.timeout(600)
def test_sweep_workers_die_with_the_sweep_even_holding_the_gil(tmp_path):
    script, flag = tmp_path / "hold.py", tmp_path / "running"
    script.write_text(HOLD_THE_GIL)
    env = {**os.environ, "PYTHONPATH": ROOT}
    # the worker has begun its task, and the resource tracker
    left = _kill_and_watch([sys.executable, str(script), str(flag)], lambda _: flag.exists(),
                           2, env=env)
    assert not left, f"children alive 20 s after the parent's SIGKILL: {left}"
