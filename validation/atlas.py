"""``python -m validation.atlas``: where each prediction holds, across settings and seeds.

The atlas runs the checks of :mod:`validation.compare` over a matrix of settings
(architecture x loss x read-out initialisation x parametrisation) and seeds, as one sweep
of :mod:`validation.sweep` (a LocalCluster by default, ``--scheduler`` for a cluster;
resume; failed runs recorded). It then counts, for every setting and every prediction
row, the seeds where the row holds, fails or does not apply (the rows' own statuses,
:func:`validation.predictions.status_of`), and writes ``atlas.csv``, ``atlas.md`` and
``atlas.png`` (a heatmap, settings x predictions) to the output folder.

**The step size.** A fixed ``eta`` starts some settings above their edge ``2/eta`` (a
standard read-out initialisation has a sharpness several times that of a zero one).
Every run therefore takes

    eta = ETA_FRACTION * 2 / S_0

rounded to four significant digits, where ``S_0`` is the sharpness of its own
initialisation, measured with the run's own tracker (:func:`initial_sharpness`): every
run starts at ``S_0 = ETA_FRACTION * 2/eta``, below its edge by the same ratio. The
heavy-ball run of the ``momentum`` check takes the same ``eta`` (the default of
:class:`~validation.experiment.Config`), so it starts at ``ETA_FRACTION / (1 + beta)`` of
its edge ``2 (1 + beta) / eta`` (GD's start ratio would need ``eta_hb = (1 + beta) eta``,
a far larger effective step ``eta_hb / (1 - beta)``).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import os
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np

from validation.checkpoint import write_json, write_text
from validation.cli import OneLineParser
from validation.preflight import MAX_HOURS, check_output_folder, data_info, estimate, usable_cores

#: Architectures of the atlas: name -> fields of :class:`~validation.experiment.Config`.
ARCHS = {
    "tanh-mlp": {"arch": "mlp", "activation": "tanh", "width": 32, "depth": 2},
    "relu-mlp": {"arch": "mlp", "activation": "relu", "width": 32, "depth": 2},
    "cnn": {"arch": "cnn", "activation": "relu", "width": 16, "depth": 2},
    "transformer": {"arch": "transformer", "width": 16, "depth": 1},
}
LOSSES = ("mse", "ce")
#: Read-out initialisations: name -> ``readout_scale``.
READOUTS = {"zero": 0.0, "standard": 1.0}
PARAMETRIZATIONS = ("standard", "ntk")
#: Every run starts at ``S_0 = ETA_FRACTION * 2/eta`` (the default run of
#: :mod:`validation.compare` starts at about 0.63).
ETA_FRACTION = 0.6
#: Run fields common to every setting of the full atlas.
FULL = {"dataset": "mnist1d", "n": 128, "steps": 200, "drop_step": 120, "drop_factor": 1.5,
        "track_every": 10, "record_every": 20,
        "checks": ["edge", "self-stabilization", "central-flow", "flow-distance", "momentum",
                   "drop"]}
FULL_SEEDS = 3
#: The reduced matrix of ``--quick`` and its run fields.
QUICK = {"archs": ("tanh-mlp",), "losses": LOSSES, "readouts": ("zero",),
         "parametrizations": ("standard",), "seeds": 2}
QUICK_RUN = {"dataset": "mnist1d", "n": 120, "steps": 200, "drop_step": 120,
             "drop_factor": 1.5, "record_every": 10,
             "checks": ["edge", "self-stabilization", "central-flow", "flow-distance",
                        "momentum", "drop"]}
#: ``--quick`` refuses a matrix of more runs than this.
QUICK_CAP = 8
#: Files written to the output folder.
CSV, MD, PNG = "atlas.csv", "atlas.md", "atlas.png"
#: Cache of the measured initial sharpness of every run, in the output folder.
S0_FILE = "initial_sharpness.json"


@dataclass(frozen=True)
class Setting:
    """One cell of the matrix: architecture name (a key of :data:`ARCHS`), loss, read-out
    initialisation (a key of :data:`READOUTS`) and parametrisation."""

    arch: str
    loss: str
    readout: str
    parametrization: str

    @property
    def label(self) -> str:
        """``"tanh-mlp mse zero standard"``."""
        return f"{self.arch} {self.loss} {self.readout} {self.parametrization}"

    def fields(self, run: dict, seed: int) -> dict:
        """Fields of the sweep configuration of this setting and ``seed`` over ``run``,
        without the step size."""
        return {**run, **ARCHS[self.arch], "loss": self.loss,
                "readout_scale": READOUTS[self.readout],
                "parametrization": self.parametrization, "seed": seed}


def matrix(archs, losses, readouts, parametrizations) -> list[Setting]:
    """The settings of the cartesian product, in the order given (the last fastest)."""
    return [Setting(a, lo, r, p) for a in archs for lo in losses for r in readouts
            for p in parametrizations]


def choose_eta(s0: float) -> float:
    """The step size of a run whose initial sharpness is ``s0``.

    ``eta = ETA_FRACTION * 2 / s0`` rounded to four significant digits, so that the run
    starts at ``S_0 eta / 2 = ETA_FRACTION`` (to a relative 5e-4).

    Raises
    ------
    ValueError
        ``s0`` is not a finite number > 0.
    """
    if isinstance(s0, bool) or not isinstance(s0, int | float) or not (
            math.isfinite(s0) and s0 > 0):
        raise ValueError(f"s0 must be a finite sharpness > 0; got {s0!r}")
    return float(f"{ETA_FRACTION * 2.0 / s0:.4g}")


def initial_sharpness(fields: dict, threads: int = 1) -> float:
    """The sharpness ``S_0`` at the initialisation of the run ``fields``.

    Measured by the tracker of the run's main optimizer (same seed, same tolerance) at
    ``w_0``, which is what the run itself records at step 0; the step size does not enter.
    """
    import torch

    from validation.experiment import Experiment
    from validation.sweep import config_from_fields

    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    config = config_from_fields({**fields, "checks": ["edge"]})
    exp = Experiment(config, torch.device("cpu"))
    return float(exp.runs["main"].tracker.estimate(exp.w0).values[0])


def _measure_or_error(fields: dict, threads: int) -> dict:
    """:func:`initial_sharpness` as a record: ``{"s0": ...}`` or ``{"error": ...}``."""
    try:
        return {"s0": initial_sharpness(fields, threads)}
    except Exception as exc:  # reported as a failed run; the atlas goes on
        return {"error": f"{type(exc).__name__}: {exc}"}


def fields_key(fields: dict) -> str:
    """Stable key of a run's fields without its step size (for the ``S_0`` cache)."""
    text = json.dumps({k: v for k, v in fields.items() if k != "eta"}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# -- the matrix as a sweep ---------------------------------------------------------------------
def estimated_seconds(settings: list[Setting], seeds: int, run: dict) -> float:
    """Total run time of the matrix on one idle core: the sum of
    :func:`validation.preflight.estimate` over its runs (the step size does not enter;
    the measurement of ``S_0``, a few Hessian-vector products per run, is left out)."""
    from validation.sweep import config_from_fields

    total = 0.0
    infos: dict = {}
    for s in settings:
        for seed in range(seeds):
            fields = {**s.fields(run, seed), "eta": 1.0}
            config = config_from_fields(fields)
            source = (config.dataset, config.cifar_path)
            if source not in infos:
                infos[source] = data_info(config)
            total += estimate(config, infos[source]).seconds
    return total


def build_spec(settings: list[Setting], seeds: int, run: dict, s0s: dict) -> dict:
    """The sweep spec of the matrix: one configuration per setting and seed whose
    ``S_0`` is in ``s0s`` (``fields_key -> S_0``), with its step size
    (:func:`choose_eta`)."""
    configs = []
    for s in settings:
        for seed in range(seeds):
            fields = s.fields(run, seed)
            s0 = s0s.get(fields_key(fields))
            if s0 is None:
                continue
            eta = choose_eta(s0)
            configs.append({**fields, "eta": eta})
    return {"name": "atlas", "configs": configs}


@dataclass(frozen=True)
class Run:
    """One run of the atlas: its setting, seed, sweep key and initial sharpness."""

    setting: Setting
    seed: int
    key: str | None
    s0: float
    error: str = ""


@dataclass
class AtlasOutcome:
    """What :func:`run_atlas` returns.

    Attributes
    ----------
    runs : list of Run
        Every run of the matrix (a run whose ``S_0`` could not be measured has no key and
        its ``error``).
    records : dict
        Sweep key -> record (:func:`validation.sweep.run_configuration`).
    ran, skipped : list of str
        Sweep keys run now, and keys whose result was already there.
    measured : int
        Initial sharpnesses measured now (the others came from :data:`S0_FILE`).
    files : list of str
        The files written: :data:`CSV`, :data:`MD`, :data:`PNG`.
    seconds : float
        Wall time.
    """

    runs: list
    records: dict
    ran: list
    skipped: list
    measured: int
    files: list
    seconds: float

    @property
    def failed(self) -> list[Run]:
        """Runs without a finished result."""
        return [r for r in self.runs if self.records.get(r.key, {}).get("status") != "done"]


def _read_s0(out_dir: str) -> dict:
    try:
        with open(os.path.join(out_dir, S0_FILE)) as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return {}
    return {k: float(v) for k, v in data.items()} if isinstance(data, dict) else {}


def run_atlas(settings: list[Setting], seeds: int, run: dict, out_dir: str | os.PathLike, *,
              client=None, workers: int | None = None, progress: bool = True,
              max_hours: float = MAX_HOURS) -> AtlasOutcome:
    """Run the matrix ``settings x range(seeds)`` and write the atlas into ``out_dir``.

    Parameters
    ----------
    settings : list of Setting
        The matrix (:func:`matrix`).
    seeds : int
        Seeds ``0 .. seeds-1`` of every setting.
    run : dict
        Fields of :class:`~validation.experiment.Config` common to every run
        (:data:`FULL`, :data:`QUICK_RUN`).
    out_dir : path
        Output folder: the sweep's files (:mod:`validation.sweep`), :data:`S0_FILE`, and
        :data:`CSV`, :data:`MD`, :data:`PNG`.
    client : distributed.Client, optional
        A cluster; None starts a LocalCluster of ``workers`` processes.
    workers : int, optional
        Worker processes of the local cluster (default: every core).
    progress : bool
        Progress bars.
    max_hours : float
        The sweep refuses a run estimated longer than this.

    Returns
    -------
    AtlasOutcome

    Raises
    ------
    ValueError
        The sweep's refusals (:func:`validation.sweep.expand_spec`,
        :func:`validation.sweep.run_sweep`).

    Notes
    -----
    Stage one measures every run's ``S_0`` (:func:`initial_sharpness`) on the cluster and
    caches it in :data:`S0_FILE`; stage two runs the sweep with ``eta`` from
    :func:`choose_eta`. A rerun measures and runs only what is missing; a run that raises
    in either stage is recorded and the atlas goes on.
    """
    from validation.preflight import check_concurrent_memory
    from validation.sweep import expand_spec, local_cluster, run_sweep

    t0 = time.perf_counter()
    out = os.path.abspath(os.fspath(out_dir))
    os.makedirs(out, exist_ok=True)
    pairs = [(s, seed, s.fields(run, seed)) for s in settings for seed in range(seeds)]
    s0s = _read_s0(out)
    missing = [f for _, _, f in pairs if fields_key(f) not in s0s]
    errors: dict = {}
    own = None
    try:
        if missing:
            if client is None:
                own = local_cluster(workers, [], None)
                client = own[1]
            errors = _measure_stage(client, missing, s0s, out, progress)
        spec = build_spec(settings, seeds, run, s0s)
        entries = expand_spec(spec, max_hours=max_hours) if spec["configs"] else []
        if own is not None and entries:
            check_concurrent_memory([e.config for e in entries],
                                    workers if workers is not None else usable_cores())
        outcome = run_sweep(entries, out, client=client,
                            workers=workers if client is None else None,
                            progress=progress, spec=spec)
    finally:
        if own is not None:
            own[1].close()
            own[0].close()
    keys = {fields_key(e.overrides): e.key for e in entries}
    runs = []
    for s, seed, f in pairs:
        k = fields_key(f)
        if k in s0s:
            runs.append(Run(s, seed, keys[k], s0s[k]))
        else:
            runs.append(Run(s, seed, None, math.nan, errors.get(k, "no initial sharpness")))
    files = write_atlas(out, runs, outcome.records)
    return AtlasOutcome(runs=runs, records=outcome.records, ran=outcome.ran,
                        skipped=outcome.skipped, measured=len(missing) - len(errors),
                        files=files, seconds=time.perf_counter() - t0)


def _measure_stage(client, missing: list, s0s: dict, out: str, progress: bool) -> dict:
    """Measure ``S_0`` of the runs ``missing`` on ``client`` into ``s0s`` (and
    :data:`S0_FILE`); return ``fields_key -> error`` of those that raised."""
    from distributed import as_completed

    futures = {client.submit(_measure_or_error, f, 1, pure=False): fields_key(f)
               for f in missing}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(futures), desc="initial sharpness", unit="run")
    errors = {}
    try:
        for fut in as_completed(futures):
            rec = fut.result()
            k = futures[fut]
            if "s0" in rec:
                s0s[k] = rec["s0"]
                write_json(os.path.join(out, S0_FILE), s0s)
            else:
                errors[k] = rec["error"]
                line = f"failed to measure the initial sharpness: {rec['error']}"
                print(line, file=sys.stderr) if bar is None else bar.write(line, file=sys.stderr)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return errors


# -- the atlas as a cached job of the paper ------------------------------------------------------
def job_config(settings: list[Setting], seeds: int, run: dict) -> dict:
    """The JSON-able description of a matrix, for :func:`atlas_job`: the settings (as
    their fields), the seed count and the run fields."""
    return {"settings": [[s.arch, s.loss, s.readout, s.parametrization] for s in settings],
            "seeds": seeds, "run": run}


def atlas_job(config: dict, workdir: str) -> dict:
    """Run the matrix of ``config`` (:func:`job_config`) in ``workdir`` and return what the
    paper draws from it.

    ``workdir`` is an atlas output folder (:func:`run_atlas`): runs finished there are not
    run again, so ``python -m validation.atlas --out WORKDIR`` with the same matrix and the
    paper's job share their runs.

    Returns
    -------
    dict
        ``lines`` (:func:`aggregate`), ``runs`` (per run: ``setting`` as its four fields,
        ``seed``, ``s0``, ``eta``, ``onset`` and ``diverged_at`` steps or None,
        ``peak_ratio`` (the highest tracked sharpness of the main run over its edge),
        ``rose_above_start`` (whether a later tracked sharpness exceeded the first),
        ``seconds`` of the run, ``status``, ``error``), ``wall`` (seconds of this call)
        and ``markdown`` (:func:`format_markdown`).
    """
    settings = [Setting(*s) for s in config["settings"]]
    outcome = run_atlas(settings, config["seeds"], config["run"], workdir, workers=None,
                        progress=sys.stderr.isatty())
    runs = []
    for r in outcome.runs:
        rec = outcome.records.get(r.key, {})
        m = rec.get("measurements", {})
        sharp = [s for _, s in rec.get("series", {}).get("sharpness", [])]
        edge = m.get("edge", math.nan)
        runs.append({"setting": [r.setting.arch, r.setting.loss, r.setting.readout,
                                 r.setting.parametrization], "seed": r.seed, "s0": r.s0,
                     "eta": rec.get("config", {}).get("eta", math.nan),
                     "onset": m.get("onset_step"), "diverged_at": m.get("diverged_at"),
                     "peak_ratio": max(sharp) / edge if sharp else math.nan,
                     "rose_above_start": bool(sharp) and max(sharp[1:], default=-math.inf)
                     > sharp[0],
                     "seconds": rec.get("seconds", math.nan),
                     "status": rec.get("status", "failed"),
                     "error": r.error or rec.get("error", "")})
    lines = aggregate(outcome.runs, outcome.records)
    return {"lines": lines, "runs": runs, "wall": outcome.seconds,
            "markdown": format_markdown(lines, outcome.runs, outcome.records)}


def runs_of(result: dict) -> list[Run]:
    """The :class:`Run` objects of an :func:`atlas_job` result (for :func:`draw_heatmap`)."""
    return [Run(Setting(*r["setting"]), r["seed"], None, r["s0"], r["error"])
            for r in result["runs"]]


# -- the atlas from the records -----------------------------------------------------------------
def _finite(values) -> list:
    return [float(v) for v in values if isinstance(v, int | float) and math.isfinite(v)]


def _pattern(reason: str) -> str:
    """A reason with its numbers replaced by ``#``, to count reasons of one kind."""
    return re.sub(r"-?\d+(\.\d+)?(e[-+]?\d+)?", "#", reason)


def aggregate(runs: list[Run], records: dict) -> list[dict]:
    """One line per setting and prediction row, over the setting's finished runs.

    Returns
    -------
    list of dict
        Setting fields (``arch``, ``loss``, ``readout``, ``parametrization``), ``check``,
        ``row``, ``quantity``, ``runs`` (finished runs of the setting), ``runs_failed``,
        ``held``, ``failed``, ``not_applicable`` (counts of
        :func:`~validation.predictions.status_of` over seeds), ``fraction_held``
        (``held / (held + failed)``, NaN when none applies), ``error_median``,
        ``error_min``, ``error_max`` (over the seeds where the row applies and its error
        is finite), ``tolerance``, ``eta_median``, ``start_ratio_max`` (the largest
        ``S_0 eta / 2`` that the runs recorded at step 0), ``reasons`` (the distinct
        not-applicable reasons, numbers replaced by ``#``) and ``fail_reasons`` (likewise,
        the reasons of rows that fail because their prediction could not be computed,
        e.g. a central flow that stopped).
    """
    from validation.predictions import FAILS, HOLDS, NOT_APPLICABLE, count_statuses, status_of

    by_setting: dict = {}
    for r in runs:
        by_setting.setdefault(r.setting, []).append(r)
    lines = []
    for setting, rs in by_setting.items():
        done = [(r, records[r.key]) for r in rs
                if r.key is not None and records.get(r.key, {}).get("status") == "done"]
        etas = [rec["config"]["eta"] for _, rec in done]
        starts = _finite(rec["measurements"]["initial_sharpness"] / rec["measurements"]["edge"]
                         for _, rec in done)
        rows: dict = {}
        for _, rec in done:
            for row in rec["predictions"]:
                rows.setdefault(row["name"], []).append(row)
        for name, rws in rows.items():
            c = count_statuses(rws)
            applicable = [r for r in rws if status_of(r) != NOT_APPLICABLE]
            errs = _finite(r["error"] for r in applicable)
            held = sum(status_of(r) == HOLDS for r in rws)
            reasons = Counter(_pattern(r["reason"]) for r in rws
                              if status_of(r) == NOT_APPLICABLE)
            fail_reasons = Counter(_pattern(r["reason"]) for r in rws
                                   if status_of(r) == FAILS and r["reason"])
            lines.append({
                "arch": setting.arch, "loss": setting.loss, "readout": setting.readout,
                "parametrization": setting.parametrization, "check": rws[0]["check"],
                "row": name, "quantity": rws[0]["quantity"], "runs": len(done),
                "runs_failed": len(rs) - len(done), "held": c["held"], "failed": c["failed"],
                "not_applicable": c["not_applicable"],
                "fraction_held": held / len(applicable) if applicable else math.nan,
                "error_median": float(np.median(errs)) if errs else math.nan,
                "error_min": min(errs) if errs else math.nan,
                "error_max": max(errs) if errs else math.nan,
                "tolerance": rws[0]["tolerance"],
                "eta_median": float(np.median(etas)) if etas else math.nan,
                "start_ratio_max": max(starts) if starts else math.nan,
                "reasons": " | ".join(f"{n}x {p}" for p, n in reasons.most_common()),
                "fail_reasons": " | ".join(f"{n}x {p}" for p, n in
                                           fail_reasons.most_common())})
    return lines


def write_atlas(out_dir: str, runs: list[Run], records: dict) -> list[str]:
    """Write :data:`CSV`, :data:`MD` and :data:`PNG` into ``out_dir``; return their paths."""
    lines = aggregate(runs, records)
    paths = [_write_csv(os.path.join(out_dir, CSV), lines),
             write_text(os.path.join(out_dir, MD), format_markdown(lines, runs, records))]
    paths.append(draw_heatmap(os.path.join(out_dir, PNG), lines, runs))
    return paths


def _fmt(v, digits: int = 10) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.{digits}g}"
    return str(v)


def _write_csv(path: str, lines: list[dict]) -> str:
    buf = io.StringIO()
    names = list(lines[0]) if lines else ["arch", "loss", "readout", "parametrization", "row"]
    writer = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for line in lines:
        writer.writerow({k: _fmt(v) for k, v in line.items()})
    return write_text(path, buf.getvalue())


def _row_order(lines: list[dict]) -> list[str]:
    """Prediction rows in the order they first appear (the checks' order of
    :func:`validation.predictions.evaluate`)."""
    names: list[str] = []
    for line in lines:
        if line["row"] not in names:
            names.append(line["row"])
    return names


def format_markdown(lines: list[dict], runs: list[Run], records: dict) -> str:
    """``atlas.md``: the step-size rule, then one table per prediction row (a line per
    setting), its not-applicable reasons, and the failed runs."""
    settings = list(dict.fromkeys(r.setting for r in runs))
    seeds = len({r.seed for r in runs})
    out = ["# Atlas of the predictions", "",
           f"{len(settings)} settings x {seeds} seed(s) = {len(runs)} runs. Every run takes "
           f"eta = {ETA_FRACTION} * 2 / S_0 (4 significant digits), S_0 the sharpness at its "
           "initialisation, so it starts at S_0 eta / 2 = "
           f"{ETA_FRACTION}; the heavy-ball run takes the same eta. A row's fraction held "
           "counts the seeds where it applies; its error is the median [min, max] over them.",
           ""]
    starts = [line for line in lines if line["start_ratio_max"] > ETA_FRACTION * 1.01]
    if starts:
        out.append("Runs that started above the intended ratio: " + ", ".join(
            f"{line['arch']} {line['loss']} {line['readout']} {line['parametrization']} "
            f"({line['start_ratio_max']:.3g})" for line in _one_per_setting(starts)) + ".")
        out.append("")
    for name in _row_order(lines):
        group = [line for line in lines if line["row"] == name]
        out += [f"## {name} ({group[0]['check']}): {group[0]['quantity']}", "",
                f"Tolerance {group[0]['tolerance']:.3g}.", "",
                "| setting | eta | held / applicable | n/a | error median [min, max] |",
                "| --- | --- | --- | --- | --- |"]
        for line in group:
            app = line["held"] + line["failed"]
            err = (f"{line['error_median']:.3g} [{line['error_min']:.3g}, "
                   f"{line['error_max']:.3g}]" if app and math.isfinite(line["error_median"])
                   else "-")
            out.append(f"| {line['arch']} {line['loss']} {line['readout']} "
                       f"{line['parametrization']} | {line['eta_median']:.4g} | "
                       f"{line['held']} / {app} | {line['not_applicable']} | {err} |")
        for key, head in (("reasons", "Not applicable because:"),
                          ("fail_reasons", "Fails because the prediction could not be "
                                           "computed:")):
            reasons = count_reasons(group, key)
            if reasons:
                out += ["", head]
                out += [f"- {n} run(s): {p}" for p, n in reasons.most_common()]
        out.append("")
    failed = [r for r in runs if records.get(r.key, {}).get("status") != "done"]
    out.append(f"## Failed runs ({len(failed)})")
    out.append("")
    for r in failed:
        error = r.error or records.get(r.key, {}).get("error", "no result")
        out.append(f"- {r.setting.label} seed {r.seed}: {error}")
    if not failed:
        out.append("None.")
    return "\n".join(out) + "\n"


def count_reasons(lines: list[dict], key: str = "reasons") -> Counter:
    """The reasons of the column ``key`` (``"reasons"`` or ``"fail_reasons"``) of
    :func:`aggregate`'s ``lines``, counted over them."""
    reasons: Counter = Counter()
    for line in lines:
        for part in filter(None, line[key].split(" | ")):
            n, _, pattern = part.partition("x ")
            reasons[pattern] += int(n)
    return reasons


def _one_per_setting(lines: list[dict]) -> list[dict]:
    seen, keep = set(), []
    for line in lines:
        k = (line["arch"], line["loss"], line["readout"], line["parametrization"])
        if k not in seen:
            seen.add(k)
            keep.append(line)
    return keep


def draw_heatmap(path: str, lines: list[dict], runs: list[Run]) -> str:
    """Heatmap of settings (rows) x prediction rows (columns).

    A cell's colour is the fraction of the seeds where the row applies in which it holds
    (red 0 to green 1), and its text the median error over them; a cell where the row
    applies to no seed is grey with ``n/a``; a setting without finished runs is blank and
    says so.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    settings = list(dict.fromkeys(r.setting for r in runs))
    names = _row_order(lines)
    cell = {(line["arch"], line["loss"], line["readout"], line["parametrization"],
             line["row"]): line for line in lines}
    frac = np.full((len(settings), len(names)), np.nan)
    fig, ax = plt.subplots(figsize=(2.8 + 0.78 * max(len(names), 1),
                                    1.4 + 0.34 * max(len(settings), 1)))
    cmap = matplotlib.colormaps["RdYlGn"]
    for i, s in enumerate(settings):
        for j, name in enumerate(names):
            line = cell.get((s.arch, s.loss, s.readout, s.parametrization, name))
            if line is None:
                continue
            if line["held"] + line["failed"] == 0:
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="0.82",
                                           hatch="//", edgecolor="0.6", lw=0))
                ax.text(j, i, "n/a", ha="center", va="center", fontsize=6.5, color="0.3")
                continue
            frac[i, j] = line["fraction_held"]
            err = line["error_median"]
            text = f"{err:.2g}" if math.isfinite(err) else "nan"
            dark = line["fraction_held"] < 0.2 or line["fraction_held"] > 0.85
            ax.text(j, i, text, ha="center", va="center", fontsize=6.5,
                    color="white" if dark else "black")
    image = ax.imshow(np.ma.masked_invalid(frac), cmap=cmap, vmin=0.0, vmax=1.0,
                      aspect="auto")
    ax.set_xlim(-0.5, len(names) - 0.5)
    ax.set_ylim(len(settings) - 0.5, -0.5)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=7.5)
    done = {(line["arch"], line["loss"], line["readout"], line["parametrization"])
            for line in lines}
    ax.set_yticks(range(len(settings)),
                  [s.label if (s.arch, s.loss, s.readout, s.parametrization) in done
                   else f"{s.label} (no finished run)" for s in settings], fontsize=7.5)
    ax.set_xticks(np.arange(-0.5, len(names)), minor=True)
    ax.set_yticks(np.arange(-0.5, len(settings)), minor=True)
    ax.grid(which="minor", color="white", lw=1.0)
    ax.tick_params(which="minor", length=0)
    bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    bar.set_label("fraction of seeds that hold (of those where the row applies)", fontsize=7)
    seeds = len({r.seed for r in runs})
    ax.set_title(f"Where each prediction holds: {len(settings)} settings x {seeds} seed(s); "
                 "cell text: median error; grey: not applicable", fontsize=9)
    from validation.report import save_png

    return save_png(fig, path, dpi=130)


# -- command line -------------------------------------------------------------------------------
EPILOG = f"""\
default matrix: architectures {', '.join(ARCHS)} x losses {', '.join(LOSSES)} x read-out
initialisations {', '.join(READOUTS)} x parametrisations {', '.join(PARAMETRIZATIONS)} x
{FULL_SEEDS} seeds; an architecture that validation.networks does not provide is left
out with a note (refused when named in --archs). --quick: {', '.join(QUICK['archs'])} x
{', '.join(QUICK['losses'])} x {', '.join(QUICK['readouts'])} x
{', '.join(QUICK['parametrizations'])} x {QUICK['seeds']} seeds on smaller runs, at most
{QUICK_CAP} runs. Every run takes eta = {ETA_FRACTION} * 2 / S_0 (S_0: its sharpness at
initialisation), so it starts at {ETA_FRACTION} of its edge.

results: OUT/atlas.csv, OUT/atlas.md, OUT/atlas.png, and the sweep's files (results/,
failed/, index.json, {S0_FILE}). Rerunning the same command skips finished runs.
exit status: 0 all done, 1 some run failed, 2 bad input, 130 interrupted.
"""


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    p = OneLineParser(prog="python -m validation.atlas",
                description="Where each edge-of-stability prediction holds: a matrix of "
                            "settings x seeds on the sweep machinery.",
                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help=f"the reduced matrix on smaller runs (at most {QUICK_CAP} runs)")
    p.add_argument("--out", default=None,
                   help="output folder (default results/atlas, results/atlas-quick)")
    p.add_argument("--archs", nargs="*", default=None, metavar="ARCH",
                   help=f"architectures, of {', '.join(ARCHS)}")
    p.add_argument("--losses", nargs="*", default=None, metavar="LOSS",
                   help=f"losses, of {', '.join(LOSSES)}")
    p.add_argument("--readouts", nargs="*", default=None, metavar="INIT",
                   help=f"read-out initialisations, of {', '.join(READOUTS)}")
    p.add_argument("--parametrizations", nargs="*", default=None, metavar="PARAM",
                   help=f"parametrisations, of {', '.join(PARAMETRIZATIONS)}")
    p.add_argument("--seeds", type=int, default=None,
                   help=f"seeds per setting (default {FULL_SEEDS}; --quick {QUICK['seeds']})")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="address of a running dask scheduler (default: a local cluster)")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes of the local cluster (default: every core)")
    p.add_argument("--estimate", action="store_true",
                   help="print the matrix and its estimated time; run nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _pick(values, accepted, option: str, what: str, default) -> list:
    """``values`` of ``--option`` (default ``default``) checked against ``accepted``."""
    if values is None:
        return list(default)
    for v in values:
        if v not in accepted:
            raise ValueError(f"--{option}: unknown {what} {v!r}; accepted: "
                             f"{', '.join(accepted)}")
    return list(dict.fromkeys(values))


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else {"archs": tuple(ARCHS), "losses": LOSSES,
                                         "readouts": tuple(READOUTS),
                                         "parametrizations": PARAMETRIZATIONS,
                                         "seeds": FULL_SEEDS}
    run = QUICK_RUN if args.quick else FULL
    try:
        if args.workers is not None and args.workers < 1:
            raise ValueError(f"--workers must be >= 1; got {args.workers}")
        if args.scheduler is not None and args.workers is not None:
            raise ValueError("--workers sets the local cluster; with --scheduler the "
                             "cluster's own workers run the tasks")
        seeds = defaults["seeds"] if args.seeds is None else args.seeds
        if seeds < 1:
            raise ValueError(f"--seeds must be >= 1; got {seeds}")
        archs = _pick(args.archs, ARCHS, "archs", "arch", defaults["archs"])
        settings = matrix(archs,
                          _pick(args.losses, LOSSES, "losses", "loss", defaults["losses"]),
                          _pick(args.readouts, READOUTS, "readouts", "readout",
                                defaults["readouts"]),
                          _pick(args.parametrizations, PARAMETRIZATIONS, "parametrizations",
                                "parametrization", defaults["parametrizations"]))
        if not settings:
            raise ValueError("the filters leave an empty matrix")
        if args.quick and len(settings) * seeds > QUICK_CAP:
            raise ValueError(f"--quick runs at most {QUICK_CAP} runs; this matrix has "
                             f"{len(settings)} settings x {seeds} seeds = "
                             f"{len(settings) * seeds}")
        out = args.out or os.path.join("results", "atlas-quick" if args.quick else "atlas")
        try:
            check_output_folder(out)
        except ValueError as exc:
            raise ValueError(f"--out: {exc}") from None
        total = estimated_seconds(settings, seeds, run)
    except ValueError as exc:
        parser.error(str(exc))
    workers = args.workers if args.workers is not None else usable_cores()
    where = (f"on {workers} local worker(s)" if args.scheduler is None
             else f"on the cluster at {args.scheduler}")
    print(f"{len(settings)} settings x {seeds} seed(s) = {len(settings) * seeds} runs; "
          f"estimated {total / 60:.1f} min of one idle core"
          + (f", about {total / 60 / workers:.1f} min {where}" if args.scheduler is None
             else f", {where}") + f"; results in {out}", flush=True)
    if args.estimate:
        return 0
    from validation.sweep import run_with_client

    outcome = run_with_client(
        parser, args.scheduler, out,
        lambda client: run_atlas(settings, seeds, run, out, client=client,
                                 workers=args.workers, progress=not args.no_progress))
    if outcome is None:
        return 130
    for path in outcome.files:
        print(f"wrote {path}")
    for r in outcome.failed:
        error = r.error or outcome.records.get(r.key, {}).get("error", "no result")
        print(f"failed: {r.setting.label} seed {r.seed}: {error}", file=sys.stderr)
    print(f"measured {outcome.measured} initial sharpness(es); ran {len(outcome.ran)}, "
          f"skipped {len(outcome.skipped)} already done, {len(outcome.failed)} failed; "
          f"wall time {outcome.seconds:.1f} s")
    return 1 if outcome.failed else 0


if __name__ == "__main__":
    sys.exit(main())
