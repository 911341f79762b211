"""The mutation score per module, from the last ``mutmut run`` (``make mutate``).

Reads mutmut's per-file records under ``mutants/`` and writes ``mutation/results.md``: for
each mutated module the counts by outcome and the score, then every mutant that was not
killed, by name (``python -m mutmut show NAME`` prints its diff).

``mutation/equivalent.md`` (the classes of surviving mutants that cannot change behaviour,
read by hand) is appended to the results.

The score is ``killed / (killed + survived + timeout + suspicious)``: the mutants that some
selected test reaches. Mutants that no selected test reaches ("no tests") are counted
apart, not as kills; they are covered, if at all, by tests outside the fast selection of
``setup.cfg`` ``[mutmut]``.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from mutmut.stats import status_by_exit_code

CHECKED = ("killed", "survived", "timeout", "suspicious")
EQUIVALENT = Path(__file__).with_name("equivalent.md")


def module_outcomes(mutants: Path) -> dict[str, dict[str, str]]:
    """``{module path: {mutant name: outcome}}`` from the ``*.py.meta`` files of ``mutants``."""
    out = {}
    for meta in sorted(mutants.rglob("*.py.meta")):
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        if codes:
            module = meta.relative_to(mutants).as_posix().removesuffix(".meta")
            out[module] = {k: status_by_exit_code[v] for k, v in sorted(codes.items())}
    return out


def score(counts: Counter) -> float:
    """Killed over the mutants that some selected test reached."""
    reached = sum(counts[s] for s in CHECKED)
    return counts["killed"] / reached if reached else float("nan")


def render(outcomes: dict[str, dict[str, str]]) -> str:
    """The results file: a table of counts and scores, then the mutants left alive."""
    lines = ["# Mutation testing (mutmut): `make mutate`", "",
             "| module | mutants | killed | survived | suspicious | timeout | no tests "
             "| not run | score |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    total = Counter()
    for module, by_name in outcomes.items():
        counts = Counter(by_name.values())
        total += counts
        lines.append(f"| {module} | {len(by_name)} | {counts['killed']} | "
                     f"{counts['survived']} | {counts['suspicious']} | {counts['timeout']} | "
                     f"{counts['no tests']} | {counts['not checked']} | "
                     f"{score(counts):.1%} |")
    lines.append(f"| all | {sum(total.values())} | {total['killed']} | {total['survived']} | "
                 f"{total['suspicious']} | {total['timeout']} | {total['no tests']} | "
                 f"{total['not checked']} | {score(total):.1%} |")
    lines += ["", "Score: killed / (killed + survived + timeout + suspicious). Suspicious: the",
              "test process ended by a signal (mutmut could not decide); counted as not killed.",
              "Not run: the run was stopped before it reached these mutants; they are not in",
              "the score.", ""]
    for module, by_name in outcomes.items():
        alive = [f"- `{name}`: {status}" for name, status in by_name.items()
                 if status in ("survived", "suspicious", "timeout")]
        if alive:
            lines += [f"## Not killed in {module}", "", *alive, ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mutants", type=Path, default=Path("mutants"),
                        help="mutmut's working folder (default: mutants)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results.md"))
    args = parser.parse_args(argv)
    outcomes = module_outcomes(args.mutants)
    if not outcomes:
        raise SystemExit(f"no mutmut results under {args.mutants}: run `make mutate` first")
    text = render(outcomes)
    if EQUIVALENT.exists():
        text += "\n" + EQUIVALENT.read_text().rstrip("\n")
    args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
