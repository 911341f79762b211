"""The prediction rows against their definitions, case by case at the boundaries.

Each expected number is computed here from the row's definition (the docstrings of
``validation.predictions``) by an explicit loop or a hand count, not with the module's
own helpers; the cases sit at the boundaries of the definitions (a point exactly at
0.9 edge, a record exactly ``window // 2`` after the onset, a distance of zero) and just
past each stated tolerance.
"""

import math
import warnings

import numpy as np
import pytest

from validation.predictions import (
    central_flow_rows,
    centred_average,
    constrained_rows,
    drop_rows,
    edge_rows,
    evaluate,
    flow_distance_rows,
    onset_step,
    row,
    self_stabilization_rows,
)

KEYS = {"check", "name", "quantity", "predicted", "measured", "error", "tolerance", "holds",
        "note", "status", "reason"}


def _by_name(rows):
    return {r["name"]: r for r in rows}


def _run(values, edge=10.0, every=5, start=0):
    return {"edge": edge, "sharpness": [(start + i * every, v) for i, v in enumerate(values)]}


# -- row and onset_step ----------------------------------------------------------------------

def test_row_holds_up_to_and_including_its_tolerance():
    r = row("c", "n", "q", 1.0, 1.5, 0.5, 0.5)
    assert set(r) == KEYS and r["holds"] and r["note"] == ""
    assert not row("c", "n", "q", 1.0, 1.5, 0.5 + 1e-12, 0.5)["holds"]
    # an infinite number anywhere makes the row fail, even with a zero error
    assert not row("c", "n", "q", math.inf, 1.0, 0.0, 0.5)["holds"]
    assert not row("c", "n", "q", 1.0, -math.inf, 0.0, 0.5)["holds"]


def test_onset_step_follows_its_definition():
    """First tracked step >= after with S >= edge, after some S < 0.9 edge before it."""
    # the dip below 0.9 edge may be at step 0 (the default `after` keeps it)
    assert onset_step([(0, 5.0), (5, 10.0)], 10.0) == 5
    # exactly 0.9 edge is not below it; exactly the edge is reaching it
    assert onset_step([(0, 9.0), (5, 10.0)], 10.0) is None
    assert onset_step([(0, 8.9), (5, 10.0)], 10.0) == 5
    # steps before `after` are skipped, not the end of the search; step `after` itself counts
    pts = [(0, 5.0), (5, 9.5), (10, 5.0), (15, 10.0)]
    assert onset_step(pts, 10.0, after=5) == 15
    assert onset_step([(10, 5.0), (15, 10.0)], 10.0, after=10) == 15
    assert onset_step([(10, 5.0), (15, 10.0)], 10.0, after=11) is None


# -- edge rows ---------------------------------------------------------------------------------

def test_edge_rows_state_their_predictions_and_notes():
    """Onset at step 15 (8 < 9, then 10.5 >= 10): 3 tracked steps from the onset on."""
    rows = _by_name(edge_rows("edge", "a", _run([8, 9, 9.5, 10.5, 10, 9.8]), what="2/eta"))
    assert [r["check"] for r in rows.values()] == ["edge"] * 3
    rise, plateau, band = rows["a.rise"], rows["a.plateau"], rows["a.band"]
    assert (rise["predicted"], plateau["predicted"], band["predicted"]) == (1.0, 10.0, 1.0)
    assert (rise["tolerance"], plateau["tolerance"], band["tolerance"]) == (0.02, 0.05, 0.1)
    # low 8, high 10.5: (10.5 - 8) / (10 - 8) of the gap closed
    assert rise["measured"] == 1.25 and rise["error"] == 0.0
    assert "onset at step 15" in rise["note"] and "rose to 10.5" in rise["note"]
    assert plateau["note"] == "3 tracked steps after onset"
    assert "2/eta" in rise["quantity"] and "2/eta" in plateau["quantity"]


def test_the_plateau_and_band_fail_past_their_tolerances():
    # after the onset: 10.5, 13, 13 -> median 13, 30 % above the edge; 1 of 3 in the band
    rows = _by_name(edge_rows("edge", "a", _run([5, 10.5, 13, 13])))
    assert rows["a.plateau"]["measured"] == 13.0 and not rows["a.plateau"]["holds"]
    assert rows["a.band"]["measured"] == pytest.approx(1 / 3) and not rows["a.band"]["holds"]


def test_a_lowest_point_at_exactly_0_9_edge_is_no_sharpening():
    """The gap 0.1 edge is not more than 0.1 edge: nothing to measure, the rise is NaN."""
    rows = _by_name(edge_rows("edge", "a", _run([0.9, 0.95, 0.98], edge=1.0)))
    rise = rows["a.rise"]
    assert math.isnan(rise["measured"]) and math.isnan(rise["error"]) and not rise["holds"]
    assert rise["status"] == "not applicable"
    assert "never 10% below the edge" in rise["reason"]
    assert rows["a.plateau"]["reason"].startswith("no onset")


def test_edge_rows_of_a_run_with_no_tracked_step_are_nan_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no mean of an empty list either
        rows = _by_name(edge_rows("drop", "c", _run([5, 10.5, 10]), after=100))
    assert rows["c.rise"]["reason"] == "no tracked steps from step 100 on"
    for r in rows.values():
        assert math.isnan(r["measured"]) and not r["holds"]


def test_drop_rows_measure_the_rise_from_the_drop_on():
    """Before the drop (step 100) the sharpness rose from 1 to the old edge 5; after it, from
    5 to 10.4 against the new edge 10: (10.4 - 5) / (10 - 5) = 1.08 of the gap."""
    before = _run([1, 2, 3, 4, 5], every=20)["sharpness"]
    after = _run([5, 7, 9, 10.4, 10, 10], start=100)["sharpness"]
    rows = _by_name(drop_rows({"runs": {"drop": {"edge": 10.0, "sharpness": before + after}}},
                              100))
    assert list(rows) == ["c.rise", "c.plateau", "c.band"]
    assert all(r["check"] == "drop" for r in rows.values())
    assert "the new 2/eta" in rows["c.rise"]["quantity"]
    assert rows["c.rise"]["measured"] == pytest.approx(1.08)


# -- the rows on the main run ------------------------------------------------------------------

def _results(*, loss, t, cf_pred, onset=None, alpha=1.0, beta=2.0, xs=(), **records):
    main = {"loss": list(loss), "edge": 4.0, "optimizer": "gd", "x": list(xs),
            "sharpness": [(k, 4.0) for k in range(0, len(loss), 10)]}
    rec = {"t": list(t), "cf_pred_loss": list(cf_pred), "cf_sharpness": [4.0] * len(t),
           "gd_centre_sharpness": [4.0] * len(t), **records}
    return {"runs": {"main": main}, "records": rec,
            "onset": None if onset is None else {"t": onset, "alpha": alpha, "beta": beta}}


def test_centred_average_against_an_explicit_loop():
    values = np.arange(12.0) ** 2
    for t in range(12):
        for half in (0, 1, 2, 5):
            idx = [i for i in range(t - half, t + half + 1) if 0 <= i < len(values)]
            assert centred_average(values, t, half) == pytest.approx(np.mean(values[idx]))


def test_central_flow_loss_over_the_last_window_and_from_the_onset_on():
    """100 steps, window 20: the loss is 1 up to step 78 and 12 from step 79 on."""
    loss = [1.0] * 79 + [12.0] * 22
    # GD's mean over the 21 steps centred on t = 80 (70..90): (9 * 1 + 12 * 12) / 21
    at_80 = 153 / 21
    res = _results(loss=loss, t=[70, 80, 95, 100], cf_pred=[1.0, at_80, 12.0, 6.0], onset=60)
    rows = _by_name(central_flow_rows(res, window=20))
    assert [r["check"] for r in rows.values()] == ["central-flow"] * 3
    # GD: mean of the 21 losses of steps 80..100; the flow: mean of its records at 80..100
    assert rows["d.loss"]["measured"] == 12.0
    assert rows["d.loss"]["predicted"] == pytest.approx((at_80 + 18) / 3)
    # t = 70 = onset + 10 and t = 80 qualify (t <= 100 - 10); at 70 GD's mean over steps
    # 60..80 is (19 * 1 + 2 * 12) / 21 = 43 / 21 against the flow's 1, at 80 no error
    path = rows["d.loss_path"]
    assert path["measured"] == pytest.approx((43 / 21 - 1) / (43 / 21) / 2)
    assert path["predicted"] == 0.0 and not path["holds"]
    assert path["note"].startswith("2 record times") and "21 centred steps" in path["note"]


def test_central_flow_path_and_sharpness_fail_past_two_percent():
    loss = [2.0] * 101
    res = _results(loss=loss, t=[50, 100], cf_pred=[1.0, 2.0], onset=0)
    res["records"]["cf_sharpness"] = [4.0, 4.0]
    res["records"]["gd_centre_sharpness"] = [4.0, 6.0]
    rows = _by_name(central_flow_rows(res, window=20))
    assert rows["d.loss_path"]["measured"] == 0.5 and not rows["d.loss_path"]["holds"]
    assert rows["d.sharpness"]["measured"] == 6.0 and rows["d.sharpness"]["error"] == 0.5
    assert not rows["d.sharpness"]["holds"]
    assert "2/eta = 4" in rows["d.sharpness"]["note"]


def test_central_flow_records_must_be_aligned():
    res = _results(loss=[1.0] * 101, t=[80, 100], cf_pred=[1.0], onset=0)
    with pytest.raises(ValueError):
        central_flow_rows(res, window=20)
    # one sharpness record short: the window mean over it must refuse as well
    res = _results(loss=[1.0] * 101, t=[80, 100], cf_pred=[1.0, 1.0], onset=0)
    res["records"]["cf_sharpness"] = [4.0]
    with pytest.raises(ValueError):
        central_flow_rows(res, window=20)


def test_central_flow_rows_without_records_in_the_window_are_nan_without_warnings():
    """No record of the flow in the last 20 steps, and no onset: nothing to average."""
    res = _results(loss=[1.0] * 101, t=[0, 50], cf_pred=[1.0, 1.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no mean of an empty list
        rows = _by_name(central_flow_rows(res, window=20))
    assert math.isnan(rows["d.loss"]["predicted"]) and not rows["d.loss"]["holds"]
    assert math.isnan(rows["d.loss_path"]["measured"]) and not rows["d.loss_path"]["holds"]
    assert rows["d.loss_path"]["note"].startswith("0 record times")
    # the loss row says what it compares: the flow's L + tr(Sigma)/eta with GD's mean loss
    assert "L(w) + tr(Sigma)/eta" in rows["d.loss"]["note"]


@pytest.mark.parametrize(("factor", "holds"), [(1.9, True), (2.1, False), (1 / 1.9, True),
                                               (1 / 2.1, False), (2.5, False)])
def test_self_stabilization_holds_within_a_factor_two(factor, holds):
    """alpha = 0.5, beta = 4: predicted mean x^2 = 2 alpha / beta = 0.25."""
    x = math.sqrt(0.25 * factor)
    res = _results(loss=[1.0] * 11, t=[0], cf_pred=[1.0], onset=4, alpha=0.5, beta=4.0,
                   xs=[(k, x * (-1) ** k) for k in range(11)])
    (r,) = self_stabilization_rows(res)
    assert r["check"] == "self-stabilization" and r["predicted"] == 0.25
    assert r["measured"] == pytest.approx(0.25 * factor)
    assert r["error"] == pytest.approx(abs(math.log(factor)))
    assert r["holds"] is holds and "7 steps" in r["note"]


@pytest.mark.parametrize(("alpha", "beta", "x"), [(1.0, 0.0, 1.0), (0.0, 1.0, 1.0),
                                                  (1.0, 2.0, 0.0), (1.0, -1.0, 1.0)])
def test_self_stabilization_degenerate_cases_do_not_hold(alpha, beta, x):
    """No curvature along u, no self-stabilisation force, or no oscillation at all."""
    res = _results(loss=[1.0] * 11, t=[0], cf_pred=[1.0], onset=0, alpha=alpha, beta=beta,
                   xs=[(k, x) for k in range(11)])
    (r,) = self_stabilization_rows(res)
    assert not r["holds"] and math.isnan(r["error"])


def test_self_stabilization_below_one_beta_and_without_steps():
    res = _results(loss=[1.0] * 11, t=[0], cf_pred=[1.0], onset=0, alpha=0.1, beta=0.5,
                   xs=[(k, 0.6) for k in range(11)])
    (r,) = self_stabilization_rows(res)
    assert r["predicted"] == pytest.approx(0.4) and r["holds"]
    # the onset after every recorded x: nothing measured, and no mean of nothing
    late = dict(res, onset={"t": 50, "alpha": 0.1, "beta": 0.5})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (r,) = self_stabilization_rows(late)
    assert math.isnan(r["measured"]) and not r["holds"]
    (none,) = self_stabilization_rows(dict(res, onset=None))
    assert none["check"] == "self-stabilization" and none["name"] == "e.oscillation"
    assert none["reason"] == "no onset of the edge of stability" and none["quantity"]
    assert none["status"] == "not applicable"


def _distances(**change):
    """101 steps of loss k^2 / 1000; GD's time-averaged loss at the last step is the mean of
    the last 11 (a centred window of 21 clipped at the end)."""
    loss = [k * k / 1000 for k in range(101)]
    records = dict(gd_center_cf=[5.0, 9.0, 0.3], gd_center_gf=[7.0, 0.1, 0.6],
                   gd_center_pgd=[4.0, 8.0, 0.15], gf_loss=[0.0, 50.0, 4.0],
                   cf_sigma=[0.0, 0.5, 0.5])
    records.update(change)
    return _results(loss=loss, t=[0, 50, 100], cf_pred=[0.0, 60.0, 9.0], onset=0, **records)


def test_flow_distance_rows_use_the_last_records():
    gd = sum(k * k / 1000 for k in range(90, 101)) / 11
    rows = _by_name(flow_distance_rows(_distances()))
    assert [r["check"] for r in rows.values()] == ["flow-distance"] * 2
    dist, loss = rows["f.distance"], rows["f.loss"]
    assert dist["measured"] == pytest.approx(0.5) and dist["predicted"] == 0.0
    assert dist["holds"] and "|GD-CF| = 0.3" in dist["note"]
    assert loss["measured"] == pytest.approx(abs(gd - 9.0) / abs(gd - 4.0))
    assert loss["predicted"] == 0.0 and loss["holds"]
    assert f"GD {gd:.4g}" in loss["note"] and "CF 9, GF 4" in loss["note"]


def test_flow_distance_rows_fail_past_a_ratio_of_one_and_on_zero_distances():
    rows = _by_name(flow_distance_rows(_distances(gd_center_cf=[0.0, 0.0, 0.9])))
    assert rows["f.distance"]["measured"] == pytest.approx(1.5)
    assert not rows["f.distance"]["holds"]
    gd = sum(k * k / 1000 for k in range(90, 101)) / 11
    # the flow's loss 1.5 times as far from GD's as gradient flow's
    rows = _by_name(flow_distance_rows(_distances(cf_pred_loss=[0.0, 0.0, gd + 1.5],
                                                  gf_loss=[0.0, 0.0, gd - 1.0])))
    assert rows["f.loss"]["measured"] == pytest.approx(1.5) and not rows["f.loss"]["holds"]
    # GD exactly on gradient flow: the ratios are undefined, nothing holds
    rows = _by_name(flow_distance_rows(_distances(gd_center_gf=[1.0, 1.0, 0.0],
                                                  gf_loss=[0.0, 0.0, gd])))
    assert all(math.isnan(r["measured"]) and not r["holds"] for r in rows.values())


def test_constrained_row_uses_the_last_records():
    (r,) = constrained_rows(_distances())
    assert r["check"] == "constrained" and r["predicted"] == 0.0
    assert r["measured"] == pytest.approx(0.25) and r["holds"]
    assert r["note"] == "|GD-PGD| = 0.15, |GD-GF| = 0.6"
    (r,) = constrained_rows(_distances(gd_center_pgd=[0.0, 0.0, 0.9]))
    assert r["measured"] == pytest.approx(1.5) and not r["holds"]
    (r,) = constrained_rows(_distances(gd_center_gf=[1.0, 1.0, 0.0]))
    assert math.isnan(r["measured"]) and not r["holds"]


# -- evaluate ---------------------------------------------------------------------------------

ALL_CHECKS = ("edge", "momentum", "drop", "central-flow", "self-stabilization",
              "flow-distance", "constrained")


def _everything(optimizer):
    res = _distances()
    res["onset"] = {"t": 60, "alpha": 1.0, "beta": 2.0}
    main = res["runs"]["main"]
    main.update(optimizer=optimizer, edge=10.0, x=[(k, 1.0) for k in range(101)],
                sharpness=_run([5, 8, 10.5, 10, 9.9, 10.1])["sharpness"])
    res["runs"]["momentum"] = _run([4, 7, 9, 10.2, 10, 10])
    res["runs"]["drop"] = _run([5, 5, 7, 10.3, 10, 10])
    return res


@pytest.mark.parametrize(("optimizer", "edge"), [("gd", "2/eta"),
                                                 ("heavy_ball", "2(1+beta)/eta"),
                                                 ("nesterov", "(2+2beta)/((1+2beta)eta)")])
def test_evaluate_runs_every_check_once_under_its_name(optimizer, edge, evaluated_config):
    config = evaluated_config(ALL_CHECKS)
    rows = evaluate(_everything(optimizer), config)
    assert [r["name"] for r in rows] == [
        "a.rise", "a.plateau", "a.band", "b.rise", "b.plateau", "b.band",
        "c.rise", "c.plateau", "c.band", "d.loss", "d.loss_path", "d.sharpness",
        "e.oscillation", "f.distance", "f.loss", "g.distance"]
    checks = dict(zip("abcdefg", ALL_CHECKS, strict=True))
    for r in rows:
        assert set(r) == KEYS and r["check"] == checks[r["name"][0]], r
        assert isinstance(r["quantity"], str) and r["quantity"]
        assert isinstance(r["note"], str)
    # the rise and plateau rows name the edge they are measured against
    assert all(edge in r["quantity"] for r in rows[0:2])
    assert all("2(1+beta)/eta" in r["quantity"] for r in rows[3:5])
    assert all("the new 2/eta" in r["quantity"] for r in rows[6:8])
    # the momentum run closes (10.2 - 4) / (10 - 4) of its gap; the drop run, measured from
    # step 10 on, (10.3 - 7) / (10 - 7)
    assert rows[3]["measured"] == pytest.approx(6.2 / 6)
    assert rows[6]["measured"] == pytest.approx(3.3 / 3)


@pytest.mark.parametrize("check", ALL_CHECKS)
def test_evaluate_runs_only_the_configured_checks(check, evaluated_config):
    config = evaluated_config((check,))
    rows = evaluate(_everything("gd"), config)
    assert rows and {r["check"] for r in rows} == {check}
