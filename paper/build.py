"""Build the paper: compute the missing results, draw every figure, write ``paper.md``.

Each figure is a module of :mod:`paper.make` with

* ``NAME`` (short name, used by ``--only`` and in the file name), ``NUMBER``, ``TITLE``;
* ``jobs(quick) -> list[Job]``: the cached computations it reads;
* ``make(ctx) -> Section``: reads its results through ``ctx.result(job)``, draws one
  figure file with :mod:`paper.style` and returns the text of its section, whose numbers
  are read from those results.

:func:`build` first computes every missing result, in parallel processes when
``workers > 1`` (longest first), then calls the figure functions in order.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from types import ModuleType

from paper.cache import SECONDS, Cache, Job

#: The default output folder: the ``paper/`` folder of the checkout.
DEFAULT_OUT = os.path.dirname(os.path.abspath(__file__))
#: The default output folder of the quick build (git-ignored): never the full build's.
QUICK_OUT = os.path.join(DEFAULT_OUT, "quick")
FIGURES_DIR = "figures"


@dataclass(frozen=True)
class Section:
    """One figure's part of the paper.

    Attributes
    ----------
    file : str
        The figure file, relative to the paper's folder (``figures/...png``).
    caption : str
        What the figure shows (markdown).
    text : str
        What was measured, with its numbers (markdown).
    numbers : dict
        The numbers quoted in ``text`` (written to ``numbers.json``).
    """

    file: str
    caption: str
    text: str
    numbers: dict = field(default_factory=dict)


class Context:
    """What a figure function gets: the mode, the cache, and where to write.

    Parameters
    ----------
    quick : bool
        The reduced form (tiny networks, few steps).
    cache : Cache
        Results.
    out : path
        The paper's folder; figures go to ``out/figures``.
    force : bool
        Recompute results even when cached (each once per build).
    """

    def __init__(self, *, quick: bool, cache: Cache, out: str, force: bool = False) -> None:
        self.quick = quick
        self.cache = cache
        self.out = out
        self.force = force
        self.computed: set[str] = set()

    def result(self, job: Job) -> dict:
        """The result of ``job`` (computed if missing, or if forced and not yet redone)."""
        if (self.force and job.key not in self.computed) or not self.cache.has(job):
            self.cache.compute(job, fresh=self.force)
            self.computed.add(job.key)
        return self.cache.load(job)

    def figure_path(self, number: int, name: str) -> tuple[str, str]:
        """``(path, path relative to the paper's folder)`` of figure ``number``'s PNG."""
        rel = f"{FIGURES_DIR}/fig{number:02d}-{name}.png"
        return os.path.join(self.out, *rel.split("/")), rel


def _compute(cache_root: str, job: Job, fresh: bool) -> tuple[str, float]:
    """Worker: compute one job into the cache; returns its key and seconds."""
    t0 = time.perf_counter()
    Cache(cache_root).compute(job, fresh=fresh)
    return job.key, time.perf_counter() - t0


def _init_worker() -> None:
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


def compute_missing(jobs: list[Job], ctx: Context, *, workers: int = 1,
                    progress: bool = True) -> list[str]:
    """Compute the jobs whose results are missing (or all of them with ``ctx.force``).

    Jobs run longest first; with ``workers > 1`` in that many spawned processes.
    Returns the keys computed.
    """
    todo: dict[str, Job] = {}
    for job in jobs:
        if job.key in todo or job.key in ctx.computed:
            continue
        if ctx.force or not ctx.cache.has(job):
            todo[job.key] = job
    order = sorted(todo.values(), key=lambda j: -j.cost)
    if not order:
        return []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(order), desc="results", unit="job")
    done = []
    if workers <= 1 or len(order) == 1:
        for job in order:
            if bar is not None:
                bar.set_postfix_str(job.label or job.kind)
            ctx.cache.compute(job, fresh=ctx.force)
            done.append(job.key)
            if bar is not None:
                bar.update(1)
    else:
        with ProcessPoolExecutor(max_workers=min(workers, len(order)),
                                 mp_context=mp.get_context("spawn"),
                                 initializer=_init_worker) as pool:
            futures = [pool.submit(_compute, ctx.cache.root, job, ctx.force) for job in order]
            for fut in as_completed(futures):
                key, _ = fut.result()
                done.append(key)
                if bar is not None:
                    bar.update(1)
    if bar is not None:
        bar.close()
    ctx.computed.update(done)
    return done


def output_folder(out: str | os.PathLike | None, quick: bool) -> str:
    """The folder a build writes to: ``out``, else :data:`QUICK_OUT` for a quick build and
    :data:`DEFAULT_OUT` for the full one.

    Raises
    ------
    ValueError
        A quick build asked to write into :data:`DEFAULT_OUT`, where its reduced figures
        and text would replace the full build's.
    """
    if out is None:
        return QUICK_OUT if quick else DEFAULT_OUT
    out = os.fspath(out)
    if quick and os.path.realpath(out) == os.path.realpath(DEFAULT_OUT):
        raise ValueError(f"--out: a quick build never writes into {DEFAULT_OUT}, the full "
                         "build's folder; leave --out out (quick builds go to paper/quick) "
                         "or name another folder")
    return out


def build(modules: list[ModuleType], *, quick: bool = False, out: str | None = None,
          cache_dir: str | None = None, force: bool = False, workers: int = 1,
          progress: bool = True, write_text: bool = True, show_text: bool = False) -> dict:
    """Build the figures of ``modules`` (and ``paper.md`` when ``write_text``) into
    ``out`` (default and refusals: :func:`output_folder`).

    With ``show_text`` the caption and text of each figure are printed as they are drawn,
    so that a figure built alone (``--only``, which leaves ``paper.md`` as it is) can be
    read.

    Returns the build record written to ``build.json``: mode, wall time, results
    computed, and per figure its file and seconds.
    """
    t0 = time.perf_counter()
    out = output_folder(out, quick)
    cache = Cache(cache_dir if cache_dir is not None else os.path.join(out, "cache"))
    ctx = Context(quick=quick, cache=cache, out=out, force=force)
    jobs = [job for m in modules for job in m.jobs(quick)]
    computed = compute_missing(jobs, ctx, workers=workers, progress=progress)
    t_jobs = time.perf_counter() - t0
    sections, record = [], {}
    for m in modules:
        t1 = time.perf_counter()
        section = m.make(ctx)
        sections.append((m, section))
        if show_text:
            print(f"\n## Figure {m.NUMBER}. {m.TITLE}\n\n**Figure {m.NUMBER}.** "
                  f"{section.caption.strip()}\n\n{section.text.strip()}\n", flush=True)
        record[m.NAME] = {"number": m.NUMBER, "file": section.file,
                          "draw_s": round(time.perf_counter() - t1, 2)}
    results_s = 0.0
    for job in {j.key: j for j in jobs}.values():
        results_s += float(cache.load(job)[SECONDS] or 0.0)
    info = {"mode": "quick" if quick else "full", "workers": workers,
            "cpus": os.cpu_count(), "machine": platform.machine(),
            "results": len({j.key for j in jobs}), "computed": len(computed),
            "from_scratch": len(computed) == len({j.key for j in jobs}),
            "results_s": round(results_s, 1), "compute_wall_s": round(t_jobs, 1),
            "wall_s": round(time.perf_counter() - t0, 1), "figures": record}
    if write_text:
        from paper.writer import write_paper

        write_paper(out, sections, info)
    return info


def load_modules(names: list[str] | None = None) -> list[ModuleType]:
    """The figure modules (all of them, or those named by ``NAME`` or number)."""
    from paper.make import FIGURE_MODULES

    modules = [importlib.import_module(f"paper.make.{m}") for m in FIGURE_MODULES]
    if not names:
        return modules
    by_key = {}
    for m in modules:
        for key in (m.NAME, str(m.NUMBER), f"{m.NUMBER:02d}", f"fig{m.NUMBER:02d}"):
            by_key[key] = m
    chosen = []
    for n in names:
        if n not in by_key:
            accepted = ", ".join(f"{m.NUMBER} ({m.NAME})" for m in modules)
            raise ValueError(f"unknown figure {n!r}; accepted: {accepted}")
        if by_key[n] not in chosen:
            chosen.append(by_key[n])
    return sorted(chosen, key=lambda m: m.NUMBER)

