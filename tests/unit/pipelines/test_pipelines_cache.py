from __future__ import annotations

import shutil
from pathlib import Path

import pipelines_flows as flows
import pytest

from noria.pipelines import LocalArtifactStore, Pipeline, StepFailedError, run_pipeline, step


def run(pipeline: Pipeline, store: LocalArtifactStore, **kw: object) -> dict[str, str]:
    result = run_pipeline(pipeline, store, progress=False, **kw)  # type: ignore[arg-type]
    return {name: r.status for name, r in result.steps.items()}


def test_second_run_skips_every_step(store: LocalArtifactStore, counter: Path) -> None:
    first = run_pipeline(flows.numbers, store, progress=False)
    assert first.count("ran") == 5
    again = run_pipeline(flows.numbers, store, progress=False)
    assert again.count("cached") == 5 and again.run_id != first.run_id
    assert flows.counts(counter) == dict.fromkeys(["source", "scaled", "totals", "size", "report"], 1)
    assert (
        again.load("report")
        == first.load("report")
        == "report: 100 rows, totals {'0': 3366.0, '1': 3234.0, '2': 3300.0}"
    )


def test_one_parameter_reruns_only_downstream(store: LocalArtifactStore, counter: Path) -> None:
    run(flows.numbers, store)
    statuses = run(flows.numbers, store, params={"factor": 3.0})
    assert statuses == {"source": "cached", "scaled": "ran", "totals": "ran", "size": "cached", "report": "ran"}
    assert flows.counts(counter) == {"source": 1, "scaled": 2, "totals": 2, "size": 1, "report": 2}
    # A parameter only the last step reads reruns only that step.
    assert run(flows.numbers, store, params={"factor": 3.0, "title": "t"})["report"] == "ran"
    assert flows.counts(counter)["scaled"] == 2 and flows.counts(counter)["report"] == 3
    # Going back to the first values is fully cached.
    assert set(run(flows.numbers, store).values()) == {"cached"}


def test_identical_output_keeps_downstream_cached(store: LocalArtifactStore, counter: Path) -> None:
    @step
    def clipped(rows: int) -> dict[str, int]:
        return {"rows": min(rows, 10)}

    @step
    def after(clipped: dict[str, int]) -> int:
        flows.tick("after")
        return clipped["rows"]

    p = Pipeline("clip", [clipped, after], params={"rows": 20})
    run(p, store)
    # clipped reruns (new parameter) but produces the same bytes: `after` keys on content, not on params.
    assert run(p, store, params={"rows": 30}) == {"clipped": "ran", "after": "cached"}
    assert flows.counts(counter) == {"after": 1}


def _versions() -> tuple[Pipeline, Pipeline, Pipeline]:
    def v1() -> Pipeline:
        @step
        def value(n: int) -> int:
            return n + 1

        return Pipeline("code", [value], params={"n": 1})

    def v1_reformatted() -> Pipeline:
        @step(name="value")  # decorator, comments and blank lines do not count
        def value(n: int) -> int:
            # the same code

            return n + 1

        return Pipeline("code", [value], params={"n": 1})

    def v2() -> Pipeline:
        @step
        def value(n: int) -> int:
            return n + 2

        return Pipeline("code", [value], params={"n": 1})

    return v1(), v1_reformatted(), v2()


def test_code_change_invalidates_only_real_changes(store: LocalArtifactStore) -> None:
    v1, v1_reformatted, v2 = _versions()
    assert run(v1, store) == {"value": "ran"}
    assert run(v1_reformatted, store) == {"value": "cached"}
    changed = run_pipeline(v2, store, progress=False)
    assert changed.steps["value"].status == "ran" and changed.load("value") == 3


def test_version_bump_and_uncached_steps(store: LocalArtifactStore, counter: Path) -> None:
    def build(version: str) -> Pipeline:
        @step(version=version)
        def base(n: int) -> int:
            flows.tick("base")
            return n

        @step(cache=False, outputs=())
        def publish(base: int) -> None:
            flows.tick("publish")

        return Pipeline("ver", [base, publish], params={"n": 1})

    run(build("1"), store)
    assert run(build("1"), store) == {"base": "cached", "publish": "ran"}
    assert run(build("2"), store) == {"base": "ran", "publish": "ran"}
    assert flows.counts(counter) == {"base": 2, "publish": 3}


def test_no_cache_reruns_but_same_run_id_resumes(store: LocalArtifactStore, counter: Path) -> None:
    first = run_pipeline(flows.numbers, store, progress=False)
    assert set(run(flows.numbers, store, use_cache=False).values()) == {"ran"}
    assert set(run(flows.numbers, store, use_cache=False, run_id=first.run_id).values()) == {"resumed"}
    assert flows.counts(counter)["source"] == 2


def test_missing_artifact_means_rerun(store: LocalArtifactStore, counter: Path) -> None:
    result = run_pipeline(flows.numbers, store, progress=False)
    shutil.rmtree(store.get(result.artifact_id("scaled")))
    statuses = run(flows.numbers, store)
    assert statuses["scaled"] == "ran" and statuses["source"] == "cached"
    assert statuses["totals"] == "cached"  # scaled came out identical, so totals is still valid


def test_step_failure_is_reported_and_recorded(store: LocalArtifactStore, counter: Path) -> None:
    @step
    def ok(n: int) -> int:
        flows.tick("ok")
        return n

    @step
    def boom(ok: int) -> int:
        raise ZeroDivisionError("no")

    p = Pipeline("fail", [ok, boom], params={"n": 1})
    with pytest.raises(StepFailedError, match="step 'boom' of pipeline 'fail' failed: ZeroDivisionError") as err:
        run_pipeline(p, store, progress=False, run_id="r1")
    assert isinstance(err.value.__cause__, ZeroDivisionError)
    record = store.read_record("runs/fail/r1/run.json")
    assert record is not None and record["status"] == "failed" and list(record["steps"]) == ["ok"]
    assert store.read_record("runs/fail/r1/steps/boom.json") is None
    assert flows.counts(counter) == {"ok": 1}
    assert not list(store.staging.iterdir())  # scratch and staging folders are cleaned up


def test_run_record_lists_keys_and_artifacts(store: LocalArtifactStore) -> None:
    result = run_pipeline(flows.numbers, store, progress=False, run_id="rec")
    record = store.read_record("runs/numbers/rec/run.json")
    assert record is not None and record["status"] == "succeeded" and record["params"] == {"rows": 100, "factor": 2.0}
    for name, step_result in result.steps.items():
        assert record["steps"][name]["cache_key"] == step_result.cache_key
        assert record["steps"][name]["outputs"] == step_result.outputs
        assert store.read_record(f"runs/numbers/rec/steps/{name}.json") is not None


def test_progress_shows_one_line_per_step(store: LocalArtifactStore) -> None:
    from io import StringIO

    from rich.console import Console

    out = StringIO()
    run_pipeline(flows.numbers, store, console=Console(file=out, width=100))
    run_pipeline(flows.numbers, store, console=Console(file=out, width=100))
    text = out.getvalue()
    assert text.count("pipeline numbers - run") == 2
    assert "done" in text and text.count("cached") == 5
