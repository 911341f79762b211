"""Real-network runs (``validation.experiment``) as cached jobs.

:func:`network_job` wraps one :class:`validation.experiment.Config` into a
:class:`~paper.cache.Job` whose result keeps what the figures draw: for every optimizer
run its loss per step, its tracked sharpness, its step size and critical sharpness, and
the flows' records (gradient flow, central flow) when the run had them.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from paper.cache import Job

#: Bumped when :func:`run_network` changes what it stores.
VERSION = 3

#: Sharpness tracking of every paper run (validation ``Config`` fields): with a single
#: warm-started vector an eigenvalue that overtakes the tracked one is missed until it is
#: far above it (on MNIST-1D in the NTK parametrization the tracked value fell below a
#: cold Lanczos estimate, then jumped); two vectors and periodic cold restarts follow
#: such crossings.
TRACKING = {"track_vectors": 2, "refresh_every": 10}


def network_job(config, *, label: str = "", cost: float | None = None) -> Job:
    """The cached job of one comparison run (``config``: a validation ``Config``)."""
    d = dataclasses.replace(config, **TRACKING).to_dict()
    if cost is None:
        # Rough: steps times examples times width; the flows cost several times more.
        flows = 4.0 if set(d["checks"]) & {"central-flow", "flow-distance"} else 1.0
        runs = 1 + sum(c in d["checks"] for c in ("drop", "momentum"))
        cost = d["steps"] * d["n"] * d["width"] * d["depth"] * (flows + runs - 1) / 1e8
    return Job("network", d, run_network, version=VERSION, cost=cost, label=label)


def config_from_dict(d: dict):
    """Rebuild the validation ``Config`` from :meth:`Config.to_dict`."""
    from validation.experiment import Config

    d = dict(d)
    d["classes"] = tuple(d["classes"]) if d["classes"] is not None else None
    d["checks"] = tuple(d["checks"])
    return Config(**d)


def run_network(d: dict) -> dict:
    """Run the experiment of config dictionary ``d`` on the CPU, one thread, deterministically.

    ``d`` is :meth:`Config.to_dict` (with the tracking of :data:`TRACKING`).

    Returns a flat dictionary: ``<run>.loss`` (per step), ``<run>.sharpness_t`` and
    ``<run>.sharpness`` (tracked steps), ``<run>.eta``, ``<run>.edge``, ``<run>.start``,
    ``<run>.diverged_at`` (-1 when it did not), ``runs`` (their names), ``records.<key>``
    (flows, every ``record_every`` steps), ``onset.<key>``, ``num_params`` and ``n``; for
    SGD ``stochastic.<key>`` (the series of
    :class:`validation.stochastic.BatchSharpnessProbe`, and ``stochastic.batch_size``,
    ``stochastic.batches``), for Adam and RMSProp ``adaptive.t`` and
    ``adaptive.preconditioned`` (:class:`validation.adaptive.PreconditionedProbe`).
    """
    import torch

    from validation.experiment import Experiment

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    config = config_from_dict(d)
    exp = Experiment(config, torch.device("cpu"))
    while exp.t < config.steps + 1:
        exp.step()
    res = exp.results()
    out: dict = {"runs": sorted(res["runs"]), "num_params": int(res["num_params"]),
                 "n": int(res["n"])}
    for name, r in res["runs"].items():
        sharp = np.asarray(r["sharpness"], dtype=float).reshape(-1, 2)
        out[f"{name}.loss"] = np.asarray(r["loss"], dtype=float)
        out[f"{name}.sharpness_t"] = sharp[:, 0].astype(np.int64)
        out[f"{name}.sharpness"] = sharp[:, 1]
        x = np.asarray(r["x"], dtype=float).reshape(-1, 2)
        out[f"{name}.x_t"] = x[:, 0].astype(np.int64)
        out[f"{name}.x"] = x[:, 1]
        out[f"{name}.eta"] = float(r["eta"])
        out[f"{name}.edge"] = float(r["edge"])
        out[f"{name}.start"] = int(r["start"])
        out[f"{name}.optimizer"] = r["optimizer"]
        out[f"{name}.beta"] = float(r["beta"])
        out[f"{name}.diverged_at"] = -1 if r["diverged_at"] is None else int(r["diverged_at"])
    for key, values in res["records"].items():
        if values and any(v is not None and not (isinstance(v, float) and math.isnan(v))
                          for v in values):
            out[f"records.{key}"] = np.asarray(values, dtype=float)
    for key, value in (res["onset"] or {}).items():
        out[f"onset.{key}"] = float(value)
    for group in ("stochastic", "adaptive"):
        for key, values in (res.get(group) or {}).items():
            out[f"{group}.{key}"] = (int(values) if isinstance(values, int)
                                     else np.asarray(values, dtype=float))
    return out


def first_reach(t, s, edge: float, *, after: int = 0) -> int | None:
    """First tracked step ``>= after`` with ``S >= edge``, or None."""
    t, s = np.asarray(t), np.asarray(s)
    hit = np.where((t >= after) & (s >= edge))[0]
    return int(t[hit[0]]) if len(hit) else None


def mean_after(t, s, start: int, end: int | None = None) -> float:
    """Mean of the tracked ``S`` over ``start <= t <= end`` (NaN when empty)."""
    t, s = np.asarray(t), np.asarray(s, dtype=float)
    keep = (t >= start) & (t <= (t.max() if end is None else end))
    return float(np.mean(s[keep])) if keep.any() else float("nan")


def describe_network(config) -> str:
    """Short text naming a run's data, network, loss and precision."""
    d = config if isinstance(config, dict) else config.to_dict()
    data = {"mnist1d": "MNIST-1D", "digits": "scikit-learn digits", "cifar10": "CIFAR-10",
            "synthetic": "a synthetic regression task"}[d["dataset"]]
    loss = {"mse": "squared loss", "ce": "cross-entropy"}[d["loss"]]
    readout = " (read-out initialised at zero)" if d["readout_scale"] == 0 else ""
    layers = "hidden layer" if d["depth"] == 1 else "hidden layers"
    cite = "Greydanus & Kobak, arXiv 2011.14439; " if d["dataset"] == "mnist1d" else ""
    return (f"{data} ({cite}{d['n']} examples), a {d['activation']} {d['arch'].upper()} "
            f"with {d['depth']} {layers} of width {d['width']}{readout}, {loss}, "
            f"{d['dtype']}")
