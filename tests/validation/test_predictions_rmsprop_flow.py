"""Rows of the rmsprop-central-flow check on synthetic records: hold, fail, not applicable."""

import math

import pytest

from validation.predictions import rmsprop_central_flow_rows

EDGE = 2.0  # eta = 1


def _res(*, pred_shift=0.0, gap=1e-5, d_rf=0.1, d_sf=1.0, rise=True, sigma=1e-3,
         diverged_at=None, stopped=None):
    """RMSProp with loss 1 / (1 + t/100) oscillating by +-1e-3 around it from step 40 on;
    its preconditioned sharpness rises from 1.5 to the edge at step 40 (or sits above it
    from the start); the central flow predicts the loss times ``1 + pred_shift``."""
    steps = 100
    loss = [1 / (1 + t / 100) + (1e-3 * (-1) ** t if t >= 40 else 0.0)
            for t in range(steps + 1)]
    t_rec = list(range(20, steps + 1, 5))
    pre_t = list(range(5, steps + 1, 5))
    pre = {True: [1.5 + t / 80 if t < 40 else EDGE for t in pre_t], False: [2.5] * len(pre_t),
           # a rise before step 20, where the flows start: they start at the edge
           "early": [1.5 if t < 15 else EDGE for t in pre_t]}[rise]
    at_edge = [t >= 40 for t in t_rec]
    rec = {"t": t_rec,
           "rf_pred_loss": [(1 + pred_shift) / (1 + t / 100) for t in t_rec],
           "rf_sharpness": [EDGE * (1 + gap) if e else 1.8 for e in at_edge],
           "rf_sigma": [sigma if e else 0.0 for e in at_edge],
           "rmsprop_center_rf": [d_rf] * len(t_rec), "rmsprop_center_sf": [d_sf] * len(t_rec)}
    main = {"edge": EDGE, "optimizer": "rmsprop", "loss": loss, "diverged_at": diverged_at}
    return {"runs": {"main": main}, "records": rec,
            "adaptive": {"t": pre_t, "preconditioned": pre},
            "rmsprop_flow": {"start": 20, "stopped": stopped}}


def _status(rows):
    return {r["name"]: r["status"] for r in rows}


def test_rows_hold_when_the_flow_predicts_the_run():
    rows = rmsprop_central_flow_rows(_res(), 20)
    assert _status(rows) == dict.fromkeys(("j.loss_path", "j.edge", "j.distance"), "holds")
    assert rows[0]["measured"] < 5e-3  # the centred average of a convex curve lies above it


@pytest.mark.parametrize(("records", "failing"), [
    ({"pred_shift": 0.03}, "j.loss_path"),   # 3% off the centred averages
    ({"gap": 2e-3}, "j.edge"),               # held 0.2% above 2/eta
    ({"d_rf": 1.2}, "j.distance"),           # farther from the central flow
])
def test_rows_fail(records, failing):
    statuses = _status(rmsprop_central_flow_rows(_res(**records), 20))
    assert {n for n, s in statuses.items() if s == "fails"} == {failing}


@pytest.mark.parametrize(("records", "reason"), [
    ({"rise": False}, "no onset"),
    ({"rise": "early"}, "no onset"),
    ({"sigma": 0.0}, "never reached the edge"),
    ({"diverged_at": 90}, "diverged"),
])
def test_rows_without_their_premise_are_not_applicable(records, reason):
    rows = rmsprop_central_flow_rows(_res(**records), 20)
    assert all(r["status"] == "not applicable" and reason in r["reason"] for r in rows), rows


def test_a_stopped_flow_fails_its_rows_with_the_reason():
    why = "RMSProp's central flow stopped before step 60: lost the edge"
    res = _res(stopped=why)
    for key in ("rf_pred_loss", "rf_sharpness", "rf_sigma", "rmsprop_center_rf",
                "rmsprop_center_sf"):
        res["records"][key][-9:] = [math.nan] * 9
    rows = rmsprop_central_flow_rows(res, 20)
    assert all(r["status"] == "fails" and r["reason"] == why for r in rows), rows
