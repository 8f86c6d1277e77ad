"""Cross-site evaluation through the real TaskBoard: the full matrix and its JSON file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from workflow_harness import Federation, site_number

from fedra.core import FLModel, SiteError, Snapshot, WorkflowError
from fedra.workflows import CrossSiteEval

SITES = ["site-1", "site-2", "site-3"]
GLOBAL_VALUE = 0.5


def _submit_model(site: str, model: FLModel) -> FLModel:
    """Each site's local model: every entry equals its site number."""
    return FLModel(params={"w": np.full(4, float(site_number(site)))})


def _validate(site: str, model: FLModel) -> FLModel:
    assert model.params is not None
    return FLModel(
        metrics={
            "score": 10 * site_number(site) + float(np.mean(model.params["w"])),
            "owner": model.meta["model_owner"],
        }
    )


def _expected_row(owner_value: float, owner: str) -> dict[str, dict[str, object]]:
    return {
        evaluator: {"score": 10 * site_number(evaluator) + owner_value, "owner": owner}
        for evaluator in SITES
    }


def _federation(root: Path) -> Federation:
    return Federation(SITES, {"submit_model": _submit_model, "validate": _validate}, root)


def _global() -> FLModel:
    return FLModel(params={"w": np.full(4, GLOBAL_VALUE)})


def test_full_matrix(tmp_path: Path) -> None:
    fed = _federation(tmp_path)
    workflow = CrossSiteEval()
    workflow.run(fed.context(initial=_global()))

    expected = {"global": _expected_row(GLOBAL_VALUE, "global")}
    for owner in SITES:
        expected[owner] = _expected_row(float(site_number(owner)), owner)
    assert workflow.matrix == expected

    saved = json.loads((tmp_path / "cross_site_eval.json").read_text())
    assert saved == {"matrix": expected, "sites": SITES}


def test_local_models_fetched_one_at_a_time(tmp_path: Path) -> None:
    fed = _federation(tmp_path)
    CrossSiteEval().run(fed.context(initial=_global()))
    names = [(t.name, t.site) for t in fed.delivered]
    expected = [("validate", s) for s in SITES]
    for owner in SITES:
        expected += [("submit_model", owner)] + [("validate", s) for s in SITES]
    assert names == expected


def test_global_only_and_local_only(tmp_path: Path) -> None:
    fed = _federation(tmp_path / "g")
    only_global = CrossSiteEval(evaluate_local=False)
    only_global.run(fed.context(initial=_global()))
    assert list(only_global.matrix) == ["global"]

    fed = _federation(tmp_path / "l")
    only_local = CrossSiteEval(evaluate_global=False)
    only_local.run(fed.context(initial=_global()))
    assert list(only_local.matrix) == SITES

    fed = _federation(tmp_path / "none")
    no_global_model = CrossSiteEval()
    no_global_model.run(fed.context())
    assert list(no_global_model.matrix) == SITES


def test_snapshots_are_taken_per_row_and_do_not_change(tmp_path: Path) -> None:
    fed = _federation(tmp_path)
    CrossSiteEval().run(fed.context(initial=_global()))
    rows = [list(s.state["matrix"]) for s in fed.snapshots]
    assert rows == [
        ["global"],
        ["global", "site-1"],
        ["global", "site-1", "site-2"],
        ["global", "site-1", "site-2", "site-3"],
    ]


def test_restore_skips_finished_rows(tmp_path: Path) -> None:
    first = _federation(tmp_path)
    full = CrossSiteEval()
    full.run(first.context(initial=_global()))
    after_two_rows = first.snapshots[1]

    second = _federation(tmp_path)
    workflow = CrossSiteEval()
    workflow.restore(after_two_rows)
    workflow.run(second.context(initial=_global()))
    assert [t.site for t in second.delivered if t.name == "submit_model"] == ["site-2", "site-3"]
    assert workflow.matrix == full.matrix


def test_site_error_while_validating(tmp_path: Path) -> None:
    def validate(site: str, model: FLModel) -> FLModel:
        if site == "site-3" and model.meta["model_owner"] == "site-1":
            raise ValueError("corrupt data shard")
        return _validate(site, model)

    fed = Federation(SITES, {"submit_model": _submit_model, "validate": validate}, tmp_path)
    with pytest.raises(SiteError) as info:
        CrossSiteEval().run(fed.context(initial=_global()))
    assert info.value.site == "site-3"
    assert info.value.task == "validate"


def test_site_without_a_model(tmp_path: Path) -> None:
    fed = Federation(
        SITES, {"submit_model": lambda site, model: FLModel(), "validate": _validate}, tmp_path
    )
    with pytest.raises(WorkflowError, match="site-1"):
        CrossSiteEval().run(fed.context(initial=_global()))


def test_restore_refuses_another_workflows_snapshot() -> None:
    with pytest.raises(WorkflowError):
        CrossSiteEval().restore(Snapshot("FedAvg", {}, {}))


@pytest.mark.parametrize(
    ("matrix", "match"),
    [
        ([], "'matrix' must be an object"),
        ({"global": ["site-1"]}, "row 'global' is not an object"),
        ({"global": {"site-1": 0.5}}, "metrics of 'global' on 'site-1' are not an object"),
        ({"global": {"site-1": {"accuracy": None}}}, "metric 'accuracy' of 'global'"),
    ],
)
def test_restore_refuses_a_damaged_matrix(matrix: object, match: str) -> None:
    with pytest.raises(WorkflowError, match=match):
        CrossSiteEval().restore(Snapshot("CrossSiteEval", {"matrix": matrix}, {}))


def test_restore_copies_the_matrix() -> None:
    saved = {"global": {"site-1": {"accuracy": 0.5, "note": "ok"}}}
    workflow = CrossSiteEval()
    workflow.restore(Snapshot("CrossSiteEval", {"matrix": saved}, {}))
    saved["global"]["site-1"]["accuracy"] = 0.0
    assert workflow.matrix == {"global": {"site-1": {"accuracy": 0.5, "note": "ok"}}}
