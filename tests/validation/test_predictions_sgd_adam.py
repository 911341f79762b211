"""Row builders of the SGD and Adam checks on constructed records: a case that holds and
cases that must fail."""


import pytest

from validation.predictions import BAND, batch_sharpness_rows, preconditioned_edge_rows

ETA = 0.2  # 2/eta = 10


def _sgd(*, bs_plateau=10.1, lam=9.0, alpha=1.0, beta=4.0, sigma=5.0, diverged_at=None):
    """Batch sharpness rising from 6 to ``bs_plateau``, lambda_max at ``lam`` after onset;
    the predicted gap is eta beta sigma / (4 alpha) = 0.2 * 4 * 5 / 4 = 1 (so lam = 9 is
    exactly at the prediction)."""
    bs = [6.0, 8.0, 9.5, 10.2] + [bs_plateau, 2 * bs_plateau - 10.2] * 10
    t = [5 * i for i in range(len(bs))]
    k = len(bs)
    main = {"eta": ETA, "edge": 2 / ETA, "optimizer": "sgd", "diverged_at": diverged_at,
            "sharpness": list(zip(t, [5.0] * 3 + [lam] * (k - 3), strict=True))}
    sto = {"t": t, "batch_sharpness": bs, "batch_lambda": [12.0] * k,
           "lambda_max": [5.0] * 3 + [lam] * (k - 3), "sigma_u2": [sigma] * k,
           "alpha": [alpha] * k, "beta": [beta] * k, "batch_size": 50, "batches": 8}
    return {"runs": {"main": main}, "stochastic": sto}


def _holds(rows):
    return {r["name"]: r["holds"] for r in rows}


def test_batch_sharpness_rows_hold_on_an_edge_of_stochastic_stability():
    rows = batch_sharpness_rows(_sgd())
    assert _holds(rows) == {"h.plateau": True, "h.below": True, "h.gap": True}, rows
    gap = {r["name"]: r for r in rows}["h.gap"]
    assert gap["predicted"] == pytest.approx(1.0) and gap["measured"] == pytest.approx(1.0)


@pytest.mark.parametrize(("records", "failing"), [
    ({"bs_plateau": 12.0}, {"h.plateau"}),               # batch sharpness 20% above 2/eta
    ({"lam": 10.5}, {"h.below", "h.gap"}),                # lambda_max above batch sharpness
    ({"sigma": 25.0}, {"h.gap"}),                         # prediction 5x the measured gap
    ({"alpha": 8.0}, {"h.gap"}),                          # prediction 1/8 of it
    ({"alpha": -1.0}, {"h.gap"}),                         # no sharpening: no prediction
    ({"diverged_at": 70}, {"h.plateau", "h.below", "h.gap"}),
])
def test_batch_sharpness_rows_fail(records, failing):
    rows = batch_sharpness_rows(_sgd(**records))
    assert {n for n, ok in _holds(rows).items() if not ok} == failing, rows


def _statuses(rows):
    return {r["name"]: r["status"] for r in rows}


def test_batch_sharpness_rows_without_their_premise_are_not_applicable():
    # no sharpening (alpha <= 0): the gap formula predicts nothing; the levels still count
    rows = batch_sharpness_rows(_sgd(alpha=-1.0))
    assert _statuses(rows) == {"h.plateau": "holds", "h.below": "holds",
                               "h.gap": "not applicable"}, rows
    assert "alpha" in rows[2]["reason"]
    # a diverged run: nothing applies
    rows = batch_sharpness_rows(_sgd(diverged_at=70))
    assert set(_statuses(rows).values()) == {"not applicable"}
    assert all("diverged at step 70" in r["reason"] for r in rows)
    # a real failure stays a failure
    assert _statuses(batch_sharpness_rows(_sgd(lam=10.5)))["h.below"] == "fails"


def test_batch_sharpness_rows_fail_without_onset():
    res = _sgd()
    res["stochastic"]["batch_sharpness"] = [6.0] * len(res["stochastic"]["t"])
    rows = batch_sharpness_rows(res)
    assert set(_statuses(rows).values()) == {"not applicable"}
    assert all("no onset" in r["reason"] for r in rows)
    # the levels are still measured, over the second half of the run
    assert rows[0]["measured"] == 6.0 and "no onset" in rows[0]["note"]
    assert rows[2]["measured"] == pytest.approx(1.0)


def _adam(*, pre_plateau=38.5, raw=3.0, diverged_at=None, optimizer="adam"):
    """Preconditioned sharpness rising from 10 to the threshold 38/eta (eta = 1: 38),
    raw sharpness ``raw``."""
    pre = [10.0, 20.0, 30.0, 38.5] + [pre_plateau, 2 * pre_plateau - 38.5] * 10
    t = [5 * (i + 1) for i in range(len(pre))]
    edge = 38.0 if optimizer == "adam" else 2.0
    main = {"eta": 1.0, "edge": edge, "optimizer": optimizer, "diverged_at": diverged_at,
            "sharpness": [(0, 1.0)] + [(x, raw) for x in t]}
    return {"runs": {"main": main}, "adaptive": {"t": t, "preconditioned": pre}}


def test_preconditioned_edge_rows_hold_at_the_adam_threshold():
    rows = preconditioned_edge_rows(_adam())
    assert _holds(rows) == {"i.rise": True, "i.plateau": True, "i.band": True,
                            "i.raw": True}, rows


@pytest.mark.parametrize(("records", "failing"), [
    ({"pre_plateau": 45.0}, {"i.plateau", "i.band"}),     # hovers 18% above the threshold
    ({"raw": 38.0}, {"i.raw"}),                            # the raw sharpness sits there too
    ({"raw": 38.0 * (1 + BAND / 2)}, {"i.raw"}),
    ({"optimizer": "rmsprop"}, {"i.rise", "i.plateau", "i.band", "i.raw"}),  # edge 2, not 38
    ({"diverged_at": 90}, {"i.rise", "i.plateau", "i.band", "i.raw"}),
])
def test_preconditioned_edge_rows_fail(records, failing):
    rows = preconditioned_edge_rows(_adam(**records))
    assert {n for n, ok in _holds(rows).items() if not ok} == failing, rows


def test_preconditioned_edge_rows_without_an_onset_are_not_applicable():
    # RMSProp's preconditioned sharpness comes down to its threshold from above: no rise
    res = _adam()
    res["adaptive"]["preconditioned"] = [60.0, 50.0, 45.0] + [39.0] * 21
    statuses = _statuses(preconditioned_edge_rows(res))
    assert statuses == dict.fromkeys(("i.rise", "i.plateau", "i.band", "i.raw"),
                                     "not applicable"), statuses
    # hovering above the threshold after a real rise is a failure, not n/a
    assert _statuses(preconditioned_edge_rows(_adam(pre_plateau=45.0)))["i.plateau"] == "fails"
