"""``python -m paper``: every figure and the paper text from one command.

Examples
--------
``python -m paper``                       every figure into ``paper/figures`` and ``paper/paper.md``
``python -m paper --quick``               the reduced form (CI), into ``paper/quick``
``python -m paper --only 7 catapult``     redraw two figures (``paper.md`` is left as it is)
``python -m paper --force``               recompute the results even when cached
``python -m paper --only 5 --text``       redraw figure 5 and print its caption and text
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from validation.cli import OneLineParser


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    p = OneLineParser(prog="python -m paper",
                      description="Rebuild every figure of the paper and paper.md, from cached "
                                  "results named after their configuration when present.")
    p.add_argument("--quick", action="store_true",
                   help="reduced form: tiny networks and few steps (for CI)")
    p.add_argument("--only", nargs="+", metavar="NAME",
                   help="build only these figures (by name or number); paper.md is then "
                        "not rewritten")
    p.add_argument("--force", action="store_true",
                   help="recompute the results of the chosen figures even when cached")
    p.add_argument("--out", default=None,
                   help="folder of paper.md; figures go to OUT/figures (default: the paper/ "
                        "folder of the checkout; with --quick its git-ignored paper/quick, "
                        "and never paper/ itself)")
    p.add_argument("--cache", default=None,
                   help="folder of cached results (default: OUT/cache)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="processes computing results in parallel (default: %(default)s, the "
                        "number of CPUs)")
    p.add_argument("--text", action="store_true",
                   help="print the caption and text of each figure built (useful with "
                        "--only, which does not rewrite paper.md)")
    p.add_argument("--list", action="store_true", help="list the figures and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    from paper.build import build, load_modules, output_folder

    try:
        args.out = output_folder(args.out, args.quick)
        modules = load_modules(args.only)
        if args.jobs < 1:
            raise ValueError(f"--jobs must be >= 1; got {args.jobs}")
    except ValueError as exc:
        parser.error(str(exc))
    if args.list:
        for m in load_modules(None):
            print(f"{m.NUMBER:2d}  {m.NAME:<16s} {m.TITLE}")
        return 0
    t0 = time.perf_counter()
    info = build(modules, quick=args.quick, out=args.out, cache_dir=args.cache,
                 force=args.force, workers=args.jobs, progress=not args.no_progress,
                 write_text=not args.only, show_text=args.text)
    for name, fig in info["figures"].items():
        print(f"figure {fig['number']:2d} {name:<16s} {os.path.join(args.out, fig['file'])}")
    if args.only:
        print("paper.md not rewritten (--only)")
    else:
        print(f"paper: {os.path.join(args.out, 'paper.md')}")
    print(f"{info['computed']} of {info['results']} results computed; wall time "
          f"{time.perf_counter() - t0:.1f} s ({info['mode']} mode)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
