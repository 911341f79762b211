"""The edge statistics of the paper's figures, on synthetic series whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from paper.edge_stats import edge_summary, oscillation_variance, span, summary_table


def _series():
    """Sharpening to the edge 2 at step 30, a catapult to 2.6 at step 40, back at the edge at
    step 60, then alternating 2.04 / 1.92 (every 10 steps) to step 300."""
    t = np.arange(0, 301, 10)
    s = np.empty(len(t))
    s[:3] = [1.0, 1.4, 1.8]
    s[3:6] = [2.1, 2.6, 2.3]
    s[6] = 1.7
    s[7:] = np.where(np.arange(len(t) - 7) % 2 == 0, 2.04, 1.92)
    return t, s


def test_catapult_and_plateau_of_a_known_series():
    t, s = _series()
    r = edge_summary(t, s, 2.0, end=300)
    assert r["onset"] == 30
    assert (r["peak"], r["peak_at"], r["settle"]) == (2.6, 40, 60)
    assert r["overshoot"] == pytest.approx(1.3)
    assert r["window"] == 30 + 270 // 3 == 120
    assert r["after_transient"] is True
    late = s[t >= 120]
    assert r["plateau"] == pytest.approx(late.mean())
    assert r["plateau_rel"] == pytest.approx(late.mean() / 2 - 1)
    # after the onset: 2.1, 2.6, 2.3, 1.7 outside ±5% (1.92 is 4% below), the rest inside
    post = s[3:]
    assert r["tracked_after_onset"] == len(post)
    assert r["within_after_onset"] == pytest.approx((len(post) - 4) / len(post))
    # the plateau window holds none of them
    assert (r["within"], r["tracked"]) == (1.0, len(late))


def test_within_is_counted_over_the_plateau_window():
    t, s = _series()
    s[t == 200] = 2.2  # +10%: outside the band, inside the plateau window (from step 120)
    s[t == 250] = 1.8  # -10%: likewise
    s[t == 290] = 1.95  # -2.5%: inside the band
    r = edge_summary(t, s, 2.0, end=300)
    late = s[t >= 120]
    assert r["tracked"] == len(late) == 19
    assert r["within"] == pytest.approx(17 / 19)
    assert r["plateau"] == pytest.approx(late.mean())
    assert r["tracked_after_onset"] == 28
    assert r["within_after_onset"] == pytest.approx(22 / 28)
    # a window ending earlier (end=200) holds steps 86..200: the one at 200 is out
    early = edge_summary(t, s, 2.0, end=200)
    assert early["window"] == 30 + 170 // 3 == 86
    assert early["tracked"] == 12 and early["within"] == pytest.approx(11 / 12)


def test_loss_spike_is_measured_over_the_catapult_only():
    t, s = _series()
    loss = np.linspace(1.0, 0.1, 301)
    loss[45] = 1.5  # inside the catapult (30..60): counted
    loss[200] = 9.0  # in the plateau: not part of the spike
    r = edge_summary(t, s, 2.0, end=300, loss=loss)
    assert r["loss_start_value"] == 1.0
    assert r["loss_onset"] == pytest.approx(loss[30])
    assert r["loss_peak"] == 1.5 and r["loss_spike"] == 1.5


def test_after_a_drop_and_a_catapult_that_never_ends():
    t, s = _series()
    # A drop at step 100: the new edge 2.5 is first reached at step 100's later values.
    s2 = s.copy()
    s2[t >= 150] = 2.6
    loss = np.full(201, 0.5)
    loss[150 - 100] = 0.7
    r = edge_summary(t, s2, 2.5, end=300, after=100, loss=loss, loss_start=100)
    assert r["onset"] == 150 and r["settle"] is None and r["after_transient"] is False
    assert r["peak"] == 2.6 and r["loss_peak"] == 0.7 and r["loss_spike"] == pytest.approx(1.4)
    # the catapult at step 40 lies before the drop and is ignored
    assert r["within"] == 1.0
    never = edge_summary(t, s, 3.0, end=300, loss=loss)
    assert never["onset"] is None and np.isnan(never["plateau"]) and never["tracked"] == 0


@pytest.mark.parametrize("kwargs, match", [
    ({"edge": 0.0}, "edge"), ({"edge": float("nan")}, "edge"), ({"band": -0.1}, "band"),
    ({"end": -5}, "end"), ({"s": [1.0, 2.0]}, "t and s")])
def test_bad_arguments_are_named(kwargs, match):
    t, s = _series()
    args = {"t": t, "s": s, "edge": 2.0, "end": 300} | kwargs
    with pytest.raises(ValueError, match=match):
        edge_summary(args.pop("t"), args.pop("s"), args.pop("edge"), **args)


def test_oscillation_variance_is_the_windowed_mean_square():
    x_t = np.arange(1, 50)
    x = np.where(x_t % 2 == 0, 1.0, -1.0) * (0.1 * x_t)
    got = oscillation_variance(x_t, x, [10, 25, 48, 100], 3)
    for c, value in zip([10, 25, 48], got[:3], strict=True):
        window = (0.1 * np.arange(c - 3, min(c + 3, 49) + 1)) ** 2
        assert value == pytest.approx(window.mean())
    assert np.isnan(got[3])
    with pytest.raises(ValueError, match="half"):
        oscillation_variance(x_t, x, [10], -1)
    with pytest.raises(ValueError, match="x_t and x"):
        oscillation_variance(x_t, x[:-1], [10], 1)


def test_summary_table_rows_and_span():
    t, s = _series()
    loss = np.linspace(1.0, 0.1, 301)
    reached = edge_summary(t, s, 2.0, end=300, loss=loss)
    never = edge_summary(t, s, 3.0, end=300)
    lines = summary_table([("a", reached), ("b", never)]).splitlines()
    assert len(lines) == 4 and lines[1] == "|" + "---|" * 9
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert cells == ["a", "2.00", "step 30", "1.30 (40)", "step 60",
                     f"{loss[30:61].max():.2f}", f"{reached['plateau']:.2f} "
                     f"({100 * reached['plateau_rel']:+.1f}%)", "100% of 19",
                     f"{100 * 24 / 28:.0f}% of 28"]
    assert lines[3].split("|")[3].strip() == "not reached"
    assert span([0.5, 0.25]) == "0.25–0.50" and span([0.5, 0.5004]) == "0.50"
