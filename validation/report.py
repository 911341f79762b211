"""The report of a comparison run: a printed table, ``report.json`` and figures.

matplotlib (Agg backend) is imported only inside :func:`write_figures`.
"""

from __future__ import annotations

import math
import os

import numpy as np

from validation.checkpoint import atomic_write, write_json
from validation.predictions import FAILS, HOLDS, NOT_APPLICABLE, count_statuses, status_of

FIGURES = ("sharpness.png", "loss.png", "oscillation.png")


def format_table(rows: list, *, diverged: dict | None = None) -> str:
    """Plain-text table: check, prediction, predicted, measured, error, tolerance, status.

    The status column reads ``holds``, ``FAILS`` or ``n/a`` (not applicable); the reason
    of every row that is not applicable follows the table, then one line per run in
    ``diverged`` (run name -> text saying where and how it diverged), then the counts.
    """
    head = ("check", "prediction", "predicted", "measured", "error", "tolerance", "status")
    shown = {HOLDS: "holds", FAILS: "FAILS", NOT_APPLICABLE: "n/a"}
    body = []
    for r in rows:
        body.append((r["check"], r["name"], _num(r["predicted"]), _num(r["measured"]),
                     _num(r["error"]), _num(r["tolerance"]), shown[status_of(r)]))
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h)
              for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)) for b in body]
    lines += [f"n/a {r['name']}: {r['reason']}" for r in rows
              if status_of(r) == NOT_APPLICABLE]
    lines += [f"fails {r['name']}: {r['reason']}" for r in rows
              if status_of(r) != NOT_APPLICABLE and r.get("reason")]
    lines += [f"diverged: {name} {text}" for name, text in (diverged or {}).items()]
    c = count_statuses(rows)
    lines.append(f"{c['held']} of {c['total']} predictions hold, {c['failed']} fail, "
                 f"{c['not_applicable']} not applicable")
    return "\n".join(lines)


def divergences(results: dict) -> dict:
    """Run name -> a sentence saying where and how the run diverged, for every run that did.
    """
    from validation.experiment import DIVERGENCE_FACTOR

    out = {}
    for name, r in results["runs"].items():
        if r.get("diverged_at") is None:
            continue
        loss = r.get("diverged_loss")
        start = r["loss"][0] if r["loss"] else None
        if r.get("diverged_reason"):
            how = r["diverged_reason"]
        elif loss is None or not math.isfinite(loss):
            how = "the loss is not finite"
        elif start is not None and loss > DIVERGENCE_FACTOR * start:
            how = (f"the loss {loss:.4g} exceeds {DIVERGENCE_FACTOR:.0e} times its start "
                   f"{start:.4g}")
        else:
            how = f"the gradient is not finite (loss {loss:.4g})"
        out[name] = f"at step {r['diverged_at']}: {how}"
    stopped = results.get("stopped_at")
    if stopped is not None:
        out["main"] = out.get("main", "") + f"; the computation stopped after step {stopped}"
    return out


def _num(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "nan"
    return f"{v:.4g}"


def build_report(config: dict, rows: list, results: dict, timing: dict) -> dict:
    """The JSON document: config, rows, summary measurements, series, timing."""
    runs = {}
    for name, r in results["runs"].items():
        runs[name] = {k: r[k] for k in ("optimizer", "beta", "eta", "edge", "start",
                                        "mean_hvps", "diverged_at", "diverged_loss")}
        runs[name]["diverged_reason"] = r.get("diverged_reason")
        runs[name]["loss"] = r["loss"]
        runs[name]["sharpness"] = r["sharpness"]
        runs[name]["hvps_per_estimate"] = r["hvps"]
        runs[name]["x"] = r["x"]
    extra = {k: results[k] for k in ("stochastic", "adaptive") if k in results}
    rows = [{**r, "status": status_of(r), "reason": r.get("reason", "")} for r in rows]
    return {
        **extra,
        "config": config,
        "predictions": rows,
        "summary": {**count_statuses(rows),
                    "num_params": results["num_params"], "n": results["n"],
                    "onset": results["onset"],
                    "divergences": divergences(results),
                    "stopped_at": results.get("stopped_at"),
                    "gf_rk4_steps": results.get("gf_rk4_steps"),
                    "cf_steps": results.get("cf_steps"),
                    "cf_projections": results.get("cf_projections"),
                    "cf_shortened": results.get("cf_shortened"),
                    "cf_edge_gap": results.get("cf_edge_gap"),
                    "cf_stopped": results.get("cf_stopped")},
        "runs": runs,
        "records": results["records"],
        "timing": timing,
    }


#: Key added to a dict of ``report.json`` that had non-finite numbers: field -> reason.
NULL_REASONS = "null_reasons"


def write_report(out_dir: str | os.PathLike, report: dict) -> str:
    """Write ``report.json`` (atomically, strict JSON) and return its path.

    NaN and infinities, which strict JSON has no token for, are written as ``null``;
    each dict that held one gains :data:`NULL_REASONS`, mapping the field to what the
    null stands for (see :func:`strict_json`).
    """
    path = os.path.join(os.fspath(out_dir), "report.json")
    write_json(path, strict_json(report), allow_nan=False)
    return path


def strict_json(obj):
    """Copy of ``obj`` that ``json.dumps(..., allow_nan=False)`` accepts.

    Tuples become lists and numpy scalars Python numbers. A non-finite float becomes
    None; the dict holding it (directly, or anywhere inside a list value) gains
    ``null_reasons[field]``: ``"NaN: undefined or not computed"``, ``"+inf"``/``"-inf"``
    for a single value, ``"k of n entries were NaN or infinite"`` for a list.
    """
    return _strict(obj)[0]


def _strict(obj) -> tuple:
    """``(copy, number of non-finite floats replaced, reason of a lone one)``."""
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        reason = "NaN: undefined or not computed" if math.isnan(obj) else \
            ("+inf" if obj > 0 else "-inf")
        return None, 1, reason
    if isinstance(obj, dict):
        out, reasons = {}, {}
        for k, v in obj.items():
            out[str(k)], count, reason = _strict(v)
            if count and not isinstance(v, dict):
                reasons[str(k)] = (reason if not isinstance(v, list | tuple)
                                   else f"{count} of {_leaves(v)} entries were NaN or "
                                        "infinite")
        if reasons:
            out[NULL_REASONS] = reasons
        return out, 0, None
    if isinstance(obj, list | tuple):
        items = [_strict(v) for v in obj]
        return [x for x, _, _ in items], sum(c for _, c, _ in items), None
    return obj, 0, None


def _leaves(obj) -> int:
    """Numbers (non-container values) inside nested lists."""
    if isinstance(obj, list | tuple):
        return sum(_leaves(v) for v in obj)
    return 1


def save_png(fig, path: str, *, dpi: int = 110) -> str:
    """Write the matplotlib figure ``fig`` to ``path`` as PNG (``dpi``, tight bounding
    box), atomically; close it and return the path."""
    import matplotlib.pyplot as plt

    def _write(tmp: str) -> None:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")

    try:
        atomic_write(path, _write)
    finally:
        plt.close(fig)
    return path


def write_figures(out_dir: str | os.PathLike, report: dict) -> list:
    """Draw the three figures into ``out_dir`` and return their paths.

    * ``sharpness.png``: sharpness of every optimizer run (and of the flows) against
      steps, with each run's critical sharpness (``2/eta``) drawn as a dashed line.
    * ``loss.png``: GD's loss, its time average, the central flow's predicted
      time-averaged loss and gradient flow's loss.
    * ``oscillation.png``: ``|x_t|`` along the top eigenvector against the predicted
      scale ``sqrt(2 alpha / beta)`` (and the central flow's ``sqrt(tr Sigma)``).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = os.fspath(out_dir)
    paths = []
    runs, rec = report["runs"], report["records"]
    colors = {"main": "C0", "momentum": "C2", "drop": "C3"}
    labels = {"main": f"{runs['main']['optimizer']}", "momentum": "heavy ball",
              "drop": "after step-size drop"}

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for name, r in runs.items():
        if not r["sharpness"]:
            continue
        t, s = np.asarray(r["sharpness"]).T
        ax.plot(t, s, color=colors.get(name, "k"), lw=1.4,
                label=f"{labels.get(name, name)} (eta={r['eta']:.3g})")
        edge_t = [r["start"], t.max()]
        ax.plot(edge_t, [r["edge"]] * 2, ls="--", color=colors.get(name, "k"), lw=1,
                label=f"critical sharpness {r['edge']:.3g}")
    if "stochastic" in report:
        sto = report["stochastic"]
        ax.plot(sto["t"], sto["batch_sharpness"], color="C5", lw=1.2,
                label="batch sharpness E_B[g_B^T H_B g_B / |g_B|^2]")
        ax.plot(sto["t"], sto["batch_lambda"], color="C6", lw=1.0, ls=":",
                label="E_B[lambda_max(H_B)]")
    if "adaptive" in report:
        ada = report["adaptive"]
        ax.plot(ada["t"], ada["preconditioned"], color="C5", lw=1.2,
                label="preconditioned sharpness lambda_max(P^-1 H)")
        ax.set_yscale("log")
    if rec.get("gf_sharpness"):
        ax.plot(rec["t"], rec["gf_sharpness"], color="C1", lw=1.2, ls=":",
                label="gradient flow")
        ax.plot(rec["t"], rec["cf_sharpness"], color="C4", lw=1.2, label="central flow")
    if report["summary"]["onset"]:
        ax.axvline(report["summary"]["onset"]["t"], color="0.6", lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("sharpness  (top Hessian eigenvalue)")
    ax.set_title("Sharpness rises to the critical value and hovers there")
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    p = os.path.join(out, "sharpness.png")
    save_png(fig, p)
    paths.append(p)

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    loss = np.asarray(runs["main"]["loss"])
    steps = np.arange(len(loss))
    ax.plot(steps, loss, color="C0", lw=0.6, alpha=0.45, label="GD loss")
    half = report["config"].get("window", 20) // 2
    kernel = np.ones(2 * half + 1) / (2 * half + 1)
    if len(loss) > 2 * half + 1:
        avg = np.convolve(loss, kernel, mode="valid")
        ax.plot(steps[half: len(loss) - half], avg, color="C0", lw=1.6,
                label=f"GD loss, {2 * half + 1}-step average")
    if rec.get("cf_pred_loss"):
        ax.plot(rec["t"], rec["cf_pred_loss"], color="C4", lw=1.4,
                label="central flow: predicted average L + tr(Sigma)/eta")
        ax.plot(rec["t"], rec["gf_loss"], color="C1", lw=1.2, ls=":", label="gradient flow")
    ax.set_xlabel("step  (flows: time eta * step)")
    ax.set_ylabel("training loss")
    ax.set_yscale("log")
    ax.set_title("Loss: GD, central flow and gradient flow")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    p = os.path.join(out, "loss.png")
    save_png(fig, p)
    paths.append(p)

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    x = np.asarray(runs["main"]["x"])
    if x.size:
        ax.plot(x[:, 0], np.abs(x[:, 1]), color="C0", lw=0.8, label="GD |x_t| (measured)")
    onset = report["summary"]["onset"]
    if onset and onset["beta"] > 0 and onset["alpha"] > 0:
        scale = math.sqrt(2 * onset["alpha"] / onset["beta"])
        ax.axhline(scale, color="C3", ls="--", lw=1.2,
                   label=f"sqrt(2 alpha / beta) at onset = {scale:.3g}")
        ax.axvline(onset["t"], color="0.6", lw=0.8)
    if rec.get("cf_sigma"):
        sig = np.sqrt(np.maximum(np.asarray(rec["cf_sigma"], dtype=float), 0))
        ax.plot(rec["t"], np.where(sig > 0, sig, np.nan), color="C4", lw=1.2,
                label="central flow sqrt(tr Sigma)")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("|x|  (displacement along top eigenvector)")
    ax.set_title("Oscillation along the top eigenvector vs self-stabilization scale")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    p = os.path.join(out, "oscillation.png")
    save_png(fig, p)
    paths.append(p)
    return paths
