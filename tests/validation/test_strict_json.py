"""Sweep results and the paper's numbers are strict JSON that lose nothing: NaN and
infinities go out as strings and come back as floats; files written before, with the bare
tokens, read as before."""

import json
import math
from types import SimpleNamespace

import numpy as np

from validation.checkpoint import (
    decode_nonfinite,
    json_ready,
    read_json,
    write_strict_json,
)
from validation.sweep import _store, read_result, result_path

RECORD = {"key": "k", "status": "done",
          "measurements": {"plateau_sharpness": math.nan, "onset_step": None,
                           "edge": 6.5, "sharpening_rate": np.float64("nan"),
                           "bound": math.inf, "low": -math.inf},
          "series": {"sharpness": [(0, 2.0), (5, math.nan)], "loss": [1.0, math.inf]},
          "predictions": [{"name": "a.rise", "measured": math.nan, "holds": False,
                           "note": "NaN of a word is kept as text"}]}


def _strict(text: str):
    """``json.loads`` that refuses the non-standard tokens NaN, Infinity, -Infinity."""
    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def test_a_round_trip_gives_back_every_value(tmp_path, same):
    path = tmp_path / "r.json"
    write_strict_json(path, RECORD)
    stored = _strict(path.read_text())
    assert stored["measurements"]["plateau_sharpness"] == "NaN"
    assert stored["measurements"]["bound"] == "Infinity"
    assert stored["measurements"]["low"] == "-Infinity"
    assert stored["series"]["sharpness"] == [[0, 2.0], [5, "NaN"]]
    back = read_json(path)
    expected = json.loads(json.dumps(RECORD))  # tuples as lists, the numpy NaN a float
    assert same(back, expected)
    assert back["measurements"]["onset_step"] is None
    assert math.isnan(back["measurements"]["sharpening_rate"])
    assert back["measurements"]["bound"] == math.inf and back["measurements"]["low"] == -math.inf
    assert same(decode_nonfinite(json_ready(back, strict=True)), back)


def test_a_sweep_result_is_strict_json_and_an_old_one_reads_as_before(tmp_path, same):
    (tmp_path / "results").mkdir()
    (tmp_path / "failed").mkdir()
    records = {}
    _store(str(tmp_path), SimpleNamespace(key="k"), RECORD, records)
    path = result_path(tmp_path, "k")
    with open(path) as fh:
        _strict(fh.read())
    new = read_result(tmp_path, "k")
    assert same(new, json.loads(json.dumps(RECORD)))
    # a file of an earlier version, with the bare tokens NaN and Infinity
    with open(path, "w") as fh:
        json.dump(RECORD, fh)
    assert "NaN" in open(path).read()
    assert same(read_result(tmp_path, "k"), new)


def test_the_papers_numbers_are_strict_json(tmp_path):
    from paper.writer import write_paper

    module = SimpleNamespace(NUMBER=1, NAME="one", TITLE="One")
    section = SimpleNamespace(file="figures/one.png", caption="c", text="t",
                              numbers={"peak": math.nan, "gap": 0.5, "top": math.inf})
    info = {"mode": "quick", "cpus": 1, "workers": 1, "from_scratch": True, "results": 0,
            "wall_s": 1.0, "results_s": 0.0, "computed": 0}
    write_paper(str(tmp_path), [(module, section)], info)
    numbers = _strict((tmp_path / "numbers.json").read_text())
    assert numbers == {"one": {"peak": "NaN", "gap": 0.5, "top": "Infinity"}}
    back = read_json(tmp_path / "numbers.json")["one"]
    assert math.isnan(back["peak"]) and back["gap"] == 0.5 and back["top"] == math.inf
    _strict((tmp_path / "build.json").read_text())
