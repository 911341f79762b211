import json
import os
import signal
import subprocess
import sys
import time

import pytest

from validation.compare import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("argv, match", [
    (["--dataset", "imagenet"], "unknown dataset 'imagenet'"),
    (["--dataset", "cifar10"], "needs cifar_path"),
    (["--dataset", "cifar10", "--cifar-path", "no/such/folder"], "not a folder"),
    (["--eta", "-0.1"], "eta must be a finite number > 0"),
    (["--checks", "edge,magic"], "unknown check 'magic'"),
    (["--optimizer", "heavy_ball", "--checks", "central-flow"], "need optimizer 'gd'"),
])
def test_cli_errors_are_one_line_with_status_2(argv, match, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--out", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err, err
    assert "error:" in err


def test_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    assert "self-stabilization" in capsys.readouterr().out


# A tiny run whose flows reach the edge (the checkpoint must hold the central flow's state);
# whether its predictions hold does not matter here.
TINY = ["--dataset", "digits", "--n", "60", "--width", "8", "--eta", "1.0", "--steps", "100",
        "--checks", "edge,central-flow,flow-distance", "--track-every", "3",
        "--checkpoint-every", "20", "--no-figures", "--no-progress", "--threads", "1"]


def _run(out, *extra, wait=True):
    cmd = [sys.executable, "-m", "validation.compare", *TINY, "--out", str(out), *extra]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if wait:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()
    return proc


def _report(out):
    with open(os.path.join(out, "report.json")) as fh:
        rep = json.load(fh)
    rep.pop("timing")
    return rep


@pytest.mark.slow
def test_resume_after_kill_gives_the_same_report(tmp_path):
    full_out, killed_out = tmp_path / "full", tmp_path / "killed"
    _run(full_out)
    proc = _run(killed_out, wait=False)
    ckpt = killed_out / "checkpoint.pt"
    deadline = time.monotonic() + 120
    while not ckpt.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    assert ckpt.exists(), "no checkpoint appeared"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed_out / "report.json").exists()
    _run(killed_out, "--resume")
    with open(killed_out / "report.json") as fh:
        resumed_from = json.load(fh)["timing"]["resumed_from"]
    assert resumed_from is not None and 0 < resumed_from < 101
    assert _report(killed_out) == _report(full_out)


def test_quadratic_checks_are_cached_by_their_inputs(tmp_path, monkeypatch):
    import analysis.thresholds
    from validation import compare
    from validation.cache import Cache

    calls = []

    def fake_checks(betas, spectrum, steps):
        calls.append((tuple(betas), tuple(spectrum), steps))
        return [{"name": f"n{len(calls)}", "predicted": 2.0, "measured": 2.0 + 1e-4 * len(calls),
                 "error": 5e-5, "tolerance": 1e-3, "holds": True}]

    monkeypatch.setattr(analysis.thresholds, "quadratic_threshold_checks", fake_checks)
    cache = Cache(tmp_path / "cache")
    params = {"betas": [0.5], "spectrum": [1.0, 0.3], "steps": 100}

    def rows(p, c=cache):
        checks = compare.QuadraticChecks(compare.quadratic_job(p), c, process=False)
        return checks.cached, checks.result()[0]

    cached, first = rows(params)
    assert not cached and len(calls) == 1
    cached, second = rows(params)  # read back from the file, not recomputed
    assert cached and second == first and len(calls) == 1
    assert len(list((tmp_path / "cache").glob("quadratic-thresholds-*.npz"))) == 1
    cached, third = rows({**params, "steps": 200})  # a changed input recomputes
    assert not cached and len(calls) == 2 and third[0]["measured"] != first[0]["measured"]
    # the code is an input too: another source digest is another file
    monkeypatch.setattr(compare, "source_digest", lambda: "0" * 64)
    cached, _ = rows(params)
    assert not cached and len(calls) == 3
    # no cache: computed every time, nothing written
    rows(params, None)
    assert len(calls) == 4 and len(list((tmp_path / "cache").glob("*.npz"))) == 3
    assert compare.quadratic_job().config["steps"] == compare.QUADRATIC_CHECKS["steps"]
