"""The paper's frame: every reference carries a well-formed arXiv id and is written out."""

from __future__ import annotations

import re

from paper.writer import REFERENCES, write_paper


def test_references_are_written_with_their_ids(tmp_path):
    ids = [arxiv for _, _, arxiv in REFERENCES]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"\d{4}\.\d{4,5}", i) for i in ids), ids
    info = {"mode": "quick", "cpus": 1, "workers": 1, "from_scratch": True, "results": 0,
            "computed": 0, "wall_s": 0.0, "results_s": 0.0}
    text = open(write_paper(str(tmp_path), [], info)).read()
    refs = text.split("## References", 1)[1]
    for k, i in enumerate(ids, 1):
        assert f"\n{k}. " in refs and f"arXiv {i}." in refs


def test_related_work_cites_only_listed_papers_and_names_figures_by_module(tmp_path):
    from paper.build import load_modules
    from paper.writer import RELATED_WORK, related_work

    listed = {arxiv for _, _, arxiv in REFERENCES}
    cited = set(re.findall(r"\d{4}\.\d{4,5}", RELATED_WORK))
    assert cited and cited <= listed, cited - listed
    names = set(re.findall(r"\{([a-z0-9-]+)\}", RELATED_WORK))
    modules = {m.NAME: m.NUMBER for m in load_modules()}
    assert names <= set(modules), names - set(modules)
    text = related_work()
    assert "{" not in text and "}" not in text
    for name in names:
        assert f"Figure {modules[name]}" in text, name
    info = {"mode": "quick", "cpus": 1, "workers": 1, "from_scratch": True, "results": 0,
            "computed": 0, "wall_s": 0.0, "results_s": 0.0}
    assert "## Related work\n\n" + text in open(write_paper(str(tmp_path), [], info)).read()
