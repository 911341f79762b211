"""Figure 15: the atlas, where each prediction holds across settings and seeds."""

from __future__ import annotations

import math

from paper.build import Context, Section
from paper.cache import Job

NAME = "atlas"
NUMBER = 15
TITLE = ("The atlas: where each prediction holds, across architectures, losses, "
         "initialisations and seeds")

#: The quick build's matrix: one setting, one seed, a tiny synthetic run.
QUICK_RUN = {"dataset": "synthetic", "n": 40, "steps": 40, "drop_step": 20,
             "record_every": 10, "checks": ["edge", "self-stabilization", "central-flow",
                                            "flow-distance", "momentum", "drop"]}


def config(quick: bool) -> dict:
    """The matrix of ``python -m validation.atlas`` (its default), or one tiny run."""
    from validation import atlas

    if quick:
        return atlas.job_config(atlas.matrix(["tanh-mlp"], ["mse"], ["zero"], ["standard"]),
                                1, QUICK_RUN)
    return atlas.job_config(atlas.matrix(list(atlas.ARCHS), list(atlas.LOSSES),
                                         list(atlas.READOUTS), list(atlas.PARAMETRIZATIONS)),
                            atlas.FULL_SEEDS, atlas.FULL)


def jobs(quick: bool) -> list[Job]:
    from validation.atlas import atlas_job

    c = config(quick)
    return [Job("atlas", c, atlas_job, workdir=True, cost=1000.0 * len(c["settings"]),
                label=f"atlas, {len(c['settings'])} settings x {c['seeds']} seeds")]


def _share(held: int, total: int) -> str:
    return f"{held} of {total}"


def summary(r: dict) -> dict:
    """Counts over the atlas's result: per prediction row, and where the edge is reached."""
    from validation import atlas

    lines, runs = r["lines"], r["runs"]
    done = [x for x in runs if x["status"] == "done"]
    rows: dict = {}
    for line in lines:
        d = rows.setdefault(line["row"], {"check": line["check"], "held": 0, "failed": 0,
                                          "na": 0, "all_hold": [], "all_fail": [],
                                          "errors": []})
        d["held"] += line["held"]
        d["failed"] += line["failed"]
        d["na"] += line["not_applicable"]
        label = f"{line['arch']} {line['loss']} {line['readout']} {line['parametrization']}"
        if line["held"] + line["failed"]:
            (d["all_hold"] if line["failed"] == 0 else
             d["all_fail"] if line["held"] == 0 else []).append(label)
        if math.isfinite(line["error_median"]):
            d["errors"].append(line["error_median"])
    groups: dict = {}
    for x in done:
        arch, loss, readout, param = x["setting"]
        g = groups.setdefault(f"{loss} {readout} {param}", {"runs": 0, "onset": 0,
                                                           "rose": 0, "peaks": []})
        g["runs"] += 1
        g["onset"] += x["onset"] is not None
        g["rose"] += bool(x["rose_above_start"])
        g["peaks"].append(x["peak_ratio"])
    for g in groups.values():
        g["peak_range"] = [min(g["peaks"]), max(g["peaks"])]
        del g["peaks"]
    diverged = sorted({" ".join(x["setting"]) for x in done if x["diverged_at"] is not None})
    onsets: dict = {}
    for x in done:
        arch, loss, readout, _ = x["setting"]
        for key in (("readout", readout), ("loss", loss), ("arch", arch)):
            c = onsets.setdefault(key, [0, 0])
            c[0] += x["onset"] is not None
            c[1] += 1
    return {"settings": len({tuple(x["setting"]) for x in runs}),
            "seeds": len({x["seed"] for x in runs}), "runs": len(runs), "done": len(done),
            "failed_runs": [f"{' '.join(x['setting'])} seed {x['seed']}: {x['error']}"
                            for x in runs if x["status"] != "done"],
            "run_seconds": sum(x["seconds"] for x in done if math.isfinite(x["seconds"])),
            "eta_range": [min(x["eta"] for x in done), max(x["eta"] for x in done)]
            if done else [],
            "diverged": sum(x["diverged_at"] is not None for x in done),
            "diverged_settings": diverged,
            "fail_reasons": dict(atlas.count_reasons(lines, "fail_reasons").most_common(3)),
            "groups": groups,
            "rows": rows, "onsets": {f"{k[0]}={k[1]}": v for k, v in onsets.items()}}


def make(ctx: Context) -> Section:
    from validation import atlas

    c = config(ctx.quick)
    r = ctx.result(jobs(ctx.quick)[0])
    row = summary(r)
    path, rel = ctx.figure_path(NUMBER, NAME)
    atlas.draw_heatmap(path, r["lines"], atlas.runs_of(r))
    run = c["run"]
    caption = (
        f"`python -m validation.atlas`: {row['settings']} settings (architecture × loss × "
        f"read-out initialisation × parametrisation) × {row['seeds']} seed(s) = "
        f"{row['runs']} full-batch GD runs on {run['dataset']} ({run['n']} examples, "
        f"{run['steps']} steps, the step size dropped by {run.get('drop_factor', 2.0):g} at "
        f"step {run['drop_step']} for the drop check), each checked by "
        f"{', '.join(run['checks'])}. Every run takes η = {atlas.ETA_FRACTION} · 2/S₀ "
        f"with S₀ its own initial sharpness, so every run starts at {atlas.ETA_FRACTION} "
        f"of its edge. Cell colour: the fraction of the seeds where a prediction row applies "
        f"in which it holds; cell text: the median error over them; grey: the row applies "
        f"to no seed (a premise is missing, e.g. no onset of the edge).")
    parts = [f"{row['done']} of the {row['runs']} runs finished "
             f"({row['run_seconds'] / 60:.1f} min of run time summed over the runs, each on one "
             f"worker process; step sizes "
             f"{row['eta_range'][0]:.3g} to {row['eta_range'][1]:.3g})"
             if row["eta_range"] else "No run finished"]
    parts[0] += (f"; {row['diverged']} diverged." if row["diverged"] else ".")
    on = row["onsets"]

    def onset_text(key: str, name: str) -> str:
        h, n = on.get(key, (0, 0))
        return f"{name} {_share(h, n)}"

    parts.append(
        "The sharpness reached its edge from below (an onset) in "
        + "; ".join(onset_text(f"readout={k}", f"{k} read-out:") for k in atlas.READOUTS)
        + "; " + "; ".join(onset_text(f"loss={k}", f"{k}:") for k in atlas.LOSSES)
        + "; " + "; ".join(onset_text(f"arch={k}", f"{k}:") for k in atlas.ARCHS) + ".")
    groups = ["| loss, read-out, parametrisation | runs | onset | sharpness rose above its "
              "start | highest S/edge (min–max over runs) |", "|---|---|---|---|---|"]
    for name, g in row["groups"].items():
        lo, hi = g["peak_range"]
        groups.append(f"| {name} | {g['runs']} | {g['onset']} | {g['rose']} | "
                      f"{lo:.2f}–{hi:.2f} |")
    parts.append("By loss, read-out initialisation and parametrisation (all four "
                 "architectures together):\n\n" + "\n".join(groups) + "\n\n"
                 "Where the sharpness never reaches the edge there is no edge of stability "
                 "to test, and every row that needs an onset does not apply. Per "
                 "prediction row, over all settings:")
    table = ["| row | check | holds / applicable | not applicable | every seed holds in "
             "| every seed fails in |", "|---|---|---|---|---|---|"]
    for name, d in row["rows"].items():
        app = d["held"] + d["failed"]
        table.append(f"| {name} | {d['check']} | {_share(d['held'], app)} | {d['na']} | "
                     f"{len(d['all_hold'])} settings | {len(d['all_fail'])} settings |")
    reasons = atlas.count_reasons(r["lines"])
    common = "; ".join(f"{p} ({n} rows)" for p, n in reasons.most_common(3))
    text = " ".join(parts) + "\n\n" + "\n".join(table)
    if common:
        text += f"\n\nThe most frequent reasons a row does not apply: {common}."
    if row["fail_reasons"]:
        text += ("\n\nRows that fail because their prediction could not be computed, "
                 "by reason (numbers replaced by #): " + "; ".join(
                     f"{p} ({n} rows)" for p, n in row["fail_reasons"].items()) + ".")
    if row["diverged_settings"]:
        text += ("\n\nDiverged runs are in: " + "; ".join(row["diverged_settings"])
                 + "; their rows do not apply.")
    if row["failed_runs"]:
        text += "\n\nRuns that did not finish: " + "; ".join(row["failed_runs"]) + "."
    return Section(file=rel, caption=caption, text=text, numbers=row)
