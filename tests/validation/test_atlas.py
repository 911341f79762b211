"""The atlas: the step-size rule, the quick matrix end to end, resume and bad input.

The end-to-end tests share one run of ``python -m validation.atlas --quick`` (four runs
on a local cluster of two workers) and check its files against a recount from the
sweep's result files.
"""

import csv
import json
import math
import os
import re
from collections import Counter

import numpy as np
import pytest
import torch

from validation import atlas
from validation.atlas import (
    CSV,
    ETA_FRACTION,
    MD,
    PNG,
    QUICK,
    S0_FILE,
    Setting,
    choose_eta,
    fields_key,
    initial_sharpness,
    main,
    run_atlas,
)
from validation.checkpoint import read_json
from validation.experiment import Experiment
from validation.sweep import config_from_fields

TINY_RUN = {"dataset": "synthetic", "n": 40, "steps": 30, "checks": ["edge"]}


# -- the step-size rule (no cluster) ---------------------------------------------------------------
@pytest.mark.parametrize(("s0", "eta"), [(2.0, 0.6), (3.0, 0.4), (12.0, 0.1), (0.1, 12.0),
                                         (7.0, 0.1714)])
def test_eta_is_the_fraction_of_two_over_s0(s0, eta):
    assert choose_eta(s0) == pytest.approx(eta, rel=1e-12)
    # four significant digits: the start ratio S_0 eta / 2 is the fraction to 5e-4
    assert abs(s0 * choose_eta(s0) / 2 / ETA_FRACTION - 1) <= 5e-4


@pytest.mark.parametrize("s0", [0.0, -1.0, math.nan, math.inf, True, "2"])
def test_eta_refuses_a_bad_sharpness(s0):
    with pytest.raises(ValueError, match="s0 must be a finite sharpness > 0"):
        choose_eta(s0)


def test_initial_sharpness_is_the_top_eigenvalue_of_the_dense_hessian():
    # independent route: the whole Hessian by double reverse mode, then eigvalsh
    fields = {**Setting("tanh-mlp", "mse", "standard", "standard").fields(TINY_RUN, 0),
              "width": 6, "n": 24, "dtype": "float64"}
    exp = Experiment(config_from_fields({**fields, "eta": 1.0}), torch.device("cpu"))
    obj = exp.objective
    h = torch.autograd.functional.hessian(lambda p: obj._chunk_loss(p, obj.x, obj.y), exp.w0)
    top = float(torch.linalg.eigvalsh(h)[-1])
    assert initial_sharpness(fields) == pytest.approx(top, rel=1e-4)


# -- the quick matrix end to end -------------------------------------------------------------------
@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("atlas")
    status = main(["--quick", "--out", str(out), "--no-progress", "--workers", "2"])
    return out, status


def _results(out) -> list[dict]:
    folder = os.path.join(out, "results")
    recs = []
    for name in sorted(os.listdir(folder)):
        recs.append(read_json(os.path.join(folder, name)))
    return recs


def _arch_name(overrides: dict) -> str:
    for name, fields in atlas.ARCHS.items():
        if all(overrides.get(k) == v for k, v in fields.items()):
            return name
    raise AssertionError(f"no architecture of the atlas matches {overrides}")


def _csv(out) -> list[dict]:
    with open(os.path.join(out, CSV)) as fh:
        return list(csv.DictReader(fh))


@pytest.mark.timeout(900)
def test_the_quick_atlas_completes(quick):
    out, status = quick
    assert status == 0
    recs = _results(out)
    n = len(QUICK["archs"]) * len(QUICK["losses"]) * len(QUICK["readouts"]) \
        * len(QUICK["parametrizations"]) * QUICK["seeds"]
    assert len(recs) == n
    assert all(r["status"] == "done" for r in recs)


def test_the_csv_counts_equal_a_recount_of_the_result_files(quick):
    out, _ = quick
    recount: dict = {}
    for rec in _results(out):
        o = rec["overrides"]
        readout = {0.0: "zero", 1.0: "standard"}[o["readout_scale"]]
        setting = (_arch_name(o), o["loss"], readout, o["parametrization"])
        for row in rec["predictions"]:
            recount.setdefault((*setting, row["name"]), []).append(row)
    lines = _csv(out)
    assert {(r["arch"], r["loss"], r["readout"], r["parametrization"], r["row"])
            for r in lines} == set(recount)
    for line in lines:
        rows = recount[(line["arch"], line["loss"], line["readout"], line["parametrization"],
                        line["row"])]
        statuses = [r["status"] for r in rows]
        assert int(line["held"]) == statuses.count("holds")
        assert int(line["failed"]) == statuses.count("fails")
        assert int(line["not_applicable"]) == statuses.count("not applicable")
        assert int(line["runs"]) == QUICK["seeds"]
        applicable = [r for r in rows if r["status"] != "not applicable"]
        errors = [r["error"] for r in applicable if math.isfinite(r["error"])]
        if applicable:
            assert float(line["fraction_held"]) == pytest.approx(
                statuses.count("holds") / len(applicable), abs=1e-9)
        else:
            assert line["fraction_held"] == "nan"
        if errors:
            assert float(line["error_median"]) == pytest.approx(np.median(errors), rel=1e-9)
            assert float(line["error_min"]) == pytest.approx(min(errors), rel=1e-9)
            assert float(line["error_max"]) == pytest.approx(max(errors), rel=1e-9)
        # the reasons of failing rows whose prediction could not be computed, counted
        failing = Counter(re.sub(r"-?\d+(\.\d+)?(e[-+]?\d+)?", "#", r["reason"])
                          for r in rows if r["status"] == "fails" and r["reason"])
        assert line["fail_reasons"] == " | ".join(f"{n}x {p}"
                                                  for p, n in failing.most_common())


def test_the_paper_job_reads_the_same_runs(quick):
    """:func:`atlas.atlas_job` on the quick atlas's folder runs nothing more and returns
    its lines and, per run, the numbers read from the run's own series."""
    out, _ = quick
    settings = atlas.matrix(QUICK["archs"], QUICK["losses"], QUICK["readouts"],
                            QUICK["parametrizations"])
    result = atlas.atlas_job(atlas.job_config(settings, QUICK["seeds"], atlas.QUICK_RUN),
                             str(out))
    assert [(x["row"], x["held"], x["failed"]) for x in result["lines"]] == [
        (r["row"], int(r["held"]), int(r["failed"])) for r in _csv(out)]
    by_seed = {(rec["overrides"]["loss"], rec["overrides"]["seed"]): rec
               for rec in _results(out)}
    assert len(result["runs"]) == len(by_seed)
    for run in result["runs"]:
        rec = by_seed[(run["setting"][1], run["seed"])]
        s = [v for _, v in rec["series"]["sharpness"]]
        assert run["status"] == "done" and run["onset"] == rec["measurements"]["onset_step"]
        assert run["peak_ratio"] == max(s) / rec["measurements"]["edge"]
        assert run["rose_above_start"] == (max(s[1:]) > s[0])
        assert run["eta"] == rec["config"]["eta"]


def test_every_run_starts_at_the_chosen_ratio_of_its_edge(quick):
    out, _ = quick
    with open(os.path.join(out, S0_FILE)) as fh:
        s0s = json.load(fh)
    for rec in _results(out):
        m = rec["measurements"]
        fields = {k: v for k, v in rec["overrides"].items()}
        assert rec["config"]["eta"] == choose_eta(s0s[fields_key(fields)])
        # the run's own sharpness at step 0 is the S_0 the step size was chosen from
        assert m["initial_sharpness"] == s0s[fields_key(fields)]
        assert m["initial_sharpness"] / m["edge"] == pytest.approx(ETA_FRACTION, rel=5e-4)


def test_the_markdown_and_the_heatmap(quick):
    out, _ = quick
    lines = _csv(out)
    with open(os.path.join(out, MD)) as fh:
        text = fh.read()
    sections = {part.split(":", 1)[0]: part for part in text.split("\n## ")[1:]}
    for line in lines:
        section = sections[f"{line['row']} ({line['check']})"]
        app = int(line["held"]) + int(line["failed"])
        label = f"{line['arch']} {line['loss']} {line['readout']} {line['parametrization']}"
        [table_line] = [t for t in section.splitlines() if t.startswith(f"| {label} | ")]
        assert f"| {line['held']} / {app} | {line['not_applicable']} |" in table_line
    assert "## Failed runs (0)" in text
    with open(os.path.join(out, PNG), "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread

    height, width = imread(os.path.join(out, PNG)).shape[:2]
    assert width > 600 and height > 200


def test_a_rerun_skips_every_finished_run(quick, capsys):
    out, _ = quick
    before = {name: open(os.path.join(out, name), "rb").read() for name in (CSV, MD)}
    capsys.readouterr()
    assert main(["--quick", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "measured 0 initial sharpness(es); ran 0, skipped 4 already done, 0 failed" \
        in printed
    for name, content in before.items():
        assert open(os.path.join(out, name), "rb").read() == content


def test_an_output_folder_of_another_matrix_is_refused(quick, capsys):
    out, _ = quick
    with pytest.raises(SystemExit) as exc:
        main(["--quick", "--seeds", "1", "--out", str(out), "--no-progress"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "holds the results of another sweep" in err


# -- failures and bad input ----------------------------------------------------------------------
def test_a_run_that_fails_is_recorded_and_reported(tmp_path, monkeypatch):
    monkeypatch.setitem(atlas.ARCHS, "broken", {"arch": "mlp", "width": 4, "depth": 1,
                                                "activation": "no-such-activation"})
    settings = [Setting("broken", "mse", "zero", "standard"),
                Setting("tanh-mlp", "mse", "zero", "standard")]
    run = {**TINY_RUN, "n": 30, "width": 4}
    outcome = run_atlas(settings, 1, run, tmp_path, workers=1, progress=False)
    assert [r.setting.arch for r in outcome.failed] == ["broken"]
    assert "no-such-activation" in outcome.failed[0].error
    with open(tmp_path / MD) as fh:
        text = fh.read()
    assert "## Failed runs (1)" in text and "broken mse zero standard seed 0" in text
    assert [line["arch"] for line in _csv(tmp_path)] == ["tanh-mlp"] * 3


@pytest.mark.parametrize(("argv", "match"), [
    (["--archs", "resnet"], "--archs: unknown arch 'resnet'"),
    (["--losses", "hinge"], "--losses: unknown loss 'hinge'"),
    (["--readouts", "huge"], "--readouts: unknown readout 'huge'"),
    (["--archs"], "the filters leave an empty matrix"),
    (["--quick", "--seeds", "5"], "--quick runs at most 8 runs"),
    (["--seeds", "0"], "--seeds must be >= 1"),
    (["--workers", "0"], "--workers must be >= 1"),
    (["--scheduler", "tcp://127.0.0.1:1", "--workers", "2"], "--workers sets the local"),
])
def test_bad_input_is_one_line_with_status_2(argv, match, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--out", str(tmp_path / "out")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err
    assert not os.path.exists(tmp_path / "out")


def test_an_output_path_that_is_a_file_is_refused(tmp_path, capsys):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(SystemExit) as exc:
        main(["--quick", "--out", str(path)])
    assert exc.value.code == 2
    assert "--out: out" in capsys.readouterr().err
