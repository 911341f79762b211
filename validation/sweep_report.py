"""The report of a sweep: a summary table, ``summary.csv`` and figures.

Reads the records written by :mod:`validation.sweep` (one per configuration).
matplotlib (Agg backend) is imported only inside :func:`write_figures`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections import defaultdict

import numpy as np

from validation.checkpoint import write_text
from validation.predictions import count_statuses
from validation.report import save_png

FIGURES = ("plateau.png", "sharpening.png", "sharpness.png")
#: Measurements shown in the table: (record field, column title).
COLUMNS = (("edge", "edge"), ("plateau_sharpness", "S_plateau"),
           ("plateau_ratio", "S_plat/edge"), ("sharpening_rate", "dS/d(eta t)"),
           ("onset_step", "onset"))


def varying_fields(entries: list) -> list[str]:
    """Spec fields whose value is not the same for every configuration (``eta`` if none)."""
    names: list[str] = []
    for e in entries:
        names += [k for k in e.overrides if k not in names]
    vary = [k for k in names
            if len({json.dumps(e.overrides.get(k), sort_keys=True) for e in entries}) > 1]
    return vary or ["eta"]


def summary_rows(entries: list, records: dict) -> list[dict]:
    """One flat row per configuration: key, varying fields, status, measurements."""
    vary = varying_fields(entries)
    rows = []
    for e in entries:
        rec = records.get(e.key) or {}
        status = rec.get("status", "pending")
        row = {"key": e.key}
        for k in vary:
            row[k] = e.overrides.get(k, getattr(e.config, k, None) if k != "device"
                                     else e.device)
        row["status"] = status
        m = rec.get("measurements", {}) if status == "done" else {}
        for field, _ in COLUMNS:
            row[field] = m.get(field)
        preds = rec.get("predictions", []) if status == "done" else []
        row["held"] = _held(preds)
        row["seconds"] = rec.get("seconds")
        row["error"] = rec.get("error", "") if status == "failed" else ""
        rows.append(row)
    return rows


def _held(preds: list) -> str:
    """``held/applicable`` of a configuration's predictions, with the count not applicable."""
    if not preds:
        return ""
    c = count_statuses(preds)
    na = f" ({c['not_applicable']} n/a)" if c["not_applicable"] else ""
    return f"{c['held']}/{c['total'] - c['not_applicable']}{na}"


def format_summary(entries: list, records: dict) -> str:
    """Plain-text table of the sweep, one line per configuration, and the counts."""
    rows = summary_rows(entries, records)
    vary = varying_fields(entries)
    head = ["key", *vary, "status", *(title for _, title in COLUMNS), "held", "s"]
    body = []
    for r in rows:
        cells = [r["key"], *(_cell(r[k]) for k in vary), r["status"],
                 *(_cell(r[f]) for f, _ in COLUMNS), r["held"], _cell(r["seconds"], 3)]
        body.append(cells)
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h)
              for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)).rstrip()
              for b in body]
    counts = {s: sum(r["status"] == s for r in rows) for s in ("done", "failed", "pending")}
    lines.append(f"{len(rows)} configuration(s): {counts['done']} done, {counts['failed']} "
                 f"failed, {counts['pending']} pending")
    lines += [f"  failed {r['key']}: {r['error']}" for r in rows if r["status"] == "failed"]
    return "\n".join(lines)


def _cell(v, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.{digits}g}"
    if isinstance(v, list | dict):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


def write_summary_csv(out_dir: str | os.PathLike, entries: list, records: dict) -> str:
    """Write ``summary.csv`` (atomically) and return its path."""
    rows = summary_rows(entries, records)
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: _cell(v, 10) if v is not None else "" for k, v in r.items()})
    return write_text(os.path.join(os.fspath(out_dir), "summary.csv"), buf.getvalue())


def _done(entries: list, records: dict) -> list[tuple]:
    """``(entry, measurements, record)`` of every finished configuration."""
    out = []
    for e in entries:
        rec = records.get(e.key)
        if rec and rec.get("status") == "done":
            out.append((e, rec["measurements"], rec))
    return out


def write_figures(out_dir: str | os.PathLike, entries: list, records: dict) -> list[str]:
    """Draw the sweep's figures into ``out_dir`` and return their paths.

    * ``plateau.png``: the plateau sharpness (median after the onset of the edge of
      stability) against the step size, with the critical sharpness ``2/eta``; and the
      ratio to each run's critical sharpness, which the theory puts at 1.
    * ``sharpening.png``: the sharpening rate ``dS/d(eta t)`` before the edge against
      the width (one line per depth) and against the depth (one line per width); means
      over the other fields (step size, seed, ...), bars from the smallest to the
      largest value.
    * ``sharpness.png``: every run's sharpness divided by its critical sharpness
      against the step, coloured by step size.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = os.fspath(out_dir)
    done = _done(entries, records)
    paths = []

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.2))
    at_edge = [(e, m) for e, m, _ in done if math.isfinite(m["plateau_sharpness"])]
    if done:
        etas = np.array([e.config.eta for e, _, _ in done])
        grid = np.geomspace(etas.min() / 1.15, etas.max() * 1.15, 100)
        ax.plot(grid, 2 / grid, color="0.3", lw=1.2, ls="--", label="2 / eta")
        ax.scatter(etas, [m["initial_sharpness"] for _, m, _ in done], s=22,
                   facecolors="none", edgecolors="C7", label="sharpness at step 0")
    if at_edge:
        eta_p = np.array([e.config.eta for e, _ in at_edge])
        ax.scatter(eta_p, [m["plateau_sharpness"] for _, m in at_edge], s=26, color="C0",
                   zorder=3, label="plateau sharpness (median after onset)")
        bx.scatter(eta_p, [m["plateau_ratio"] for _, m in at_edge], s=26, color="C0",
                   zorder=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ticks = sorted({e.config.eta for e, _, _ in done})
    for a in (ax, bx):
        a.set_xscale("log")
        _plain_ticks(a.xaxis, ticks if len(ticks) <= 8 else None)
    _plain_ticks(ax.yaxis, None)
    if done:
        bx.set_xlim(ax.get_xlim())
    ax.set_xlabel("step size eta")
    ax.set_ylabel("sharpness")
    ax.set_title(f"Plateau sharpness vs 2/eta ({len(at_edge)} of {len(done)} runs reached "
                 "the edge)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    bx.axhline(1.0, color="0.3", lw=1.2, ls="--", label="theory: S = critical sharpness")
    bx.axhspan(0.95, 1.05, color="0.85", label="within 5%")
    bx.set_xlabel("step size eta")
    bx.set_ylabel("plateau sharpness / critical sharpness")
    bx.set_title("Plateau relative to each run's edge", fontsize=10)
    bx.legend(fontsize=8)
    bx.grid(alpha=0.3, which="both")
    paths.append(save_png(fig, os.path.join(out, "plateau.png")))

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    rated = [(e, m) for e, m, _ in done if math.isfinite(m["sharpening_rate"])]
    for ax, (x, line) in zip(axes, (("width", "depth"), ("depth", "width")), strict=True):
        groups: dict = defaultdict(lambda: defaultdict(list))
        for e, m in rated:
            groups[getattr(e.config, line)][getattr(e.config, x)].append(m["sharpening_rate"])
        for i, (value, by_x) in enumerate(sorted(groups.items())):
            xs = np.array(sorted(by_x))
            vals = [np.asarray(by_x[v]) for v in xs]
            mean = np.array([v.mean() for v in vals])
            err = np.array([[v.mean() - v.min() for v in vals], [v.max() - v.mean() for v in vals]])
            ax.errorbar(xs, mean, yerr=err, marker="o", ms=5, capsize=3, color=f"C{i}",
                        label=f"{line} {value}")
        ax.axhline(0.0, color="0.5", lw=0.8)
        values = sorted({getattr(e.config, x) for e, _ in rated})
        if x == "width":
            ax.set_xscale("log", base=2)
        _plain_ticks(ax.xaxis, values)
        ax.set_xlabel(x)
        ax.set_ylabel("sharpening rate  dS / d(eta t)")
        ax.set_title(f"Progressive sharpening against {x}", fontsize=10)
        if groups:
            ax.legend(fontsize=8)
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(f"Slope of the sharpness before the edge ({len(rated)} runs; mean over the "
                 "other fields, bars min to max)", fontsize=10)
    paths.append(save_png(fig, os.path.join(out, "sharpening.png")))

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    etas = sorted({e.config.eta for e, _, _ in done})
    few = len(etas) <= 8
    if few:
        colour = {eta: f"C{i}" for i, eta in enumerate(etas)}
    elif etas:
        norm = matplotlib.colors.LogNorm(etas[0], etas[-1])
        cmap = matplotlib.colormaps["viridis"]
        colour = {eta: cmap(norm(eta)) for eta in etas}
        bar = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax,
                           label="step size eta")
        _plain_ticks(bar.ax.yaxis, None)
    top = 0.0
    labelled = set()
    for e, m, rec in done:
        pts = np.asarray(rec["series"]["sharpness"], dtype=float)
        if pts.size:
            ratio = pts[:, 1] / m["edge"]
            top = max(top, float(np.max(ratio)))
            label = f"eta = {e.config.eta:g}" if few and e.config.eta not in labelled else None
            labelled.add(e.config.eta)
            ax.plot(pts[:, 0], ratio, color=colour[e.config.eta], lw=0.9, alpha=0.8,
                    label=label)
    ax.axhline(1.0, color="0.3", lw=1.2, ls="--")
    # a diverging run's sharpness explodes; keep the scale of the runs that do not
    ax.set_ylim(0.0, min(max(top * 1.05, 1.1), 2.5))
    if few and labelled:
        ax.legend(fontsize=8)
    ax.set_xlabel("step")
    ax.set_ylabel("sharpness / critical sharpness")
    ax.set_title(f"Sharpness of every run relative to its edge ({len(done)} runs)",
                 fontsize=10)
    ax.grid(alpha=0.3)
    paths.append(save_png(fig, os.path.join(out, "sharpness.png")))
    return paths


def _plain_ticks(axis, values) -> None:
    """Ticks labelled as plain numbers (``0.5``, ``16``), at ``values`` when given.

    On a log axis without ``values``: ticks at 1, 2, 3 and 5 times powers of ten.
    """
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

    if values is not None:
        axis.set_major_locator(FixedLocator(values))
    elif axis.get_scale() == "log":
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())
