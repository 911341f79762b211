import math

import pytest

from validation.predictions import (
    central_flow_rows,
    constrained_rows,
    count_statuses,
    drop_rows,
    edge_rows,
    evaluate,
    flow_distance_rows,
    onset_step,
    row,
    self_stabilization_rows,
)


def _run(values, edge=10.0, every=5):
    return {"edge": edge, "sharpness": [(i * every, v) for i, v in enumerate(values)]}


def test_onset_needs_a_rise_from_below():
    assert onset_step(_run([5, 8, 10.5, 10])["sharpness"], 10.0) == 10
    # Starting above the edge is no progressive sharpening.
    assert onset_step(_run([12, 11, 10.5])["sharpness"], 10.0) is None


def test_edge_rows_hold_for_a_plateau_and_fail_without_one():
    good = edge_rows("edge", "a", _run([5, 7, 9, 10.2] + [10.1, 9.9] * 20), what="2/eta")
    assert all(r["holds"] for r in good), good
    never = edge_rows("edge", "a", _run([5, 6, 7, 8] * 5), what="2/eta")
    assert not any(r["holds"] for r in never)
    wild = edge_rows("edge", "a", _run([5, 8, 10.5] + [14, 6] * 20), what="2/eta")
    names = {r["name"]: r for r in wild}
    assert not names["a.band"]["holds"] and names["a.rise"]["holds"]


def test_row_with_nan_does_not_hold():
    assert not row("x", "x", "q", 1.0, math.nan, math.nan, 1.0)["holds"]
    assert row("x", "x", "q", 1.0, 1.01, 0.01, 0.02)["holds"]


# -- every row builder, on synthetic records: a case that holds and one that must fail ------

EDGE = 10.0
STEPS, WINDOW = 100, 20


def _plateau_run(**extra):
    run = _run([5, 7, 9, 10.2] + [10.1, 9.9] * 20, edge=EDGE)
    run.update(optimizer="gd", **extra)
    return run


def test_a_diverged_run_makes_no_edge_row_hold():
    """The same records as a plateau that holds, but the run left the bound."""
    assert all(r["holds"] for r in edge_rows("edge", "a", _plateau_run(), what="2/eta"))
    rows = edge_rows("edge", "a", _plateau_run(diverged_at=205), what="2/eta")
    assert len(rows) == 3 and not any(r["holds"] for r in rows)
    assert all(r["status"] == "not applicable" for r in rows)
    assert all("diverged at step 205" in r["reason"] for r in rows)


def _results(*, cf_loss=1.0, centre_s=EDGE, x=1.0, d_cf=0.1, d_gf=1.0, d_pgd=0.1,
             onset=0, diverged_at=None):
    """Records of a settled run: GD's loss 1 +- 0.01, its centre's sharpness ``centre_s``,
    oscillation ``x`` along u with alpha = 1, beta = 2 (predicted x^2 = 1)."""
    t = list(range(0, STEPS + 1, 10))
    main = _plateau_run(diverged_at=diverged_at)
    main["loss"] = [1.0 + 0.01 * (-1) ** k for k in range(STEPS + 1)]
    main["x"] = [(k, x * (-1) ** k) for k in range(STEPS + 1)]
    records = {"t": t, "cf_pred_loss": [cf_loss] * len(t), "cf_sharpness": [EDGE] * len(t),
               "gd_centre_sharpness": [centre_s] * len(t), "cf_sigma": [0.5] * len(t),
               "gd_center_cf": [d_cf],
               "gd_center_gf": [d_gf], "gd_center_pgd": [d_pgd], "gf_loss": [1.5]}
    return {"runs": {"main": main}, "records": records,
            "onset": None if onset is None else {"t": onset, "alpha": 1.0, "beta": 2.0}}


def _holds(rows):
    return {r["name"]: r["holds"] for r in rows}


def test_central_flow_rows():
    assert all(_holds(central_flow_rows(_results(), WINDOW)).values())
    # a predicted loss 10% off, and the centre's sharpness 10% above the flow's
    off = _holds(central_flow_rows(_results(cf_loss=1.1, centre_s=11.0), WINDOW))
    assert off == {"d.loss": False, "d.loss_path": False, "d.sharpness": False}
    assert not _holds(central_flow_rows(_results(onset=None), WINDOW))["d.loss_path"]


@pytest.mark.parametrize(("x", "holds"), [(1.0, True), (1.3, True), (0.1**0.5, False),
                                          (10**0.5, False)])
def test_self_stabilization_row(x, holds):
    """Predicted mean x^2 = 2 alpha / beta = 1; a factor 10 either way must fail, 1.69
    (within the factor 2 of the tolerance) must hold."""
    (r,) = self_stabilization_rows(_results(x=x))
    assert r["predicted"] == pytest.approx(1.0)
    assert r["measured"] == pytest.approx(x * x)
    assert r["holds"] is holds


def test_self_stabilization_row_without_onset_is_not_applicable():
    (r,) = self_stabilization_rows(_results(onset=None))
    assert not r["holds"] and r["status"] == "not applicable"
    assert r["reason"] == "no onset of the edge of stability"


def test_flow_distance_rows():
    assert all(_holds(flow_distance_rows(_results())).values())
    # GD's centre farther from the central flow than from gradient flow; the flow's loss
    # 1.6 farther from GD's 1.0 than gradient flow's 1.5
    far = _holds(flow_distance_rows(_results(d_cf=2.0, cf_loss=1.6)))
    assert far == {"f.distance": False, "f.loss": False}


def test_constrained_row():
    assert _holds(constrained_rows(_results()))["g.distance"]
    assert not _holds(constrained_rows(_results(d_pgd=2.0)))["g.distance"]
    no_gf = _results()
    no_gf["records"]["gd_center_gf"] = []
    assert not _holds(constrained_rows(no_gf))["g.distance"]


def test_drop_rows():
    """Before the drop at step 100 the sharpness sat at the old edge 5; the new edge is 10."""
    before = [(t, 5.0) for t in range(0, 100, 5)]
    rise = [(100 + 5 * k, s) for k, s in enumerate([5, 7, 9, 10.2] + [10.1, 9.9] * 20)]
    res = {"runs": {"drop": {"edge": EDGE, "sharpness": before + rise}}}
    assert all(_holds(drop_rows(res, 100)).values())
    stuck = {"runs": {"drop": {"edge": EDGE, "sharpness": before + [(t, 5.0) for t, _ in rise]}}}
    assert not any(_holds(drop_rows(stuck, 100)).values())


def test_evaluate_fails_every_row_of_a_diverged_main_run(evaluated_config):
    config = evaluated_config(("edge", "central-flow", "self-stabilization", "flow-distance",
                               "constrained"), window=WINDOW)
    rows = evaluate(_results(), config)
    assert len(rows) == 10 and all(r["holds"] for r in rows), rows
    diverged = evaluate(_results(diverged_at=205), config)
    assert len(diverged) == 10 and not any(r["holds"] for r in diverged)
def _by_name(rows):
    return {r["name"]: r for r in rows}


def test_edge_rows_numbers_and_a_diverged_run():
    # onset at step 15 (10.5 >= 10 after 5 < 9): low 5, high 10.5 -> rise closes 1.1 of
    # the gap; after onset 10.5, 10, 9, 13 -> median 10.25, 3 of 4 within 20 %
    rows = _by_name(edge_rows("edge", "a", _run([5, 8, 7, 10.5, 10, 9, 13]), what="2/eta"))
    assert rows["a.rise"]["measured"] == 1.1 and rows["a.rise"]["error"] == 0.0
    assert rows["a.plateau"]["measured"] == 10.25
    assert math.isclose(rows["a.plateau"]["error"], 0.025)
    assert rows["a.band"]["measured"] == 0.75 and rows["a.band"]["error"] == 0.25
    assert [r["holds"] for r in rows.values()] == [True, True, False]
    diverged = dict(_run([5, 8, 7, 10.5, 10, 9.9, 10.1]), diverged_at=30)
    rows = edge_rows("edge", "a", diverged, what="2/eta")
    assert not any(r["holds"] for r in rows)
    assert all(r["reason"] == "the run diverged at step 30" for r in rows)
    # steps before `after` are ignored: from step 10 on the run starts above 0.9 edge
    late = _by_name(edge_rows("drop", "c", _run([5, 8, 9.5, 10.5, 10]), after=10))
    assert math.isnan(late["c.rise"]["measured"]) and math.isnan(late["c.plateau"]["measured"])


def _records():
    loss = [3.0] * 80 + [2.0] * 21  # steps 0 .. 100
    rec = {"t": [0, 50, 65, 90, 100], "cf_pred_loss": [3.0, 2.0, 3.0, 2.2, 2.0],
           "cf_sharpness": [1.0, 2.0, 3.0, 4.0, 4.0], "cf_sigma": [0.0, 0.0, 0.1, 0.2, 0.2],
           "gd_centre_sharpness": [1.0, 2.0, 3.0, 4.2, 4.2],
           "gd_center_cf": [0.0, 0.1], "gd_center_gf": [0.0, 0.4], "gd_center_pgd": [0.2],
           "gf_loss": [3.0, 2.9]}
    main = {"loss": loss, "edge": 4.0, "sharpness": [(t, 4.4) for t in range(0, 101, 10)],
            "x": [(0, 9.0), (60, 0.5), (70, -0.5), (80, 1.0)], "optimizer": "gd"}
    return {"runs": {"main": main}, "records": rec,
            "onset": {"t": 60, "alpha": 1.0, "beta": 4.0}}


def test_central_flow_rows_average_over_the_last_window():
    rows = _by_name(central_flow_rows(_records(), window=20))
    # last 20 steps of GD: loss 2; the flow's prediction at t in [80, 100]: mean(2.2, 2) = 2.1
    assert rows["d.loss"]["predicted"] == 2.1 and rows["d.loss"]["measured"] == 2.0
    assert math.isclose(rows["d.loss"]["error"], 0.05) and not rows["d.loss"]["holds"]
    # record times with onset + 10 <= t <= 90 (t = 65 is too close to the onset): t = 90,
    # GD's centred mean 2 vs 2.2
    assert math.isclose(rows["d.loss_path"]["measured"], 0.1)
    # sharpness of the oscillation centre, 4.2, against the flow's 4
    assert rows["d.sharpness"]["predicted"] == 4.0 and rows["d.sharpness"]["measured"] == 4.2
    assert math.isclose(rows["d.sharpness"]["error"], 0.05)


def test_self_stabilization_flow_distance_and_constrained_rows():
    res = _records()
    (osc,) = self_stabilization_rows(res)
    # 2 alpha / beta = 0.5 against the mean of x^2 from the onset on: (0.25 + 0.25 + 1) / 3
    assert osc["predicted"] == 0.5 and osc["measured"] == 0.5 and osc["holds"]
    (none,) = self_stabilization_rows(dict(res, onset=None))
    assert math.isnan(none["measured"]) and not none["holds"]
    dist = _by_name(flow_distance_rows(res))
    assert dist["f.distance"]["measured"] == 0.25 and dist["f.distance"]["holds"]
    # GD's centred loss at the end is 2: |2 - 2| / |2 - 2.9| = 0
    assert dist["f.loss"]["measured"] == 0.0 and dist["f.loss"]["holds"]
    (con,) = constrained_rows(res)
    assert con["measured"] == 0.5 and con["holds"]
    res["records"]["gd_center_gf"] = []
    (con,) = constrained_rows(res)
    assert math.isnan(con["measured"]) and not con["holds"]


def test_evaluate_runs_the_configured_checks(evaluated_config):
    res = _records()
    res["runs"]["drop"] = _run([5, 8, 7, 10.5, 10, 9.9, 10.1])
    config = evaluated_config(("edge", "drop", "self-stabilization", "constrained"),
                              drop_step=5)
    names = [r["name"] for r in evaluate(res, config)]
    assert names == ["a.rise", "a.plateau", "a.band", "c.rise", "c.plateau", "c.band",
                     "e.oscillation", "g.distance"]
    assert "2/eta" in evaluate(res, config)[0]["quantity"]


# -- not applicable: a row whose premise did not occur neither holds nor fails --------------


def _status(rows):
    return {r["name"]: r["status"] for r in rows}


def test_row_status_and_reason():
    assert row("x", "x", "q", 1.0, 1.01, 0.01, 0.02)["status"] == "holds"
    assert row("x", "x", "q", 1.0, 2.0, 1.0, 0.02)["status"] == "fails"
    assert row("x", "x", "q", 1.0, math.nan, math.nan, 0.02)["status"] == "fails"
    na = row("x", "x", "q", 1.0, 1.01, 0.01, 0.02, reason="no onset")
    assert na["status"] == "not applicable" and not na["holds"] and na["reason"] == "no onset"


def test_edge_rows_not_applicable_without_their_premise():
    # sharpening that never reaches the edge: the rise fails, plateau and band need an onset
    never = edge_rows("edge", "a", _run([5, 6, 7, 8] * 5), what="2/eta")
    assert _status(never) == {"a.rise": "fails", "a.plateau": "not applicable",
                              "a.band": "not applicable"}
    assert never[1]["reason"].startswith("no onset")
    # a run that starts at the edge: nothing to observe about sharpening
    flat = _by_name(edge_rows("edge", "a", _run([10.1, 9.9] * 10), what="2/eta"))
    assert flat["a.rise"]["status"] == "not applicable"
    assert "never 10% below the edge" in flat["a.rise"]["reason"]
    empty = edge_rows("drop", "c", _run([5, 8, 10.5]), after=100, what="2/eta")
    assert all(r["reason"] == "no tracked steps from step 100 on" for r in empty)


def test_flow_distance_rows_without_an_edge_are_not_applicable():
    """No onset: the central flow is gradient flow, both ratios are exactly 1.0 and held
    under ``error <= tolerance``; they must be not applicable."""
    same = _results(onset=None, d_cf=1.0, d_gf=1.0, cf_loss=1.5)
    rows = flow_distance_rows(same)
    assert [r["measured"] for r in rows] == [1.0, 1.0]
    assert _status(rows) == {"f.distance": "not applicable", "f.loss": "not applicable"}
    assert all("no onset" in r["reason"] for r in rows)
    # an onset, but the central flow never left gradient flow (tr Sigma = 0 throughout)
    flat = _results(d_cf=1.0, d_gf=1.0, cf_loss=1.5)
    flat["records"]["cf_sigma"] = [0.0] * len(flat["records"]["t"])
    assert set(_status(flow_distance_rows(flat)).values()) == {"not applicable"}
    assert "never reached the edge" in flow_distance_rows(flat)[0]["reason"]
    diverged = flow_distance_rows(_results(diverged_at=50))
    assert all(r["reason"] == "GD diverged at step 50" for r in diverged)


def test_central_flow_rows_not_applicable_without_onset_or_window():
    assert set(_status(central_flow_rows(_results(onset=None), WINDOW)).values()) \
        == {"not applicable"}
    # onset at step 90: the last 20 steps (80..100) start before it
    late = _by_name(central_flow_rows(_results(onset=90), WINDOW))
    assert late["d.loss"]["status"] == late["d.sharpness"]["status"] == "not applicable"
    assert "too short a window" in late["d.loss"]["reason"]
    assert late["d.loss_path"]["reason"] == ("no record time with a full centred window "
                                             "after the onset")
    diverged = central_flow_rows(_results(diverged_at=50), WINDOW)
    assert all(r["reason"] == "GD diverged at step 50" for r in diverged)


def test_self_stabilization_row_not_applicable_without_its_premise():
    res = _results()
    res["onset"]["beta"] = -2.0
    (r,) = self_stabilization_rows(res)
    assert r["status"] == "not applicable" and "beta > 0" in r["reason"]
    late = _results(onset=STEPS + 1)
    (r,) = self_stabilization_rows(late)
    assert r["reason"] == "no oscillation recorded after the onset"
    (r,) = self_stabilization_rows(_results(diverged_at=50))
    assert r["reason"] == "the run diverged at step 50"


def test_constrained_row_not_applicable_without_onset_or_gradient_flow():
    (r,) = constrained_rows(_results(onset=None))
    assert r["status"] == "not applicable" and "no onset" in r["reason"]
    no_gf = _results()
    no_gf["records"]["gd_center_gf"] = []
    (r,) = constrained_rows(no_gf)
    assert r["status"] == "not applicable" and "gradient flow" in r["reason"]
    (r,) = constrained_rows(_results(diverged_at=50))
    assert r["reason"] == "the run diverged at step 50"


def test_drop_rows_not_applicable_when_the_main_run_diverged_before_the_drop():
    rise = [(100 + 5 * k, s) for k, s in enumerate([5, 7, 9, 10.2] + [10.1, 9.9] * 20)]
    res = {"runs": {"drop": {"edge": EDGE, "sharpness": rise},
                    "main": {"diverged_at": 40}}}
    rows = drop_rows(res, 100)
    assert set(_status(rows).values()) == {"not applicable"}
    assert all("diverged at step 40, before the drop" in r["reason"] for r in rows)
    res["runs"]["main"]["diverged_at"] = None
    assert set(_status(drop_rows(res, 100)).values()) == {"holds"}


def test_evaluate_counts_statuses(evaluated_config):
    config = evaluated_config(("edge", "central-flow", "self-stabilization", "flow-distance",
                               "constrained"), window=WINDOW)
    assert count_statuses(evaluate(_results(), config)) == {
        "held": 10, "failed": 0, "not_applicable": 0, "total": 10}
    assert count_statuses(evaluate(_results(diverged_at=205), config)) == {
        "held": 0, "failed": 0, "not_applicable": 10, "total": 10}
    no_onset = count_statuses(evaluate(_results(onset=None), config))
    assert no_onset["held"] == 3 and no_onset["not_applicable"] == 7


def test_flow_rows_fail_with_the_reason_when_the_central_flow_stopped():
    """A central flow that lost the edge gives no prediction: its rows fail, saying why,
    while a premise that did not occur still makes them not applicable."""
    res = _results()
    res["cf_stopped"] = "the central flow stopped before step 40: runaway"
    rows = central_flow_rows(res, WINDOW) + flow_distance_rows(res)
    assert {r["status"] for r in rows} == {"fails"}
    assert all(r["reason"] == res["cf_stopped"] for r in rows)
    res = _results(onset=None)
    res["cf_stopped"] = "the central flow stopped before step 40: runaway"
    assert {r["status"] for r in flow_distance_rows(res)} == {"not applicable"}
