"""Predictions of the edge-of-stability theory beside what the runs measured.

Every row states a predicted and a measured number, the error between them, the
tolerance, and a ``status``:

* ``"holds"``: the premise of the prediction occurred and ``error <= tolerance``;
* ``"fails"``: the premise occurred and the error exceeds the tolerance, or a number
  that should exist is missing (NaN);
* ``"not applicable"``: the premise did not occur (no onset of the edge of stability,
  a run that diverged, a window that does not fit after the onset, a central flow
  that never reached the edge), so the row says nothing about the theory; its
  ``reason`` says which premise is missing.

``holds`` is ``status == "holds"``; a row that is not applicable never holds and never
fails.
"""

from __future__ import annotations

import math
from statistics import median

import numpy as np

from minimal_eos.stabilization import stochastic_sharpness_gap

#: Relative half-width of the band around the edge counted by ``*.band`` rows.
BAND = 0.2
#: A rise counts as progressive sharpening when the sharpness was at least this far
#: (relatively) below the edge before reaching it.
RISE_BELOW = 0.9
#: Cross-entropy runs: the hover window runs from the onset until the loss first falls to
#: its value at the onset divided by this factor; the decline window follows it.
CE_LOSS_FALL = 2.0
#: Fewest tracked steps in the decline window for its rank correlation to be measured.
CE_MIN_DECLINE = 10
#: The three values of a row's ``status``.
HOLDS, FAILS, NOT_APPLICABLE = "holds", "fails", "not applicable"
STATUSES = (HOLDS, FAILS, NOT_APPLICABLE)


def row(check: str, name: str, quantity: str, predicted: float, measured: float,
        error: float, tolerance: float, note: str = "", *, reason: str = "") -> dict:
    """One table row.

    Parameters
    ----------
    check, name, quantity : str
        The check, the row's name and what it compares.
    predicted, measured, error, tolerance : float
        The numbers; the row holds when all are finite and ``error <= tolerance``.
    note : str
        Detail shown with the row.
    reason : str
        When not empty, the premise that did not occur: the row is ``"not applicable"``
        whatever its numbers.

    Returns
    -------
    dict
        With ``status`` (one of :data:`STATUSES`), ``reason`` and ``holds``
        (``status == "holds"``).
    """
    values = (predicted, measured, error)
    ok = all(isinstance(v, int | float) and math.isfinite(v) for v in values)
    status = NOT_APPLICABLE if reason else (HOLDS if ok and error <= tolerance else FAILS)
    return {"check": check, "name": name, "quantity": quantity,
            "predicted": float(predicted), "measured": float(measured), "error": float(error),
            "tolerance": float(tolerance), "status": status, "reason": reason,
            "holds": status == HOLDS, "note": note}


def not_applicable(rows: list, reason: str) -> list:
    """Mark ``rows`` as not applicable because of ``reason`` (a premise that did not occur).

    A reason already given is kept first.
    """
    for r in rows:
        r["reason"] = f"{r['reason']}; {reason}" if r.get("reason") else reason
        r["status"] = NOT_APPLICABLE
        r["holds"] = False
    return rows


def failed(rows: list, reason: str) -> list:
    """Mark the applicable ``rows`` as failing because of ``reason`` (the prediction could not
    be computed: e.g. the central flow stopped). Rows already not applicable stay so."""
    for r in rows:
        if r["status"] != NOT_APPLICABLE:
            r["reason"], r["status"], r["holds"] = reason, FAILS, False
    return rows


def status_of(r: dict) -> str:
    """``r["status"]``; for a row written before statuses existed, from ``r["holds"]``."""
    return r.get("status") or (HOLDS if r["holds"] else FAILS)


def count_statuses(rows: list) -> dict:
    """``{"held": ..., "failed": ..., "not_applicable": ..., "total": ...}`` of ``rows``."""
    statuses = [status_of(r) for r in rows]
    return {"held": statuses.count(HOLDS), "failed": statuses.count(FAILS),
            "not_applicable": statuses.count(NOT_APPLICABLE), "total": len(rows)}


def onset_step(sharpness: list, edge: float, *, after: int = 0) -> int | None:
    """First tracked step ``>= after`` where ``S >= edge`` after ``S < 0.9 edge`` earlier.

    ``sharpness`` is a list of ``(t, S)``. Returns None when the edge is never reached
    from below.
    """
    seen_below = False
    for t, s in sharpness:
        if t < after:
            continue
        if s < RISE_BELOW * edge:
            seen_below = True
        elif seen_below and s >= edge:
            return int(t)
    return None


def edge_rows(check: str, prefix: str, run: dict, *, after: int = 0, what: str = "") -> list:
    """Rows ``rise``, ``plateau`` and ``band`` for one optimizer run.

    Parameters
    ----------
    check : str
        Check name (``"edge"``, ``"momentum"``, ``"drop"``).
    prefix : str
        Row-name prefix (``"a"``, ``"b"``, ``"c"``).
    run : dict
        A run record (``sharpness`` as ``(t, S)``, ``edge``, optionally ``diverged_at``).
    after : int
        Ignore steps before this one (the step of a step-size drop).
    what : str
        Text naming the edge in the ``quantity`` column.

    Notes
    -----
    Premises: ``rise`` needs a sharpness at least 10% below the edge before the onset
    (progressive sharpening to observe); ``plateau`` and ``band`` need an onset
    (:func:`onset_step`); every row needs tracked steps and a run that did not diverge.
    A missing premise makes the row not applicable.
    """
    edge = run["edge"]
    pts = [(t, s) for t, s in run["sharpness"] if t >= after]
    on = onset_step(pts, edge)
    before = [s for t, s in pts if on is None or t <= on]
    low = min(before) if before else math.nan
    high = max(before) if before else math.nan
    gap = edge - low
    no_steps = f"no tracked steps{f' from step {after} on' if after else ''}"
    rise_reason = ""
    if before and gap > (1 - RISE_BELOW) * edge:
        closed = (high - low) / gap
        note = f"S from {low:.4g} rose to {high:.4g}; onset at step {on}"
    else:
        closed = math.nan
        note = ""
        rise_reason = ("the sharpness was never 10% below the edge: no progressive "
                       "sharpening to observe" if before else no_steps)
    # Tolerance 2% of the gap: the sharpness is sampled every few steps, so the last
    # sample before a crossing may sit just below the edge.
    rows = [row(check, f"{prefix}.rise", f"fraction of the gap to {what} closed by sharpening",
                1.0, closed, max(0.0, 1.0 - closed) if math.isfinite(closed) else math.nan,
                0.02, note, reason=rise_reason)]
    post = [s for t, s in pts if on is not None and t >= on]
    onset_reason = "" if on is not None else (
        "no onset: the sharpness never reached the edge from below" if pts else no_steps)
    med = median(post) if post else math.nan
    # Tolerance 5%: the sharpness is measured at the oscillating iterates, which sit
    # off the centre of the oscillation; Cohen et al. (2103.00065) see it hover "just
    # above" 2/eta, i.e. within a few percent.
    rows.append(row(check, f"{prefix}.plateau", f"median sharpness after onset vs {what}",
                    edge, med, abs(med - edge) / edge, 0.05,
                    f"{len(post)} tracked steps after onset" if post else "",
                    reason=onset_reason))
    # Band +-20% with at most 10% of the steps outside: the self-stabilisation cycles
    # of Damian et al. (2209.15594) first overshoot the edge (blow-up phase) and then
    # undershoot it (return to stability) before the cycles shrink.
    inside = [abs(s / edge - 1) <= BAND for s in post]
    frac = float(np.mean(inside)) if post else math.nan
    rows.append(row(check, f"{prefix}.band",
                    f"fraction of post-onset steps with |S/edge - 1| <= {BAND}",
                    1.0, frac, 1.0 - frac, 0.1, "", reason=onset_reason))
    return not_applicable_if_diverged(rows, run)


def rank_correlation(a: list, b: list) -> float:
    """Spearman's rank correlation of ``a`` and ``b``; NaN when either is constant.

    Notes
    -----
    With ``r(a)`` the ranks of ``a`` (ties share the mean of their ranks) and
    ``r~ = r - mean(r)``, ``rho = sum r~(a) r~(b) / sqrt(sum r~(a)^2 sum r~(b)^2)``, the
    Pearson correlation of the ranks: ``1`` when ``b`` grows with ``a``, ``-1`` when it
    falls as ``a`` grows, near ``0`` without a monotone relation.
    """
    if len(a) != len(b):
        raise ValueError(f"a and b must have the same length; got {len(a)} and {len(b)}")
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    norm = math.sqrt(float(ra @ ra) * float(rb @ rb))
    return float(ra @ rb) / norm if norm > 0 else math.nan


def _ranks(values: list) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    ranks = np.empty(v.size)
    ranks[np.argsort(v, kind="stable")] = np.arange(v.size, dtype=float)
    _, inverse, counts = np.unique(v, return_inverse=True, return_counts=True)
    return (np.bincount(inverse, weights=ranks) / counts)[inverse]


def cross_entropy_edge_rows(run: dict, *, check: str = "edge", prefix: str = "a",
                            after: int = 0, what: str = "2/eta") -> list:
    """Rows of an edge check for a cross-entropy run: reach, hover, then decline.

    With cross-entropy the sharpness rises to ``2/eta`` and hovers there, and later
    declines as the loss is driven towards zero (Cohen et al., arXiv 2103.00065): the
    curvature of the loss in the logits, ``diag(p) - p p^T``, vanishes as the softmax
    saturates. The rows of :func:`edge_rows` come first; ``a.plateau`` and ``a.band``,
    which expect the sharpness at the edge for the rest of the run, are kept with their
    numbers but are not applicable. Then (named here for the ``edge`` check, prefix
    ``a``; the ``momentum`` and ``drop`` checks of a cross-entropy run take the same
    rows with their own prefix and edge, the drop's from the drop on):

    * ``a.ce-reach``: the highest tracked sharpness ``max S`` against the edge; error
      ``max(0, 1 - max S / edge)``, tolerance 2% (as ``a.rise``: the sample before a
      crossing may sit just below the edge). Premise: a tracked sharpness 10% below the
      edge before the peak (a rise to observe).
    * ``a.ce-hover``: the fraction of tracked steps with ``|S/edge - 1| <= BAND`` in the
      hover window, from the onset (:func:`onset_step`) until the first step whose loss
      is at most ``L(onset) / CE_LOSS_FALL``; at least 90% (tolerance 0.1, as
      ``a.band``). Premise: an onset.
    * ``a.ce-decline``: Spearman's rank correlation ``rho`` (:func:`rank_correlation`) of
      the sharpness and the loss at the tracked steps of the decline window, from the end
      of the hover window to the end of the run; predicted 1 (both fall together), error
      ``1 - rho``, tolerance 0.5. Premises: an onset, a loss that fell to
      ``L(onset) / CE_LOSS_FALL``, and at least ``CE_MIN_DECLINE`` tracked steps after it;
      a run that ends inside the hover window is not applicable, not failing.

    Parameters
    ----------
    run : dict
        A run record (``sharpness`` as ``(t, S)``, ``loss`` with ``loss[t - start]`` the
        loss at step ``t``, ``edge``, optionally ``start`` (default 0: a run that branches
        off at a later step, as the drop run, records its loss from there) and
        ``diverged_at``).
    check : str
        Check name (``"edge"``, ``"momentum"``, ``"drop"``).
    prefix : str
        Row-name prefix (``"a"``, ``"b"``, ``"c"``).
    after : int
        Ignore steps before this one (the step of a step-size drop).
    what : str
        Text naming the edge in the ``quantity`` column.

    Returns
    -------
    list
        ``rise``, ``plateau``, ``band``, ``ce-reach``, ``ce-hover``, ``ce-decline`` under
        ``prefix``, all of check ``check``.

    Notes
    -----
    The windows are set by the loss alone, never by the sharpness they judge. The hover
    window ends once the loss has halved: at the edge of stability the loss is
    non-monotone over a few steps (spikes go up, not down), so a first fall to half its
    onset value marks progress, not noise. Over the decline window the sharpness and the
    loss oscillate on short times, which shuffles the ranks of neighbouring steps; a
    decline with the loss over the window gives ``rho`` near 1, a sharpness that keeps
    hovering gives ``rho`` near 0 and one that rises gives ``rho < 0``. The tolerance 0.5
    is half-way between no relation and a perfectly monotone one.
    """
    edge = run["edge"]
    rows = edge_rows(check, prefix, run, after=after, what=what)
    not_applicable(rows[1:], "cross-entropy: the sharpness is predicted to decline from the "
                             f"edge as the loss falls ({prefix}.ce-hover, {prefix}.ce-decline "
                             "judge it)")
    start = run.get("start", 0)
    loss = dict(enumerate(run["loss"], start))
    pts = [(t, s) for t, s in run["sharpness"] if after <= t and t in loss]
    peak_at = max(range(len(pts)), key=lambda i: pts[i][1]) if pts else None
    peak = pts[peak_at][1] if pts else math.nan
    reach = peak / edge
    reach_reason = ""
    if not pts:
        reach_reason = f"no tracked steps{f' from step {after} on' if after else ''}"
    elif not any(s < RISE_BELOW * edge for _, s in pts[:peak_at]):
        reach_reason = ("the sharpness was never 10% below the edge before its peak: no rise "
                        "to observe")
    rows.append(row(check, f"{prefix}.ce-reach", f"highest tracked sharpness / {what}", 1.0, reach,
                    max(0.0, 1.0 - reach) if math.isfinite(reach) else math.nan, 0.02,
                    f"peak {peak:.4g} at step {pts[peak_at][0]}" if pts else "",
                    reason=reach_reason))
    on = onset_step(pts, edge)
    fall = None
    if on is not None:
        threshold = loss[on] / CE_LOSS_FALL
        fall = next((t for t in range(on, start + len(loss)) if loss[t] <= threshold), None)
    end = start + len(loss) if fall is None else fall
    hover = [s for t, s in pts if on is not None and on <= t < end]
    frac = float(np.mean([abs(s / edge - 1) <= BAND for s in hover])) if hover else math.nan
    hover_note = ""
    if hover:
        hover_note = (f"{len(hover)} tracked steps from the onset at step {on} to "
                      f"{'the end' if fall is None else f'step {fall}'}; loss at onset "
                      f"{loss[on]:.4g}; median S/edge {median(hover) / edge:.4g}")
    no_onset = "no onset: the sharpness never reached the edge from below"
    rows.append(row(check, f"{prefix}.ce-hover",
                    f"fraction of steps with |S/edge - 1| <= {BAND} until the loss fell by "
                    f"{CE_LOSS_FALL:g}x from onset", 1.0, frac, 1.0 - frac, 0.1, hover_note,
                    reason="" if on is not None else no_onset))
    late = [(s, loss[t]) for t, s in pts if fall is not None and t >= fall]
    rho = rank_correlation([s for s, _ in late], [v for _, v in late]) if late else math.nan
    decline_reason = ""
    if on is None:
        decline_reason = no_onset
    elif fall is None:
        decline_reason = (f"the run ended in the hover window: the loss never fell to "
                          f"1/{CE_LOSS_FALL:g} of its onset value {loss[on]:.4g}")
    elif len(late) < CE_MIN_DECLINE:
        decline_reason = (f"the run ended {len(late)} tracked steps after the loss fell to "
                          f"1/{CE_LOSS_FALL:g} of its onset value at step {fall}; the decline "
                          f"needs {CE_MIN_DECLINE}")
    decline_note = ""
    if late:
        decline_note = (f"{len(late)} tracked steps from step {fall}: S/edge "
                        f"{late[0][0] / edge:.4g} -> {late[-1][0] / edge:.4g}, loss "
                        f"{late[0][1]:.4g} -> {late[-1][1]:.4g}")
    rows.append(row(check, f"{prefix}.ce-decline",
                    "rank correlation of the sharpness and the loss after the hover window",
                    1.0, rho, 1.0 - rho, 0.5, decline_note, reason=decline_reason))
    return rows[:3] + not_applicable_if_diverged(rows[3:], run)


def not_applicable_if_diverged(rows: list, run: dict) -> list:
    """Mark ``rows`` as not applicable when ``run`` diverged (``run["diverged_at"]`` set).

    A diverged run stops recording at the step it left the bound, so its records up to
    there can look like a plateau; no prediction about it holds or fails.
    """
    if run.get("diverged_at") is not None:
        not_applicable(rows, f"the run diverged at step {run['diverged_at']}")
    return rows




def flow_premise(res: dict) -> str:
    """Why the flow rows (d, f) do not apply to ``res``, or ``""`` when they do.

    They need GD not to have diverged, an onset of the edge of stability in GD's run,
    flow records, and a central flow that reached the edge (``tr Sigma > 0`` at some
    record): below the edge the central flow is gradient flow, and every comparison of
    the two is trivially equal. A central flow that stopped (``res["cf_stopped"]``) is not
    a missing premise: its rows fail with that reason.
    """
    main = res["runs"]["main"]
    if main.get("diverged_at") is not None:
        return f"GD diverged at step {main['diverged_at']}"
    if res["onset"] is None:
        return "no onset of the edge of stability in GD's run"
    rec = res["records"]
    if not rec.get("t"):
        return "no flow records"
    if not res.get("cf_stopped") and not any(s > 0 for s in rec.get("cf_sigma", [])):
        return ("the central flow never reached the edge (tr Sigma = 0 at every record): "
                "it is gradient flow")
    return ""


def _window_mean(values: list, times: list, lo: float, hi: float) -> float:
    sel = [v for t, v in zip(times, values, strict=True) if lo <= t <= hi and math.isfinite(v)]
    return float(np.mean(sel)) if sel else math.nan


def centred_average(values: np.ndarray, t: int, half: int) -> float:
    """Mean of ``values[t-half : t+half+1]`` clipped to the array."""
    lo, hi = max(0, t - half), min(len(values), t + half + 1)
    return float(np.mean(values[lo:hi]))


def central_flow_rows(res: dict, window: int) -> list:
    """(d) the central flow's time-averaged loss and sharpness against GD.

    Not applicable without the premises of :func:`flow_premise`, or when the last
    ``window`` steps start before the onset (the window is too short after it);
    ``d.loss_path`` also needs a record time with a full centred window after the onset.
    """
    main = res["runs"]["main"]
    rec = res["records"]
    loss = np.asarray(main["loss"])
    steps = len(loss) - 1
    lo = steps - window
    premise = flow_premise(res)
    onset = res["onset"]["t"] if res["onset"] else None
    window_reason = premise
    if not premise and onset > lo:
        window_reason = (f"the last {window} steps start at step {lo}, before the onset at "
                         f"step {onset}: too short a window after the onset")
    gd_loss = float(np.mean(loss[lo:])) if steps >= window else math.nan
    cf_pred = _window_mean(rec["cf_pred_loss"], rec["t"], lo, steps)
    # Tolerance 2%: the central flow is exact to leading order in the oscillation; the
    # GD average over a finite window still carries part of the loss spikes of the
    # self-stabilisation cycles, which no flow describes.
    rows = [row("central-flow", "d.loss", f"time-averaged loss over the last {window} steps",
                cf_pred, gd_loss, abs(gd_loss - cf_pred) / gd_loss, 0.02,
                "predicted: central flow L(w) + tr(Sigma)/eta; measured: GD mean loss",
                reason=window_reason)]
    errs = []
    if onset is not None:
        half = window // 2
        for t, pred in zip(rec["t"], rec["cf_pred_loss"], strict=True):
            if onset + half <= t <= steps - half:
                avg = centred_average(loss, t, half)
                errs.append(abs(avg - pred) / avg)
    path = float(np.mean(errs)) if errs else math.nan
    path_reason = premise or ("" if errs else "no record time with a full centred window "
                              "after the onset")
    rows.append(row("central-flow", "d.loss_path",
                    "mean relative error of the predicted time-averaged loss after onset",
                    0.0, path, path, 0.02, f"{len(errs)} record times; GD averaged over "
                    f"{window + 1} centred steps", reason=path_reason))
    gd_s = _window_mean([s for _, s in main["sharpness"]], [t for t, _ in main["sharpness"]],
                        lo, steps)
    cf_s = _window_mean(rec["cf_sharpness"], rec["t"], lo, steps)
    centre_s = _window_mean(rec["gd_centre_sharpness"], rec["t"], lo, steps)
    # Tolerance 2%: the central flow predicts the sharpness at the centre of GD's
    # oscillation, (w_{t-1} + 2 w_t + w_{t+1}) / 4, which is measured here; the centre
    # estimate still carries the slow self-stabilisation cycles.
    rows.append(row("central-flow", "d.sharpness",
                    f"mean sharpness of GD's oscillation centre over the last {window} steps",
                    cf_s, centre_s, abs(centre_s - cf_s) / cf_s, 0.02,
                    f"2/eta = {main['edge']:.4g}; at the iterates themselves: {gd_s:.4g}",
                    reason=window_reason))
    return failed(rows, res["cf_stopped"]) if res.get("cf_stopped") else rows


def self_stabilization_rows(res: dict) -> list:
    """(e) mean squared oscillation along the top eigenvector against ``2 alpha / beta``.

    Not applicable when GD diverged, without an onset, when ``alpha <= 0`` or
    ``beta <= 0`` at the onset (no progressive sharpening, or no restoring force: the
    premises of self-stabilisation), or when no oscillation was recorded after it.
    """
    onset = res["onset"]
    main = res["runs"]["main"]
    quantity = "mean x^2 after onset vs 2 alpha/beta (alpha, beta at onset)"
    if onset is None:
        return not_applicable_if_diverged(
            [row("self-stabilization", "e.oscillation", quantity, math.nan, math.nan,
                 math.nan, math.log(2.0), reason="no onset of the edge of stability")], main)
    alpha, beta = onset["alpha"], onset["beta"]
    pred = 2 * alpha / beta if beta > 0 else math.nan
    xs = np.asarray([x for t, x in main["x"] if t >= onset["t"]])
    meas = float(np.mean(xs ** 2)) if xs.size else math.nan
    err = abs(math.log(meas / pred)) if pred > 0 and meas > 0 else math.nan
    reason = ""
    if not (alpha > 0 and beta > 0):
        reason = (f"alpha={alpha:.3g}, beta={beta:.3g} at the onset: self-stabilisation "
                  "needs alpha > 0 (sharpening) and beta > 0 (a restoring force)")
    elif not xs.size:
        reason = "no oscillation recorded after the onset"
    # Tolerance: a factor of 2 either way. alpha and beta are measured once, at the
    # onset, while they drift along the trajectory; the prediction is a scale.
    return not_applicable_if_diverged(
        [row("self-stabilization", "e.oscillation", quantity, pred, meas, err, math.log(2.0),
             f"error = |log(measured/predicted)|; alpha={alpha:.3g}, beta={beta:.3g}, "
             f"{xs.size} steps", reason=reason)], main)


def flow_distance_rows(res: dict) -> list:
    """(f) GD's centre is closer to the central flow than to gradient flow.

    Not applicable without the premises of :func:`flow_premise`: before the edge the
    central flow is gradient flow and both ratios are exactly 1.
    """
    rec = res["records"]
    premise = flow_premise(res)
    d_cf = rec["gd_center_cf"][-1] if rec["gd_center_cf"] else math.nan
    d_gf = rec["gd_center_gf"][-1] if rec["gd_center_gf"] else math.nan
    ratio = d_cf / d_gf if d_gf > 0 else math.nan
    rows = [row("flow-distance", "f.distance",
                "|GD - central flow| / |GD - gradient flow| at the last step",
                0.0, ratio, ratio, 1.0,
                f"|GD-CF| = {d_cf:.4g}, |GD-GF| = {d_gf:.4g}; holds when below 1",
                reason=premise)]
    main = res["runs"]["main"]
    loss = np.asarray(main["loss"])
    half = 10
    gd = centred_average(loss, len(loss) - 1, half) if loss.size else math.nan
    cf_l = rec["cf_pred_loss"][-1] if rec.get("cf_pred_loss") else math.nan
    gf_l = rec["gf_loss"][-1] if rec.get("gf_loss") else math.nan
    e_cf, e_gf = abs(gd - cf_l), abs(gd - gf_l)
    ratio_l = e_cf / e_gf if e_gf > 0 else math.nan
    rows.append(row("flow-distance", "f.loss",
                    "|GD - CF| / |GD - GF| in time-averaged loss at the last step",
                    0.0, ratio_l, ratio_l, 1.0, f"GD {gd:.4g}, CF {cf_l:.4g}, GF {gf_l:.4g}",
                    reason=premise))
    return failed(rows, res["cf_stopped"]) if res.get("cf_stopped") else rows


def constrained_rows(res: dict) -> list:
    """GD's centre is closer to the constrained trajectory than to gradient flow.

    Not applicable when GD diverged, without an onset (the constrained trajectory starts
    there), or without gradient-flow records (no flow check ran beside it).
    """
    rec = res["records"]
    main = res["runs"]["main"]
    d_pgd = rec["gd_center_pgd"][-1] if rec["gd_center_pgd"] else math.nan
    d_gf = rec["gd_center_gf"][-1] if rec["gd_center_gf"] else math.nan
    ratio = d_pgd / d_gf if d_gf > 0 else math.nan
    reason = ""
    if res["onset"] is None:
        reason = "no onset of the edge of stability: no constrained trajectory"
    elif not rec["gd_center_gf"]:
        reason = "gradient flow was not integrated (run a flow check beside it)"
    return not_applicable_if_diverged(
        [row("constrained", "g.distance",
             "|GD - constrained trajectory| / |GD - gradient flow| at the last step",
             0.0, ratio, ratio, 1.0, f"|GD-PGD| = {d_pgd:.4g}, |GD-GF| = {d_gf:.4g}",
             reason=reason)], main)


def drop_rows(res: dict, drop_step: int, *, cross_entropy: bool = False) -> list:
    """(c) after the step-size drop, sharpening resumes up to the new edge.

    Not applicable when the main run diverged before the drop (the drop run branches
    from it), besides the premises of :func:`edge_rows` (of
    :func:`cross_entropy_edge_rows` when ``cross_entropy``).
    """
    run = dict(res["runs"]["drop"])
    if cross_entropy:
        rows = cross_entropy_edge_rows(run, check="drop", prefix="c", after=drop_step,
                                       what="the new 2/eta")
    else:
        rows = edge_rows("drop", "c", run, after=drop_step, what="the new 2/eta")
    # The rise after a drop starts at the old edge, which is below the new one by the
    # drop factor; ``edge_rows`` measures it from the lowest point after the drop.
    main = res["runs"].get("main", {})
    div = main.get("diverged_at")
    if div is not None and div <= drop_step and run.get("diverged_at") is None:
        not_applicable(rows, f"the main run diverged at step {div}, before the drop")
    return rows


def batch_sharpness_rows(res: dict) -> list:
    """(h) SGD at the edge of stochastic stability: batch sharpness, lambda_max, the gap.

    Onset is the first tracked step where the batch sharpness reaches ``2/eta`` after
    being 10% below it. Without an onset the rows are measured over the second half of
    the run, and none holds. After onset: ``h.plateau``, the median batch sharpness against
    ``2/eta`` (Andreyev & Beneventano, arXiv 2412.20553); ``h.below``, the fraction of
    steps with ``lambda_max`` below the batch sharpness; ``h.gap``, the median gap
    ``2/eta - lambda_max`` against ``eta beta sigma_u^2 / (4 alpha)`` with ``alpha``,
    ``beta``, ``sigma_u^2`` the means of their post-onset measurements (Liao, Kolomvaki,
    Kyrillidis, arXiv 2604.21016).
    """
    main = res["runs"]["main"]
    sto = res["stochastic"]
    eta = main["eta"]
    edge = 2.0 / eta
    bs = list(zip(sto["t"], sto["batch_sharpness"], strict=True))
    on = onset_step(bs, edge)
    if on is not None:
        after = [i for i, t in enumerate(sto["t"]) if t >= on]
        note = (f"onset at step {on}; {len(after)} tracked steps after it; batch sharpness "
                f"over {sto['batches']} batches of {sto['batch_size']}")
    else:
        half = sto["t"][-1] / 2 if sto["t"] else 0
        after = [i for i, t in enumerate(sto["t"]) if t >= half]
        note = (f"no onset: the batch sharpness never rose to 2/eta from 10% below; "
                f"medians over the {len(after)} tracked steps from step {half:g}")

    def pick(key: str) -> list:
        return [sto[key][i] for i in after]

    post_bs, post_lam = pick("batch_sharpness"), pick("lambda_max")
    med = median(post_bs) if post_bs else math.nan
    # Tolerance 10%: each estimate averages the curvature of only a few sampled batches
    # (their quotients scatter by tens of percent), and Andreyev & Beneventano see the
    # batch sharpness hover around 2/eta, not pinned to it.
    rows = [row("batch-sharpness", "h.plateau", "median batch sharpness after onset vs 2/eta",
                edge, med, abs(med - edge) / edge, 0.1, note)]
    below = [lam < b for lam, b in zip(post_lam, post_bs, strict=True)]
    frac = float(np.mean(below)) if below else math.nan
    # Tolerance 0.1: a noisy batch-sharpness estimate may dip below lambda_max at a few
    # steps while the ordering holds on average.
    rows.append(row("batch-sharpness", "h.below",
                    "fraction of post-onset steps with lambda_max < batch sharpness",
                    1.0, frac, 1.0 - frac, 0.1,
                    f"median lambda_max {median(post_lam):.4g}, mean lambda_max(H_B) "
                    f"{_nanmean(pick('batch_lambda')):.4g}" if post_lam else ""))
    alpha, beta = _nanmean(pick("alpha")), _nanmean(pick("beta"))
    sigma = _nanmean(pick("sigma_u2"))
    # The equilibrium needs progressive sharpening (alpha > 0) and self-stabilization
    # (beta > 0); without them the formula predicts nothing.
    pred = (stochastic_sharpness_gap(eta, alpha, beta, sigma)
            if alpha > 0 and beta > 0 and sigma >= 0 else math.nan)
    gap = edge - median(post_lam) if post_lam else math.nan
    err = abs(math.log(gap / pred)) if gap > 0 and pred > 0 else math.nan
    # Tolerance: a factor of 2 either way, as for (e): alpha and beta drift along the
    # run and are averaged, and sigma_u^2 is estimated from a few batches per step; the
    # formula is a scale.
    rows.append(row("batch-sharpness", "h.gap",
                    "gap 2/eta - median lambda_max after onset vs eta beta sigma_u^2/(4 alpha)",
                    pred, gap, err, math.log(2.0),
                    f"error = |log(measured/predicted)|; mean alpha={alpha:.3g}, "
                    f"beta={beta:.3g}, sigma_u^2={sigma:.3g}"))
    if not (alpha > 0 and beta > 0):
        not_applicable(rows[2:], f"no equilibrium to predict: mean alpha {alpha:.3g}, "
                                 f"beta {beta:.3g} (the formula needs both > 0)")
    if on is None:
        # No rise to the edge: the rows show the levels reached, but SGD was not at its
        # edge, so the predictions about the edge say nothing.
        not_applicable(rows, "no onset: the batch sharpness never rose to 2/eta from 10% "
                             "below it")
    return not_applicable_if_diverged(rows, main)


def preconditioned_edge_rows(res: dict) -> list:
    """(i) Adam/RMSProp: the preconditioned sharpness hovers at the frozen-P threshold.

    ``i.rise``, ``i.plateau`` and ``i.band`` are :func:`edge_rows` of
    ``lambda_max(P^{-1} H)`` against the threshold (Cohen et al., arXiv 2207.14484);
    ``i.raw`` holds when the median raw sharpness after onset lies outside the band
    ``|S / threshold - 1| <= BAND``: the raw sharpness does not hover there.
    """
    main = res["runs"]["main"]
    ada = res["adaptive"]
    what = ("2/eta" if main["optimizer"] == "rmsprop"
            else "(2+2 beta1)/((1-beta1) eta)")
    pre = {"edge": main["edge"], "diverged_at": main["diverged_at"],
           "sharpness": list(zip(ada["t"], ada["preconditioned"], strict=True))}
    rows = edge_rows("preconditioned-edge", "i", pre, what=what)
    on = onset_step(pre["sharpness"], main["edge"])
    raw = [s for t, s in main["sharpness"] if on is not None and t >= on]
    d = abs(median(raw) / main["edge"] - 1) if raw else math.nan
    rows.append(row("preconditioned-edge", "i.raw",
                    f"|median raw sharpness after onset / threshold - 1| (at least {BAND})",
                    BAND, d, max(0.0, BAND - d) if math.isfinite(d) else math.nan, 0.0,
                    f"median raw sharpness {median(raw):.4g}, threshold {main['edge']:.4g}"
                    if raw else "no onset"))
    if on is None:
        not_applicable(rows[-1:], "no onset: the preconditioned sharpness never rose to "
                                  "its threshold from 10% below it")
    return rows[:-1] + not_applicable_if_diverged(rows[-1:], main)


def rmsprop_central_flow_rows(res: dict, window: int) -> list:
    """(j) RMSProp against its central flow (arXiv 2410.24206, section 5).

    ``j.loss_path``: the flow's predicted time-averaged loss ``L + tr(X)/eta`` against
    RMSProp's loss averaged over ``window + 1`` centred steps, at the record times after
    the onset; ``j.edge``: how closely the flow holds ``lambda_max(D H)`` at ``2/eta``
    where it carries a ``Sigma``; ``j.distance``: RMSProp's oscillation centre is closer
    to the central flow than to the stable flow (``Sigma = 0``) at the last step.

    Not applicable when RMSProp diverged, when its preconditioned sharpness never rose
    to ``2/eta`` from 10% below it after the flows started (on the embedded default it
    comes down to the edge from above), or when the central flow never reached the edge.
    A flow that stopped (its projection lost the edge) fails the rows with the reason.
    """
    main = res["runs"]["main"]
    rec = res["records"]
    info = res["rmsprop_flow"]
    edge = main["edge"]
    loss = np.asarray(main["loss"])
    steps = len(loss) - 1
    pre = list(zip(res["adaptive"]["t"], res["adaptive"]["preconditioned"], strict=True))
    onset = onset_step(pre, edge, after=info["start"])
    premise = ""
    if main.get("diverged_at") is not None:
        premise = f"RMSProp diverged at step {main['diverged_at']}"
    elif onset is None:
        premise = ("no onset: RMSProp's preconditioned sharpness never rose to 2/eta from 10% "
                   f"below it after step {info['start']}, where its flows start")
    elif not info["stopped"] and not any(s > 0 for s in rec["rf_sigma"]):
        premise = ("the central flow never reached the edge (Sigma = 0 at every record): it "
                   "is the stable flow")
    half = window // 2
    errs = []
    if onset is not None:
        for t, pred in zip(rec["t"], rec["rf_pred_loss"], strict=True):
            if onset + half <= t <= steps - half:
                avg = centred_average(loss, t, half)
                errs.append(abs(avg - pred) / avg)
    path = float(np.mean(errs)) if errs else math.nan
    # Tolerance 2%, as for GD's d.loss_path: the flow is exact to leading order in the
    # oscillation, and the centred average still carries part of the self-stabilisation
    # cycles (and the catapult at onset), which no flow describes.
    rows = [row("rmsprop-central-flow", "j.loss_path",
                "mean relative error of the predicted time-averaged loss after onset",
                0.0, path, path, 0.02, f"{len(errs)} record times; RMSProp averaged over "
                f"{window + 1} centred steps; predicted L + tr(X)/eta",
                reason=premise or ("" if errs else "no record time with a full centred "
                                   "window after the onset"))]
    gaps = [abs(s / edge - 1) for s, sig in zip(rec["rf_sharpness"], rec["rf_sigma"],
                                                 strict=True) if sig > 0]
    gap = max(gaps) if gaps else math.nan
    # Tolerance 1e-3: after each advance the projection leaves lambda_max(D H) within
    # hold_tol = 1e-5 of the edge, and the tracker's Ritz values (relative residual
    # EDGE_TOL = 3e-4) lie within tol^2 lambda^2 / gap of it; 1e-3 leaves room for the
    # estimate only.
    rows.append(row("rmsprop-central-flow", "j.edge",
                    "max |lambda_max(D H) / (2/eta) - 1| of the central flow at the edge",
                    0.0, gap, gap, 1e-3, f"{len(gaps)} records with Sigma > 0",
                    reason=premise))
    d_rf = rec["rmsprop_center_rf"][-1] if rec["rmsprop_center_rf"] else math.nan
    d_sf = rec["rmsprop_center_sf"][-1] if rec["rmsprop_center_sf"] else math.nan
    ratio = d_rf / d_sf if d_sf > 0 else math.nan
    rows.append(row("rmsprop-central-flow", "j.distance",
                    "|RMSProp - central flow| / |RMSProp - stable flow| at the last step",
                    0.0, ratio, ratio, 1.0, f"|RMSProp-CF| = {d_rf:.4g}, |RMSProp-SF| = "
                    f"{d_sf:.4g} (RMSProp's centre); holds when below 1", reason=premise))
    return failed(rows, info["stopped"]) if info["stopped"] else rows


def _nanmean(values: list) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def evaluate(res: dict, config) -> list:
    """All rows for the checks of ``config`` from the records ``res``."""
    rows: list = []
    checks = config.checks
    main = res["runs"]["main"]
    name = {"gd": "2/eta", "heavy_ball": "2(1+beta)/eta",
            "nesterov": "(2+2beta)/((1+2beta)eta)", "sgd": "2/eta", "rmsprop": "2/eta",
            "adam": "(2+2beta1)/((1-beta1)eta)"}[main["optimizer"]]
    ce = config.loss == "ce"
    if "edge" in checks:
        rows += (cross_entropy_edge_rows(main, what=name) if ce
                 else edge_rows("edge", "a", main, what=name))
    if "momentum" in checks:
        hb = res["runs"]["momentum"]
        rows += (cross_entropy_edge_rows(hb, check="momentum", prefix="b",
                                         what="2(1+beta)/eta") if ce
                 else edge_rows("momentum", "b", hb, what="2(1+beta)/eta"))
    if "drop" in checks:
        rows += drop_rows(res, config.drop_step, cross_entropy=ce)
    if "central-flow" in checks:
        rows += central_flow_rows(res, config.window)
    if "self-stabilization" in checks:
        rows += self_stabilization_rows(res)
    if "flow-distance" in checks:
        rows += flow_distance_rows(res)
    if "constrained" in checks:
        rows += constrained_rows(res)
    if "batch-sharpness" in checks:
        rows += batch_sharpness_rows(res)
    if "preconditioned-edge" in checks:
        rows += preconditioned_edge_rows(res)
    if "rmsprop-central-flow" in checks:
        rows += rmsprop_central_flow_rows(res, config.window)
    return rows
