"""Stability records: one entry per seed set, kept when a rerun reproduces the checked
verdicts (ipkit.evidence.stability)."""

import json

import pytest

from ipkit.evidence import stability
from ipkit.notebook.runtime import publish_folder


def test_record_keeps_one_entry_per_seed_set(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"claims": []}))
    same = stability.Comparison("A", "holds", [0.1, 0.2], "holds", [0.1, 0.3])
    flip = stability.Comparison("A", "holds", [0.1, 0.2], "does not hold", [-0.2, -0.1])
    stability.record(path, [([101, 102], [same]), ([201, 202], [flip])])
    data = json.loads(path.read_text())
    assert [r["seeds"] for r in data["stability"]["runs"]] == [[101, 102], [201, 202]]
    assert [r["flips"] for r in data["stability"]["runs"]] == [0, 1]
    assert data["stability"]["flips"] == 1
    text = stability.stability_markdown(data)
    assert "Rerun with seeds 101, 102" in text
    assert "Rerun with seeds 201, 202" in text
    assert text.count("**yes**") == 1


def _published(folder, verdict, ci):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(
        json.dumps({"study": "tiny", "claims": [{"id": "A", "verdict": verdict, "ci": ci}]})
    )
    return folder


@pytest.mark.parametrize(
    "verdict, ci, kept",
    [("holds", [0.1, 0.2], True), ("holds", [0.1, 0.25], False), ("does not hold", [0.1, 0.2], False)],
)
def test_a_run_that_reproduces_the_checked_verdicts_keeps_the_stability_record(tmp_path, verdict, ci, kept):
    target = _published(tmp_path / "figures" / "tiny" / "default", "holds", [0.1, 0.2])
    same = stability.Comparison("A", "holds", [0.1, 0.2], "holds", [0.1, 0.3])
    stability.record(target / "results.json", [([101], [same])])
    publish_folder(_published(tmp_path / "run", verdict, ci), target)
    assert ("stability" in json.loads((target / "results.json").read_text())) is kept
