"""Runs whose premises fail: divergence stops the run, and the report says not applicable."""

import json
import math

import pytest

from validation.experiment import DIVERGENCE_FACTOR, Config, run_experiment
from validation.predictions import evaluate, row
from validation.report import build_report, divergences, format_table, write_report
from validation.sweep import expand_spec, measure
from validation.sweep_report import summary_rows

CHECKS = ("edge", "central-flow", "self-stabilization", "flow-distance")


@pytest.fixture(scope="module")
def diverged():
    """eta = 3 on the synthetic task: the loss exceeds 1e6 times its start at step 5 while
    it is still finite (measured: 2.1e7 against 0.425)."""
    config = Config(dataset="synthetic", n=100, steps=60, eta=3.0, window=10, checks=CHECKS)
    return config, run_experiment(config, device="cpu")


def test_a_diverging_run_stops_every_dependent_computation(diverged):
    _, res = diverged
    main = res["runs"]["main"]
    at = main["diverged_at"]
    assert at is not None and at < 10
    # the loss bound relative to the start fired, not an overflow
    assert math.isfinite(main["diverged_loss"])
    assert main["diverged_loss"] > DIVERGENCE_FACTOR * main["loss"][0]
    assert len(main["loss"]) == at
    # the loop ended at the step of divergence; the flows recorded nothing after it
    assert res["stopped_at"] == at and res["complete"]
    assert max(res["records"]["t"]) < at


def test_a_diverged_run_is_printed_and_its_rows_are_not_applicable(diverged, tmp_path):
    config, res = diverged
    rows = evaluate(res, config)
    assert rows and all(r["status"] == "not applicable" for r in rows)
    at = res["runs"]["main"]["diverged_at"]
    table = format_table(rows, diverged=divergences(res))
    assert f"diverged: main at step {at}: the loss" in table
    assert f"the computation stopped after step {at}" in table
    assert table.splitlines()[-1] == (f"0 of {len(rows)} predictions hold, 0 fail, "
                                      f"{len(rows)} not applicable")
    report = build_report(config.to_dict(), rows, res, {})
    path = write_report(tmp_path, report)
    with open(path) as fh:
        stored = json.load(fh)
    summary = stored["summary"]
    assert (summary["held"], summary["failed"], summary["not_applicable"]) == (0, 0, len(rows))
    assert summary["divergences"]["main"].startswith(f"at step {at}")
    assert all(p["status"] == "not applicable" and p["reason"] for p in stored["predictions"])


def test_table_and_sweep_count_statuses():
    rows = [row("c", "x.hold", "q", 1.0, 1.0, 0.0, 0.1),
            row("c", "x.fail", "q", 1.0, 2.0, 1.0, 0.1),
            row("c", "x.na", "q", 1.0, 1.0, 0.0, 0.1, reason="no onset")]
    lines = format_table(rows).splitlines()
    assert [line.split()[-1] for line in lines[2:5]] == ["holds", "FAILS", "n/a"]
    assert lines[5] == "n/a x.na: no onset"
    assert lines[-1] == "1 of 3 predictions hold, 1 fail, 1 not applicable"
    entries = expand_spec({"base": {"dataset": "synthetic", "n": 100, "steps": 20},
                           "grid": {"eta": [0.1, 0.2]}})
    # rows stored before statuses existed count by their ``holds``
    old = [{"holds": True}, {"holds": False}]
    records = {e.key: {"status": "done", "measurements": {}, "predictions": p}
               for e, p in zip(entries, (rows, old), strict=True)}
    assert [r["held"] for r in summary_rows(entries, records)] == ["1/2 (1 n/a)", "1/2"]


def test_divergence_says_how():
    res = {"runs": {"main": {"diverged_at": 3, "diverged_loss": math.inf, "loss": [1.0] * 3},
                    "momentum": {"diverged_at": 5, "diverged_loss": 2.0, "loss": [1.0] * 5},
                    "drop": {"diverged_at": None, "loss": [1.0]}},
           "stopped_at": None}
    assert divergences(res) == {"main": "at step 3: the loss is not finite",
                                "momentum": "at step 5: the gradient is not finite (loss 2)"}


def test_a_diverged_run_has_no_plateau_in_a_sweep():
    """Records that rise to the edge and hover there, then the run diverged."""
    sharpness = [(0, 1.0), (5, 1.5), (10, 2.05), (15, 1.98), (20, 2.01)]
    run = {"edge": 2.0, "eta": 1.0, "sharpness": sharpness, "loss": [1.0, 0.5],
           "diverged_at": None, "mean_hvps": 3.0}
    res = {"runs": {"main": run}, "onset": None}
    assert measure(res)["plateau_sharpness"] == 2.01
    run["diverged_at"] = 23
    m = measure(res)
    assert math.isnan(m["plateau_sharpness"]) and m["onset_step"] == 10
