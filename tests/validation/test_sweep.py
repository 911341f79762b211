"""Sweeps on dask.distributed: specs, keys, measurements, and whole sweeps on a local cluster.

The cluster tests share one LocalCluster of two worker processes (one thread each, bound
to 127.0.0.1, no dashboard). Configurations are tiny (100 synthetic examples, width <= 16,
30 steps) so that a task takes about a second once its worker has imported torch.
"""

import hashlib
import json
import math
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from validation.experiment import Config, run_experiment
from validation.sweep import (
    INDEX,
    config_key,
    expand_spec,
    load_spec,
    main,
    make_entry,
    measure,
    read_result,
    result_path,
    run_configuration,
    run_sweep,
)
from validation.sweep_report import FIGURES, format_summary, summary_rows

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = {"dataset": "synthetic", "n": 100, "steps": 30, "track_every": 2}
SPEC = {"name": "tiny", "base": TINY,
        "grid": {"eta": [0.6, 1.0], "width": [8, 16], "depth": [1, 2]}}
#: Fields of a record that say where and how fast it ran, not what it computed.
WHERE = ("worker", "host", "seconds")


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def first_sweep(client, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    entries = expand_spec(SPEC)
    outcome = run_sweep(entries, out, client=client, progress=False, spec=SPEC)
    return out, entries, outcome


def _load(path):
    with open(path) as fh:
        return json.load(fh)


def _what(rec: dict) -> dict:
    return {k: v for k, v in rec.items() if k not in WHERE}


# -- specs and keys (no cluster) ------------------------------------------------------------------
def test_grid_is_a_cartesian_product_then_the_list():
    spec = {"base": {"steps": 40, "n": 50},
            "grid": {"eta": [0.1, 0.2], "width": [8, 16, 32]},
            "configs": [{"eta": 0.05, "depth": 3}, {"eta": 0.1, "width": 8}]}
    entries = expand_spec(spec)
    # 2 x 3 grid points, the last key fastest; the second listed configuration repeats the
    # first grid point and is dropped
    assert [(e.config.eta, e.config.width) for e in entries[:6]] == [
        (0.1, 8), (0.1, 16), (0.1, 32), (0.2, 8), (0.2, 16), (0.2, 32)]
    assert len(entries) == 7
    assert entries[6].config.depth == 3 and entries[6].config.eta == 0.05
    for e in entries:
        assert e.config.steps == 40 and e.config.n == 50
        assert e.config.checks == ("edge",)  # the sweep's default
        assert e.device == "cpu" and e.resources is None
    assert entries[6].overrides == {"steps": 40, "n": 50, "eta": 0.05, "depth": 3}
    assert len(expand_spec({"base": {"eta": 0.2}})) == 1


def test_cuda_configurations_need_a_gpu_resource():
    assert make_entry({"device": "cuda"}).resources == {"GPU": 1}
    assert make_entry({"device": "cuda:1"}).resources == {"GPU": 1}
    assert make_entry({"device": "auto"}).resources is None


def test_key_is_the_hash_of_the_full_configuration():
    e = make_entry({"eta": 0.5, "width": 16})
    # an independent route: SHA-256 of the canonical JSON of every field, the device and
    # the torch threads
    text = json.dumps({"config": Config(eta=0.5, width=16, checks=("edge",)).to_dict(),
                       "device": "cpu", "threads": 1}, sort_keys=True, separators=(",", ":"))
    assert e.key == hashlib.sha256(text.encode()).hexdigest()[:16]
    assert config_key(e.config, "cpu") == e.key
    # the order of the fields and an integer for a float field do not matter
    assert make_entry({"width": 16, "eta": 0.5}).key == e.key
    assert make_entry({"width": 16, "eta": 0.5, "drop_factor": 2}).key == e.key
    # any other value, a default made explicit with another value, or the device does
    assert make_entry({"eta": 0.5, "width": 16, "seed": 1}).key != e.key
    assert make_entry({"eta": 0.5, "width": 16, "checks": ["edge", "momentum"]}).key != e.key
    assert make_entry({"eta": 0.5, "width": 16, "device": "auto"}).key != e.key
    assert make_entry({"eta": 0.5, "width": 16}, threads=2).key != e.key


@pytest.mark.parametrize(("spec", "match"), [
    ({"grid": {"eta": [0.1]}, "sweep": 1}, "unknown spec key 'sweep'"),
    ({"grid": {"learning_rate": [0.1]}}, "unknown field 'learning_rate' in grid"),
    ({"base": {"widht": 3}}, "unknown field 'widht' in base"),
    ({"grid": {"eta": 0.1}}, "grid field 'eta' must be a non-empty list"),
    ({"grid": {"eta": []}}, "grid field 'eta' must be a non-empty list"),
    ({"configs": {"eta": 0.1}}, "configs must be a non-empty list"),
    ({"configs": [{"eta": 0.1}, 3]}, r"configs\[1\] must be a JSON object"),
    ({"grid": {"eta": [0.1, -0.2]}}, r"configuration 1 .*eta must be a finite number > 0"),
    ({"configs": [{"width": 0}]}, r"configuration 0 .*width must be an integer >= 1"),
    ({"base": {"device": "tpu"}}, "unknown device 'tpu'"),
    ({"base": {"checks": "edge"}}, "checks must be a list"),
    ({"base": {"optimizer": "adagrad"}}, "unknown optimizer 'adagrad'"),
])
def test_bad_specs_are_rejected_naming_the_problem(spec, match):
    with pytest.raises(ValueError, match=match):
        expand_spec(spec)


def test_the_example_spec_is_valid():
    spec = load_spec(os.path.join(ROOT, "validation", "sweeps", "example.json"))
    entries = expand_spec(spec)
    assert len(entries) == 27 and len({e.key for e in entries}) == 27
    assert {e.config.dataset for e in entries} == {"mnist1d"}


def test_a_task_resumes_from_its_checkpoint(tmp_path):
    # what a task rerun after its worker died finds: a checkpoint from step 12
    config = make_entry({**TINY, "eta": 1.0, "width": 8, "checkpoint_every": 4}).config
    ckpt = tmp_path / "ckpt"
    partial = run_experiment(config, out_dir=ckpt, device="cpu", stop_after=12)
    assert not partial["complete"] and (ckpt / "checkpoint.pt").exists()
    rec = run_configuration(config, "cpu", checkpoint_dir=str(ckpt))
    assert rec["status"] == "done" and rec["resumed_from"] == 12
    assert not ckpt.exists()  # removed once the run is complete
    whole = run_configuration(config, "cpu")
    assert whole["resumed_from"] is None
    # the resumed run ends with the records of an uninterrupted one (JSON text: NaN == NaN)
    assert json.dumps([rec["series"], rec["measurements"]]) == json.dumps(
        [whole["series"], whole["measurements"]])


def test_a_task_reports_its_exception():
    rec = run_configuration(Config(dataset="cifar10", cifar_path="no/such/folder"), "cpu")
    assert rec["status"] == "failed" and rec["error"].startswith("ValueError: cifar_path")
    assert "Traceback" in rec["traceback"] and rec["worker"] is None


# -- measurements (no cluster) --------------------------------------------------------------------
def _results(sharpness, eta, loss=(1.0, 0.5)):
    return {"runs": {"main": {"edge": 2 / eta, "eta": eta, "sharpness": sharpness,
                              "loss": list(loss), "diverged_at": None, "mean_hvps": 3.0}},
            "onset": None}


@settings(max_examples=40)
@given(eta=st.floats(0.01, 1.0), slope=st.floats(1e-3, 1.0), frac=st.floats(0.1, 0.85),
       every=st.integers(1, 7), over=st.floats(1.0, 1.2))
def test_measure_recovers_a_linear_rise_and_its_plateau(eta, slope, frac, every, over):
    # S rises linearly from frac * edge at `slope` per unit of eta t, then stays at
    # over * edge from the first tracked step at or above the edge on
    edge = 2 / eta
    ts = np.arange(0, 20_000, every)
    rise = frac * edge + slope * eta * ts
    cross = int(np.argmax(rise >= edge))
    if cross < 3:
        return  # fewer than 3 points before the edge: no rate to measure (tested below)
    s = np.where(np.arange(len(ts)) < cross, rise, over * edge)
    m = measure(_results(list(zip(ts.tolist(), s.tolist(), strict=True)), eta))
    # least squares on exact linear data: only rounding remains (relative 1e-6 allows
    # for t up to 2e4 and the conditioning of the fit in eta t)
    assert math.isclose(m["sharpening_rate"], slope, rel_tol=1e-6)
    assert math.isclose(m["plateau_sharpness"], over * edge, rel_tol=1e-12)
    assert math.isclose(m["plateau_ratio"], over, rel_tol=1e-12)
    assert m["edge"] == edge
    if frac < 0.9:
        assert m["onset_step"] == ts[cross]


def test_measure_without_progressive_sharpening():
    # starts above the edge: no rate and no onset (it was never 10% below the edge)
    m = measure(_results([(0, 5.0), (5, 4.0), (10, 4.5)], eta=1.0))
    assert math.isnan(m["sharpening_rate"]) and m["onset_step"] is None
    assert math.isnan(m["plateau_sharpness"])
    # below the edge throughout: a rate, no plateau
    m = measure(_results([(0, 1.0), (5, 1.2), (10, 1.4)], eta=0.5))
    assert math.isclose(m["sharpening_rate"], 0.2 / 2.5) and math.isnan(m["plateau_sharpness"])


# -- sweeps on the cluster ------------------------------------------------------------------------
def test_a_sweep_of_eight_configurations_completes(first_sweep):
    out, entries, outcome = first_sweep
    assert len(entries) == 8 and outcome.complete and not outcome.failed
    assert sorted(outcome.ran) == sorted(e.key for e in entries) and not outcome.skipped
    assert sorted(os.listdir(out / "results")) == sorted(f"{e.key}.json" for e in entries)
    index = _load(out / INDEX)
    assert (index["total"], index["done"], index["failed"], index["pending"]) == (8, 8, 0, 0)
    assert [c["key"] for c in index["configurations"]] == [e.key for e in entries]
    assert index["spec"] == SPEC
    for e in entries:
        rec = _load(result_path(out, e.key))
        assert rec["status"] == "done" and rec["config"] == e.config.to_dict()
        assert rec["device_used"] == "cpu" and rec["worker"].startswith("tcp://127.0.0.1:")
        assert [r["check"] for r in rec["predictions"]] == ["edge"] * 3
    # both workers took part
    assert len({_load(result_path(out, e.key))["worker"] for e in entries}) == 2
    table = format_summary(entries, outcome.records)
    assert "8 configuration(s): 8 done, 0 failed, 0 pending" in table
    assert all(e.key in table for e in entries)


def test_a_worker_computes_what_this_process_computes(first_sweep):
    out, entries, _ = first_sweep
    e = next(e for e in entries if e.config.eta == 1.0 and e.config.depth == 2
             and e.config.width == 16)
    rec = read_result(out, e.key)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        local = run_experiment(e.config, device="cpu")
    finally:
        torch.use_deterministic_algorithms(False)
    # same code, same seed, one CPU thread each: the same bits (JSON keeps floats exact)
    assert rec["series"]["sharpness"] == [list(p) for p in local["runs"]["main"]["sharpness"]]
    assert rec["series"]["loss"] == local["runs"]["main"]["loss"]
    # (compared as JSON text so that NaN equals NaN)
    assert json.dumps(rec["measurements"], sort_keys=True) == json.dumps(measure(local),
                                                                         sort_keys=True)
    # this configuration reaches the edge within its 30 steps
    assert rec["measurements"]["onset_step"] is not None


def test_resuming_skips_finished_configurations(first_sweep, client):
    out, entries, _ = first_sweep
    stamps = {e.key: os.stat(result_path(out, e.key)).st_mtime_ns for e in entries}
    before = {e.key: _load(result_path(out, e.key)) for e in entries}
    again = run_sweep(entries, out, client=client, progress=False)
    assert again.ran == [] and sorted(again.skipped) == sorted(stamps) and again.complete
    assert {k: os.stat(result_path(out, k)).st_mtime_ns for k in stamps} == stamps
    # lose two results: exactly those two run again, and come out the same
    lost = [entries[1].key, entries[6].key]
    for k in lost:
        os.remove(result_path(out, k))
    again = run_sweep(entries, out, client=client, progress=False)
    assert sorted(again.ran) == sorted(lost) and len(again.skipped) == 6 and again.complete
    for k in stamps:
        if k not in lost:
            assert os.stat(result_path(out, k)).st_mtime_ns == stamps[k]
        assert _what(_load(result_path(out, k))) == _what(before[k])


def test_killing_a_worker_mid_sweep_loses_no_finished_result(client, tmp_path):
    spec = {"base": TINY, "grid": {"seed": [1, 2, 3], "width": [8, 16]}}
    entries = expand_spec(spec)
    killed: dict = {}
    done: list = []

    def kill_once(entry, rec):
        done.append(entry.key)
        if killed or len(done) < 3:
            return
        # after the third result: snapshot the finished results, then kill a worker that
        # is running a task (late, so that the restarted worker is rarely needed)
        killed["files"] = {f: (tmp_path / "results" / f).read_bytes()
                           for f in os.listdir(tmp_path / "results")}
        busy = {w: ks for w, ks in client.processing().items() if ks}
        worker = sorted(busy)[0]
        killed["worker"] = worker
        killed["tasks"] = [k.split("-")[1] for k in busy[worker]]
        pid = client.run(os.getpid, workers=[worker])[worker]
        os.kill(pid, signal.SIGKILL)

    outcome = run_sweep(entries, tmp_path, client=client, progress=False, callback=kill_once)
    assert killed["files"] and killed["tasks"]
    assert outcome.complete and not outcome.failed and len(outcome.ran) == 6
    for f, content in killed["files"].items():
        assert (tmp_path / "results" / f).read_bytes() == content
    # the tasks the killed worker was running were run again elsewhere
    for k in killed["tasks"]:
        assert outcome.records[k]["status"] == "done"
        assert outcome.records[k]["worker"] != killed["worker"]
    # the worker process is gone (its nanny starts a new one under a new address)
    assert killed["worker"] not in client.scheduler_info()["workers"]


def test_a_failed_task_is_reported_and_the_sweep_goes_on(client, tmp_path, capsys,
                                                          monkeypatch, cifar_batch,
                                                          write_pickle):
    # The spec is checked in full here, but the workers run elsewhere: a data folder given
    # by a relative path that exists only from the client's working directory passes the
    # check and is missing on the workers, whose task then fails.
    monkeypatch.chdir(tmp_path)
    cifar = "cifar-of-the-client"
    os.mkdir(cifar)
    write_pickle(tmp_path / cifar / "data_batch_1", cifar_batch(120))
    spec = {"base": TINY, "configs": [
        {"eta": 0.6, "width": 8},
        {"eta": 0.6, "dataset": "cifar10", "cifar_path": cifar, "n": 100},
        {"eta": 1.0, "width": 8}]}
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    out = tmp_path / "out"
    argv = [str(spec_path), "--scheduler", client.scheduler.address, "--out", str(out),
            "--no-progress"]
    assert main(argv) == 1
    text = capsys.readouterr()
    bad = expand_spec(spec)[1].key
    assert "3 configuration(s): 2 done, 1 failed, 0 pending" in text.out
    assert f"failed {bad}: ValueError: cifar_path '{cifar}'" in text.out
    assert f"failed {bad}" in text.err  # reported when it happened
    index = _load(out / INDEX)
    row = next(c for c in index["configurations"] if c["key"] == bad)
    assert row["status"] == "failed" and "not a folder" in row["error"]
    failed = _load(out / row["file"])
    assert "Traceback" in failed["traceback"] and failed["worker"].startswith("tcp://")
    assert not os.path.exists(result_path(out, bad))
    for name in (*FIGURES, "summary.csv"):
        assert (out / name).stat().st_size > 0
    # a rerun runs only the failed configuration (which fails again)
    assert main(argv) == 1
    assert "ran 1, skipped 2 already done, 1 failed" in capsys.readouterr().out


def test_gpu_configurations_go_to_gpu_workers(client, tmp_path):
    # a third worker offering the resource GPU=1; without CUDA its GPU tasks fail, with
    # CUDA they run, and either way they must have run there and only there
    proc = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", client.scheduler.address,
         "--nthreads", "1", "--no-nanny", "--host", "127.0.0.1", "--no-dashboard",
         "--resources", "GPU=1", "--name", "gpu-worker"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client.wait_for_workers(3, timeout=120)
        gpu = next(a for a, w in client.scheduler_info()["workers"].items()
                   if w["name"] == "gpu-worker")
        entries = expand_spec({"base": TINY, "configs": [
            {"device": "cuda", "seed": 1}, {"device": "cuda", "seed": 2},
            {"device": "cpu", "seed": 1}]})
        outcome = run_sweep(entries, tmp_path, client=client, progress=False)
        for e in entries[:2]:
            rec = outcome.records[e.key]
            assert rec["worker"] == gpu
            if rec["status"] == "failed":
                assert "CUDA is not available" in rec["error"]
            else:
                assert rec["device_used"].startswith("cuda")
        assert outcome.records[entries[2].key]["status"] == "done"
    finally:
        proc.terminate()
        proc.wait(timeout=60)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_a_local_cluster_refuses_cuda_configurations_without_cuda(tmp_path):
    entries = expand_spec({"base": {**TINY, "device": "cuda"}})
    with pytest.raises(ValueError, match="need CUDA, which this machine does not have"):
        run_sweep(entries, tmp_path, progress=False)


# -- command line ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("content", "extra", "match"), [
    (None, [], "does not exist"),
    ("{not json", [], "is not valid JSON"),
    ('["eta"]', [], "must hold a JSON object"),
    ('{"grid": {"eta": [0.1], "colour": [1]}}', [], "unknown field 'colour' in grid"),
    ('{"base": {"eta": 0.1}}', ["--workers", "0"], "--workers must be >= 1"),
    ('{"base": {"eta": 0.1}}', ["--threads", "0"], "--threads must be >= 1"),
    ('{"base": {"eta": 0.1}}', ["--scheduler", "tcp://127.0.0.1:1", "--workers", "2"],
     "--workers sets the local cluster"),
])
def test_cli_errors_are_one_line_with_status_2(content, extra, match, tmp_path, capsys):
    spec = tmp_path / "spec.json"
    if content is not None:
        spec.write_text(content)
    with pytest.raises(SystemExit) as exc:
        main([str(spec), "--out", str(tmp_path / "out"), *extra])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err and "error:" in err, err


def test_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "--scheduler ADDRESS" in text and "cartesian product" in text


def test_list_shows_status_without_running(first_sweep, tmp_path, capsys):
    out = first_sweep[0]
    spec = dict(SPEC, configs=[{"eta": 0.3}])
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec))
    assert main([str(path), "--out", str(out), "--list"]) == 0
    text = capsys.readouterr().out
    assert "9 configuration(s): 8 done, 0 failed, 1 pending" in text
    rows = summary_rows(expand_spec(spec), {})
    assert [r["status"] for r in rows] == ["pending"] * 9


@pytest.mark.slow
def test_the_command_on_a_local_cluster(tmp_path, full):
    # bounded: one tiny configuration on a local cluster of one worker;
    # --full: the example spec of the repository with every core
    if full:
        spec_path = os.path.join(ROOT, "validation", "sweeps", "example.json")
        extra = []
    else:
        spec_path = tmp_path / "spec.json"
        spec_path.write_text(json.dumps({"base": TINY}))
        extra = ["--workers", "1"]
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "validation.sweep", str(spec_path), "--out",
                           str(out), "--no-progress", "--no-figures", *extra], cwd=ROOT,
                          capture_output=True, text=True, timeout=3000)
    assert proc.returncode == 0, proc.stderr
    entries = expand_spec(_load(spec_path))
    assert f"{len(entries)} done, 0 failed, 0 pending" in proc.stdout
    assert all(read_result(out, e.key) is not None for e in entries)


def test_the_cluster_part_of_a_command_line(capsys):
    """run_with_client returns the work's value; a ValueError is one line and exit 2; Ctrl-C
    says where the finished results are and returns None (the command exits 130)."""
    from validation.cli import OneLineParser
    from validation.sweep import run_with_client

    parser = OneLineParser(prog="cmd")
    seen = []
    assert run_with_client(parser, None, "OUT", lambda c: seen.append(c) or 7) == 7
    assert seen == [None]                      # no scheduler: the work starts a local cluster

    def bad(client):
        raise ValueError("bad input\nsecond line")

    with pytest.raises(SystemExit) as exc:
        run_with_client(parser, None, "OUT", bad)
    assert exc.value.code == 2 and capsys.readouterr().err == "cmd: error: bad input\n"

    def interrupted(client):
        raise KeyboardInterrupt

    assert run_with_client(parser, None, "OUT", interrupted) is None
    assert capsys.readouterr().err == ("interrupted; finished results are in OUT; rerun the "
                                       "same command to resume\n")
