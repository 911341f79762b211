"""Statistics of a sharpness series at the edge of stability, one definition for every figure.

A run that reaches its critical sharpness ``edge`` (``2/eta`` for GD) first crosses it in a
*catapult*: the sharpness overshoots, the loss can spike, and the sharpness is pulled back.
:func:`edge_summary` separates that transient from the plateau that follows and measures
both, so that Figures 1, 2, 3 and 5 quote the same statistics of the same windows.
:func:`oscillation_variance` is the measured side of the central flow's prediction of
``Sigma``.
"""

from __future__ import annotations

import math

import numpy as np

#: Half-width of the band around the edge counted by :func:`edge_summary` (``±5%``).
BAND = 0.05


def edge_summary(t, s, edge: float, *, end: int, after: int = 0, loss=None,
                 loss_start: int = 0, band: float = BAND) -> dict:
    """The onset, the catapult and the plateau of a tracked sharpness series.

    Parameters
    ----------
    t, s : array_like
        Tracked steps (increasing) and the sharpness measured at them.
    edge : float
        The critical sharpness (``2/eta`` for GD), > 0.
    end : int
        The last step of the run.
    after : int
        Steps before ``after`` are ignored (a step-size drop at ``after``).
    loss : array_like, optional
        The loss at every step from ``loss_start`` on (``loss[k]`` at step
        ``loss_start + k``).
    loss_start : int
        The step of ``loss[0]``.
    band : float
        Half-width of the band ``|S/edge - 1| <= band``, > 0.

    Returns
    -------
    dict
        ``onset``: the first tracked step ``>= after`` with ``S >= edge`` (None when the
        series never reaches it; every other entry is then NaN or None).
        ``peak``, ``peak_at``, ``overshoot = peak / edge``: the largest sharpness of the
        catapult, the first excursion above the edge, from the onset to ``settle``.
        ``settle``: the first tracked step after the onset with ``S <= edge`` (None when
        the sharpness stays above the edge to the end).
        ``window``: the first step of the plateau window, the last two thirds of the
        time after the onset, ``onset + (end - onset) // 3``; ``after_transient`` is True
        when the catapult ended before it.
        ``plateau``, ``plateau_rel = plateau / edge - 1``: the mean over that window.
        ``within``: the fraction of the tracked steps of that same window (from
        ``window`` to ``end``) with ``|S/edge - 1| <= band``; ``tracked``: how many
        there are.
        ``within_after_onset``, ``tracked_after_onset``: the same fraction and count over
        every tracked step from the onset to ``end``, catapult included.
        With ``loss``: ``loss_start_value`` (the loss at ``loss_start``),
        ``loss_onset`` (at the onset), ``loss_peak`` (the largest loss from the onset to
        ``settle``, or to ``end``) and ``loss_spike = loss_peak / loss_start_value``.

    Raises
    ------
    ValueError
        ``t`` and ``s`` of different lengths, ``edge`` or ``band`` not positive, ``end``
        before ``after``.

    Notes
    -----
    The plateau window skips the first third of the time after the onset so that the
    catapult, which the window does not contain when ``after_transient`` holds, does not
    bias the mean. The mean and ``within`` are statistics of the same tracked steps,
    ``W = {k : window <= t_k <= end}``::

        plateau = (1/|W|) sum_{k in W} S_k
        within  = (1/|W|) #{k in W : |S_k / edge - 1| <= band}

    Examples
    --------
    >>> r = edge_summary([0, 10, 20, 30, 40], [1.0, 2.2, 1.95, 2.0, 2.0], 2.0, end=40)
    >>> r["onset"], r["settle"], r["window"], round(r["overshoot"], 2)
    (10, 20, 20, 1.1)
    >>> r["within"], r["tracked"], r["within_after_onset"], r["tracked_after_onset"]
    (1.0, 3, 0.75, 4)
    """
    t = np.asarray(t, dtype=np.int64)
    s = np.asarray(s, dtype=float)
    if t.shape != s.shape or t.ndim != 1:
        raise ValueError(f"t and s: one tracked step per sharpness value; got shapes "
                         f"{t.shape} and {s.shape}")
    if not (math.isfinite(edge) and edge > 0):
        raise ValueError(f"edge must be finite and > 0; got {edge!r}")
    if not (math.isfinite(band) and band > 0):
        raise ValueError(f"band must be finite and > 0; got {band!r}")
    if end < after:
        raise ValueError(f"end must be >= after; got end={end}, after={after}")
    nan = float("nan")
    out: dict = {"edge": float(edge), "onset": None, "peak": nan, "peak_at": None,
                 "overshoot": nan, "settle": None, "window": None, "after_transient": None,
                 "plateau": nan, "plateau_rel": nan, "within": nan, "tracked": 0,
                 "within_after_onset": nan, "tracked_after_onset": 0}
    keep = (t >= after) & (t <= end)
    t, s = t[keep], s[keep]
    hit = np.flatnonzero(s >= edge)
    if loss is not None:
        loss = np.asarray(loss, dtype=float)
        out.update({"loss_start_value": float(loss[0]), "loss_onset": nan,
                    "loss_peak": nan, "loss_spike": nan})
    if not len(hit):
        return out
    i0 = int(hit[0])
    onset = int(t[i0])
    back = np.flatnonzero(s[i0:] <= edge)
    i1 = i0 + int(back[0]) if len(back) else len(s)
    excursion = s[i0:i1]
    k = int(np.argmax(excursion))
    settle = int(t[i1]) if i1 < len(s) else None
    window = onset + (end - onset) // 3
    late = s[t >= window]
    plateau = float(np.mean(late))
    post = s[i0:]
    out.update({"onset": onset, "peak": float(excursion[k]), "peak_at": int(t[i0 + k]),
                "overshoot": float(excursion[k] / edge), "settle": settle, "window": window,
                "after_transient": settle is not None and settle <= window,
                "plateau": plateau, "plateau_rel": plateau / edge - 1.0,
                "within": float(np.mean(np.abs(late / edge - 1.0) <= band)),
                "tracked": len(late),
                "within_after_onset": float(np.mean(np.abs(post / edge - 1.0) <= band)),
                "tracked_after_onset": len(post)})
    if loss is not None:
        stop = settle if settle is not None else end
        lo, hi = onset - loss_start, min(stop - loss_start + 1, len(loss))
        out["loss_onset"] = float(loss[lo])
        out["loss_peak"] = float(np.max(loss[lo:hi]))
        out["loss_spike"] = out["loss_peak"] / out["loss_start_value"]
    return out


def oscillation_variance(x_t, x, centres, half: int) -> np.ndarray:
    """Mean of ``x^2`` over the window ``[c - half, c + half]`` around each centre ``c``.

    Parameters
    ----------
    x_t, x : array_like
        Steps and GD's displacement along the top eigenvector at them,
        ``x_t = u . (2 w_t - w_{t-1} - w_{t+1}) / 4``.
    centres : array_like of int
        Centres of the windows.
    half : int
        Half-width of a window, >= 0.

    Returns
    -------
    ndarray
        One value per centre; NaN where the window holds no measured step.

    Notes
    -----
    With one eigenvalue at the edge the central flow's ``Sigma = sigma^2 u u^T`` predicts
    the time average of ``x^2``: ``tr Sigma = sigma^2 ≈ <x_t^2>`` (Cohen, Damian et al.,
    arXiv 2410.24206), which is what this measures.

    Examples
    --------
    >>> oscillation_variance([1, 2, 3, 4], [1.0, -1.0, 2.0, -2.0], [2, 3], 1).tolist()
    [2.0, 3.0]
    """
    x_t = np.asarray(x_t, dtype=np.int64)
    x = np.asarray(x, dtype=float)
    if x_t.shape != x.shape or x_t.ndim != 1:
        raise ValueError(f"x_t and x: one step per displacement; got shapes {x_t.shape} "
                         f"and {x.shape}")
    if isinstance(half, bool) or not isinstance(half, int | np.integer) or half < 0:
        raise ValueError(f"half must be an integer >= 0; got {half!r}")
    out = np.full(len(np.atleast_1d(centres)), np.nan)
    for i, c in enumerate(np.atleast_1d(centres)):
        sel = (x_t >= c - half) & (x_t <= c + half)
        if sel.any():
            out[i] = float(np.mean(x[sel] ** 2))
    return out


def summary_table(rows: list[tuple[str, dict]]) -> str:
    """A markdown table of :func:`edge_summary` results, one ``(name, summary)`` per row.

    Columns: the critical sharpness, the onset, the catapult (peak over the edge, its
    step, the step the sharpness is back at the edge, the loss peak over the initial
    loss when measured), then two statistics of the same plateau window (the mean
    sharpness and the fraction of its tracked steps within ``±BAND``), and last the
    fraction within ``±BAND`` over every tracked step after the onset, catapult included.
    """
    band = f"±{100 * BAND:g}%"
    head = ("| run | edge | onset | catapult peak S/edge (step) | back at the edge | "
            "loss peak / initial loss | plateau window (last two thirds after onset): mean "
            f"S | same window: within {band} | all steps after onset (catapult included): "
            f"within {band} |")
    lines = [head, "|" + "---|" * head.count(" |")]
    for name, r in rows:
        if r["onset"] is None:
            lines.append(f"| {name} | {r['edge']:.2f} | not reached | – | – | – | – | – | – |")
            continue
        back = f"step {r['settle']}" if r["settle"] is not None else "never"
        spike = f"{r['loss_spike']:.2f}" if "loss_spike" in r else "–"
        lines.append(f"| {name} | {r['edge']:.2f} | step {r['onset']} | "
                     f"{r['overshoot']:.2f} ({r['peak_at']}) | {back} | {spike} | "
                     f"{r['plateau']:.2f} ({100 * r['plateau_rel']:+.1f}%) | "
                     f"{100 * r['within']:.0f}% of {r['tracked']} | "
                     f"{100 * r['within_after_onset']:.0f}% of "
                     f"{r['tracked_after_onset']} |")
    return "\n".join(lines)


def span(values, spec: str = ".2f", scale: float = 1.0) -> str:
    """``"a–b"`` for the range of ``values`` formatted with ``spec`` (after multiplying by
    ``scale``), or ``"a"`` when both ends print the same.

    Examples
    --------
    >>> span([0.031, 0.2], ".0f", 100), span([1.0, 1.001])
    ('3–20', '1.00')
    """
    lo, hi = (format(scale * v, spec) for v in (min(values), max(values)))
    return lo if lo == hi else f"{lo}–{hi}"
