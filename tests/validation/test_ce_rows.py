"""The cross-entropy rows of the edge check: reach 2/eta, hover, then decline.

The synthetic runs below track the sharpness every 5 steps against the edge 10 and give
the loss at every step; each expected number is counted by hand from the definitions in
``validation.predictions.cross_entropy_edge_rows``. The cases sit at the boundaries: a
loss exactly half its onset value, a sharpness exactly at the band's edge, a rank
correlation of exactly 0.5, exactly ``CE_MIN_DECLINE`` steps in the decline window.
"""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from validation.experiment import Config, run_experiment
from validation.predictions import (
    CE_MIN_DECLINE,
    cross_entropy_edge_rows,
    evaluate,
    rank_correlation,
)

EDGE = 10.0
NAMES = ["a.rise", "a.plateau", "a.band", "a.ce-reach", "a.ce-hover", "a.ce-decline"]


def _run(rise, hover, decline, *, fall_loss=0.5):
    """Tracked sharpness ``rise + hover + decline`` at steps 0, 5, 10, ...; the loss is 1
    up to the first decline step, ``fall_loss`` there, then falls by 1% a step."""
    values = list(rise) + list(hover) + list(decline)
    fall = 5 * (len(rise) + len(hover))
    steps = 5 * len(values)
    loss = [1.0 if t < fall else fall_loss * 0.99 ** (t - fall) for t in range(steps)]
    return {"edge": EDGE, "loss": loss,
            "sharpness": [(5 * i, float(s)) for i, s in enumerate(values)]}


def _rows(run):
    rows = cross_entropy_edge_rows(run)
    assert [r["name"] for r in rows] == NAMES and {r["check"] for r in rows} == {"edge"}
    return {r["name"]: r for r in rows}


RISE = [5.0, 7.0, 9.0]
# onset at step 15 (10.5 >= 10 after 5 < 9); hover steps 15..55; decline from step 60
HOVER = [10.5, 10.2, 9.8, 10.2, 9.8, 10.2, 9.8, 10.2, 9.8]
DECLINE = list(np.linspace(9.0, 2.0, 20))


def test_reach_hover_and_decline_all_hold():
    rows = _rows(_run(RISE, HOVER, DECLINE))
    reach, hover, decline = rows["a.ce-reach"], rows["a.ce-hover"], rows["a.ce-decline"]
    assert reach["measured"] == 1.05 and reach["error"] == 0.0 and reach["holds"]
    assert reach["note"] == "peak 10.5 at step 15"
    assert hover["measured"] == 1.0 and hover["holds"]
    assert hover["note"].startswith("9 tracked steps from the onset at step 15 to step 60")
    assert decline["measured"] == pytest.approx(1.0) and decline["holds"]
    assert decline["note"].startswith("20 tracked steps from step 60: S/edge 0.9 -> 0.2")
    # the plateau rows of squared loss keep their numbers but do not judge a CE run
    for name in ("a.plateau", "a.band"):
        assert rows[name]["status"] == "not applicable" and "cross-entropy" in rows[name]["reason"]
    assert math.isfinite(rows["a.plateau"]["measured"])
    assert rows["a.rise"]["holds"]


def test_the_step_where_the_loss_halves_opens_the_decline_window():
    """The loss is exactly 1/2 of its onset value at step 60: that step, whose sharpness is
    far outside the band, belongs to the decline window, not to the hover window."""
    rows = _rows(_run(RISE, HOVER, [15.0, *DECLINE]))
    assert rows["a.ce-hover"]["measured"] == 1.0
    assert rows["a.ce-decline"]["note"].startswith("21 tracked steps from step 60: S/edge 1.5")
    # just above half: the hover window goes on to the first step below it
    rows = _rows(_run(RISE, HOVER, [15.0, *DECLINE], fall_loss=0.5 + 1e-9))
    assert rows["a.ce-hover"]["measured"] == pytest.approx(9 / 10)


@pytest.mark.parametrize(("peak", "holds"), [(9.81, True), (9.79, False)])
def test_reach_holds_within_two_percent_below_the_edge(peak, holds):
    rows = _rows(_run(RISE, [peak, 9.0], [8.0] * 12))
    assert rows["a.ce-reach"]["measured"] == pytest.approx(peak / EDGE)
    assert rows["a.ce-reach"]["holds"] is holds


@pytest.mark.parametrize(("outside", "holds"), [([], True), ([12.1], True),
                                                ([12.1, 7.9], False), ([11.9, 8.1], True)])
def test_hover_holds_with_at_most_one_step_in_ten_outside_the_band(outside, holds):
    """Ten hover steps; 12.1 and 7.9 are outside |S/edge - 1| <= 0.2, 11.9 and 8.1 inside."""
    hover = [10.5] + outside + [10.0] * (9 - len(outside))
    rows = _rows(_run(RISE, hover, DECLINE))
    inside = sum(abs(s / EDGE - 1) <= 0.2 for s in hover)
    assert rows["a.ce-hover"]["measured"] == inside / 10
    assert rows["a.ce-hover"]["holds"] is holds


# n = 11 ranks without ties: rho = 1 - 6 sum d^2 / (n (n^2 - 1)) = 1 - sum d^2 / 220
EXACT_HALF = [1, 2, 9, 4, 6, 5, 0, 3, 7, 8, 10]   # sum d^2 = 110: rho = 0.5
BELOW_HALF = [2, 5, 1, 8, 0, 4, 9, 7, 6, 3, 10]   # sum d^2 = 112: rho = 0.4909...


@pytest.mark.parametrize(("perm", "holds"), [(EXACT_HALF, True), (BELOW_HALF, False)])
def test_decline_holds_down_to_a_rank_correlation_of_one_half(perm, holds):
    """The loss falls at every decline step, so its rank there is 10 - i; the sharpness at
    step i is given the rank perm[10 - i]."""
    sum_d2 = sum((r - k) ** 2 for k, r in enumerate(perm))
    decline = [5.0 + 0.1 * perm[10 - i] for i in range(11)]
    rows = _rows(_run(RISE, HOVER, decline))
    assert rows["a.ce-decline"]["measured"] == pytest.approx(1 - sum_d2 / 220, abs=1e-15)
    assert rows["a.ce-decline"]["holds"] is holds


def test_a_rise_instead_of_a_decline_fails():
    rows = _rows(_run(RISE, HOVER, np.linspace(10.0, 15.0, 20)))
    decline = rows["a.ce-decline"]
    assert decline["measured"] == pytest.approx(-1.0) and decline["status"] == "fails"
    # a sharpness that keeps hovering exactly while the loss falls: no relation, no decline
    rows = _rows(_run(RISE, HOVER, [10.0] * 20))
    assert math.isnan(rows["a.ce-decline"]["measured"])
    assert rows["a.ce-decline"]["status"] == "fails"


def test_a_run_that_ends_while_hovering_is_not_applicable_for_the_decline():
    rows = _rows(_run(RISE, HOVER + [10.1, 9.9] * 10, []))
    assert rows["a.ce-hover"]["holds"] and rows["a.ce-hover"]["note"].count("to the end")
    decline = rows["a.ce-decline"]
    assert decline["status"] == "not applicable"
    assert decline["reason"].startswith("the run ended in the hover window")
    # the decline window needs CE_MIN_DECLINE tracked steps: one short is not applicable
    short = _rows(_run(RISE, HOVER, DECLINE[:CE_MIN_DECLINE - 1]))["a.ce-decline"]
    assert short["status"] == "not applicable"
    assert f"the run ended {CE_MIN_DECLINE - 1} tracked steps after" in short["reason"]
    enough = _rows(_run(RISE, HOVER, DECLINE[:CE_MIN_DECLINE]))["a.ce-decline"]
    assert enough["status"] == "holds"


def test_a_run_that_never_reaches_the_edge():
    rows = _rows(_run(RISE, [9.5, 9.0, 8.5], [8.0] * 12))
    assert rows["a.ce-reach"]["measured"] == 0.95 and rows["a.ce-reach"]["status"] == "fails"
    for name in ("a.ce-hover", "a.ce-decline"):
        assert rows[name]["status"] == "not applicable"
        assert rows[name]["reason"].startswith("no onset")
    # a run that starts at the edge has no rise to observe
    flat = _rows(_run([], [10.1, 9.9] * 5, [8.0] * 12))["a.ce-reach"]
    assert flat["status"] == "not applicable" and "never 10% below" in flat["reason"]


def test_a_diverged_run_judges_nothing():
    run = _run(RISE, HOVER, DECLINE)
    run["diverged_at"] = 150
    rows = _rows(run)
    assert all(r["status"] == "not applicable" for r in rows.values())
    assert all("diverged at step 150" in rows[n]["reason"] for n in NAMES[3:])


def test_evaluate_picks_the_rows_by_the_loss():
    res = {"runs": {"main": {**_run(RISE, HOVER, DECLINE), "optimizer": "gd"}}}
    ce = evaluate(res, SimpleNamespace(checks=("edge",), loss="ce"))
    assert [r["name"] for r in ce] == NAMES
    mse = evaluate(res, SimpleNamespace(checks=("edge",), loss="mse"))
    assert [r["name"] for r in mse] == NAMES[:3]
    assert all(r["status"] == "fails" for r in mse[1:])


def test_rank_correlation_against_scipy():
    seed = 12
    print("seed", seed)
    rng = np.random.default_rng(seed)
    for n in (2, 5, 40):
        a = rng.integers(0, 6, n).astype(float)   # ties
        b = a + rng.normal(size=n)
        assert rank_correlation(list(a), list(b)) == pytest.approx(spearmanr(a, b)[0])
    assert rank_correlation([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(rank_correlation([1, 1, 1], [1, 2, 3]))
    with pytest.raises(ValueError, match="same length"):
        rank_correlation([1, 2], [1, 2, 3])


@pytest.mark.slow
def test_a_real_cross_entropy_run_reaches_the_edge_and_declines(full):
    """MNIST-1D, cross-entropy, eta 0.6. Reduced: 300 examples, width 32, 300 steps (the
    loss halves from its onset value near step 115); --full: the default network (1,000
    examples, width 64) for 1,000 steps."""
    torch.set_num_threads(1)
    cfg = (Config(loss="ce", checks=("edge",), eta=0.6, steps=1000) if full else
           Config(loss="ce", checks=("edge",), n=300, width=32, eta=0.6, steps=300))
    res = run_experiment(cfg)
    rows = {r["name"]: r for r in evaluate(res, cfg)}
    assert list(rows) == NAMES
    assert rows["a.ce-reach"]["holds"] and rows["a.ce-decline"]["holds"]
    assert rows["a.ce-decline"]["measured"] > 0.9
    # the hover row counts the band over the window set by the loss (measured by hand)
    main = res["runs"]["main"]
    loss, edge = main["loss"], main["edge"]
    onset = next(t for t, s in main["sharpness"] if s >= edge)
    fall = next(t for t in range(onset, len(loss)) if 2 * loss[t] <= loss[onset])
    hover = [s for t, s in main["sharpness"] if onset <= t < fall]
    assert rows["a.ce-hover"]["status"] != "not applicable"
    assert rows["a.ce-hover"]["measured"] == np.mean([0.8 <= s / edge <= 1.2 for s in hover])
