"""The local runner and single-step execution, sharing one rule for when a step may be skipped.

A step's **cache key** is the sha256 of its name, normalised code hash, ``version``,
output names, the parameter values it reads and the content ids of its input artifacts.
Before running a step the runner looks, in order, for:

1. this run's own record of the step with the same key (``resumed``: a re-run of the same
   run id, even with ``use_cache=False``);
2. a cache entry for the key whose artifacts all exist (``cached``; skipped if
   ``use_cache=False`` or ``@step(cache=False)``);

and otherwise runs it (``ran``). Inputs are always read back from the store, never
passed in memory, so a step sees exactly what it would see in a fresh process.

Store layout (keys are relative to the store root)::

    objects/<id[:2]>/<id>/                 one artifact (content addressed, immutable)
    cache/<key[:2]>/<key>.json             cache entry: outputs of the step run with that key
    runs/<pipeline>/<run_id>/steps/<step>.json   what a step of a run used and produced
    runs/<pipeline>/<run_id>/run.json      the whole run (local runner only)

Records are written only after every output artifact is stored, each atomically, so a
run killed at any moment (SIGKILL included) leaves nothing that a later run would use
except the steps that had fully finished.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic_core import to_jsonable_python

from noria.errors import NoriaError
from noria.pipelines._errors import ArtifactNotFoundError, PipelineDefinitionError, StepFailedError
from noria.pipelines._graph import Pipeline
from noria.pipelines._progress import StepProgress
from noria.pipelines._serializers import dump_artifact, load_artifact
from noria.pipelines._step import _reset_scratch, _set_scratch
from noria.pipelines._store import ArtifactStore, is_disk_full, store_full_error

if TYPE_CHECKING:
    from rich.console import Console

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+-]{0,127}")
CACHE_FORMAT = 1
Status = Literal["ran", "cached", "resumed"]


@dataclass
class StepResult:
    """What one step of a run did and which artifacts (output name -> content id) it produced."""

    name: str
    status: Status
    cache_key: str
    outputs: dict[str, str]
    seconds: float = 0.0


@dataclass
class RunResult:
    """The outcome of a run; ``load("model")`` reads an output back from the store."""

    pipeline: str
    run_id: str
    params: dict[str, Any]
    store: ArtifactStore = field(repr=False)
    steps: dict[str, StepResult] = field(default_factory=dict)
    seconds: float = 0.0

    def artifact_id(self, output: str) -> str:
        for result in self.steps.values():
            if output in result.outputs:
                return result.outputs[output]
        known = sorted(o for r in self.steps.values() for o in r.outputs)
        raise ArtifactNotFoundError(
            f"run {self.run_id} of {self.pipeline!r} produced no output {output!r}",
            fix=f"use one of: {', '.join(known) or '(none)'}",
        )

    def load(self, output: str) -> Any:
        return load_artifact(self.store.get(self.artifact_id(output)))

    def count(self, status: Status) -> int:
        return sum(1 for r in self.steps.values() if r.status == status)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "run_id": self.run_id,
            "params": to_jsonable_python(self.params),
            "store": self.store.url,
            "seconds": round(self.seconds, 4),
            "steps": {name: asdict(r) for name, r in self.steps.items()},
        }


def new_run_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"


def check_run_id(run_id: str) -> str:
    if not RUN_ID.fullmatch(run_id) or ".." in run_id:
        raise PipelineDefinitionError(
            f"run id {run_id!r} is not valid",
            fix="use letters, digits and . _ : + - (at most 128, no '..'), e.g. an Airflow run id",
        )
    return run_id


def _step_key(pipeline: str, run_id: str, step: str) -> str:
    return f"runs/{pipeline}/{run_id}/steps/{step}.json"


def _cache_entry_key(key: str) -> str:
    return f"cache/{key[:2]}/{key}.json"


class _Executor:
    """Runs steps of one pipeline run against one store (shared by both entry points)."""

    def __init__(
        self, pipeline: Pipeline, store: ArtifactStore, run_id: str, params: dict[str, Any], use_cache: bool
    ) -> None:
        self.pipeline, self.store, self.run_id = pipeline, store, check_run_id(run_id)
        self.params, self.use_cache = params, use_cache

    def cache_key(self, name: str, inputs: Mapping[str, str]) -> str:
        s = self.pipeline.steps[name]
        payload = {
            "format": CACHE_FORMAT,
            "step": name,
            "code": s.code_hash,
            "version": s.version,
            "outputs": list(s.outputs),
            "params": to_jsonable_python(self.pipeline.step_params(name, self.params)),
            "inputs": dict(inputs),
        }
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _usable(self, record: dict[str, Any] | None, key: str) -> dict[str, str] | None:
        if record is None or record.get("cache_key") != key:
            return None
        outputs: dict[str, str] = record["outputs"]
        return outputs if all(self.store.exists(a) for a in outputs.values()) else None

    def reusable(self, name: str, key: str, *, use_cache: bool) -> tuple[Status, dict[str, str]] | None:
        """Outputs a finished run of this step left for ``key``, and how they were found."""
        own = self._usable(self.store.read_record(_step_key(self.pipeline.name, self.run_id, name)), key)
        if own is not None:
            return "resumed", own
        if use_cache and self.pipeline.steps[name].cache:
            cached = self._usable(self.store.read_record(_cache_entry_key(key)), key)
            if cached is not None:
                return "cached", cached
        return None

    def run(self, name: str, inputs: Mapping[str, str], progress: StepProgress) -> StepResult:
        key = self.cache_key(name, inputs)
        found = self.reusable(name, key, use_cache=self.use_cache)
        if found is not None:
            status, outputs = found
            result = StepResult(name, status, key, outputs)
            if status == "cached":
                self._record(result, cache_entry=False)
            progress.finished(name, status, 0.0)
            return result
        progress.running(name)
        start = time.perf_counter()
        try:
            outputs = self._execute(name, inputs)
        except BaseException:
            progress.finished(name, "failed", time.perf_counter() - start)
            raise
        result = StepResult(name, "ran", key, outputs, time.perf_counter() - start)
        self._record(result, cache_entry=self.pipeline.steps[name].cache)
        progress.finished(name, "ran", result.seconds)
        return result

    def _execute(self, name: str, inputs: Mapping[str, str]) -> dict[str, str]:
        s = self.pipeline.steps[name]
        kwargs = {param: load_artifact(self.store.get(aid)) for param, aid in inputs.items()}
        kwargs.update(self.pipeline.step_params(name, self.params))
        scratch = Path(tempfile.mkdtemp(prefix=f"{name}-scratch-", dir=self.store.staging))
        token = _set_scratch(scratch, self.run_id)
        try:
            try:
                value = s.func(**kwargs)
            except NoriaError:
                raise
            except Exception as exc:
                raise StepFailedError(
                    f"step {name!r} of pipeline {self.pipeline.name!r} failed: {type(exc).__name__}: {exc}",
                    fix="fix the step and run again; finished steps are reused",
                ) from exc
            finally:
                _reset_scratch(token)
            produced: dict[str, str] = {}
            for out, item in s.split_outputs(value).items():
                folder = Path(tempfile.mkdtemp(prefix=f"{out}-", dir=self.store.staging))
                try:
                    dump_artifact(item, folder)
                    produced[out] = self.store.put(folder)
                finally:
                    shutil.rmtree(folder, ignore_errors=True)
            return produced
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _record(self, result: StepResult, *, cache_entry: bool) -> None:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        record = asdict(result) | {"pipeline": self.pipeline.name, "run_id": self.run_id, "finished_at": now}
        if cache_entry:
            self.store.write_record(_cache_entry_key(result.cache_key), record)
        self.store.write_record(_step_key(self.pipeline.name, self.run_id, result.name), record)

    def locate(self, name: str, seen: dict[str, dict[str, str] | None]) -> dict[str, str] | None:
        """Outputs of ``name`` for this run without running anything: its run record, else the cache."""
        if name not in seen:
            inputs: dict[str, str] = {}
            for param, up in self.pipeline.nodes[name].inputs.items():
                outs = self.locate(up, seen)
                if outs is None:
                    seen[name] = None
                    return None
                inputs[param] = outs[param]
            # Upstream outputs may come from the cache even under use_cache=False: that flag
            # is about re-running the requested step, not about where its inputs come from.
            found = self.reusable(name, self.cache_key(name, inputs), use_cache=True)
            seen[name] = found[1] if found else None
        return seen[name]


def run_pipeline(
    pipeline: Pipeline,
    store: ArtifactStore,
    *,
    params: Mapping[str, Any] | None = None,
    run_id: str | None = None,
    use_cache: bool = True,
    progress: bool = True,
    console: Console | None = None,
) -> RunResult:
    """Run every step in order in this process, skipping those whose cache key is unchanged.

    Re-running with the same ``run_id`` resumes it (its finished steps are reused even
    with ``use_cache=False``). Raises :class:`StepFailedError` when a step's code raises.
    """
    values = pipeline.resolve_params(params)
    ex = _Executor(pipeline, store, run_id or new_run_id(), values, use_cache)
    result = RunResult(pipeline.name, ex.run_id, values, store)
    run_key = f"runs/{pipeline.name}/{ex.run_id}/run.json"
    started = datetime.now(UTC).isoformat(timespec="seconds")
    clock = time.perf_counter()

    def save(status: str) -> None:
        result.seconds = time.perf_counter() - clock
        steps = {name: asdict(r) for name, r in result.steps.items()}
        record = {"pipeline": pipeline.name, "run_id": ex.run_id, "params": to_jsonable_python(values)}
        store.write_record(run_key, record | {"status": status, "started_at": started, "steps": steps})

    try:
        save("running")
        artifacts: dict[str, str] = {}
        title = f"pipeline {pipeline.name} - run {ex.run_id}"
        with StepProgress(title, pipeline.order, enabled=progress, console=console) as bar:
            for name in pipeline.order:
                inputs = {param: artifacts[param] for param in pipeline.nodes[name].inputs}
                try:
                    step_result = ex.run(name, inputs, bar)
                except BaseException:
                    # The store may be what failed (S3 gone, disk full): the step's own error says
                    # what broke first.
                    with contextlib.suppress(NoriaError, OSError):
                        save("failed")
                    raise
                result.steps[name] = step_result
                artifacts.update(step_result.outputs)
                if step_result.status == "ran":  # reused steps are already on record: spare the fsync
                    save("running")
        save("succeeded")
    except Exception as exc:
        if is_disk_full(exc):  # whichever write met the full disk: a step's, an artifact's, a record's
            raise store_full_error(store.url, exc) from exc
        raise
    return result


def run_step(
    pipeline: Pipeline,
    step_name: str,
    store: ArtifactStore,
    *,
    run_id: str,
    params: Mapping[str, Any] | None = None,
    use_cache: bool = True,
) -> StepResult:
    """Run one step alone: inputs come from the store, outputs go to it (the orchestrator contract).

    Each input is found through the upstream step's record for ``run_id``, or else through
    the cache (same code, parameters and inputs). Raises :class:`ArtifactNotFoundError`
    naming the upstream step to run first when neither has it.
    """
    if step_name not in pipeline.steps:
        raise PipelineDefinitionError(
            f"pipeline {pipeline.name!r} has no step {step_name!r}",
            fix=f"use one of: {', '.join(pipeline.order)}",
        )
    ex = _Executor(pipeline, store, run_id, pipeline.resolve_params(params), use_cache)
    seen: dict[str, dict[str, str] | None] = {}
    inputs: dict[str, str] = {}
    for param, up in pipeline.nodes[step_name].inputs.items():
        outs = ex.locate(up, seen)
        if outs is None:
            raise ArtifactNotFoundError(
                f"step {step_name!r} needs {param!r} from step {up!r}, which has not finished for run "
                f"{run_id!r} of pipeline {pipeline.name!r} (nor is it cached for these parameters)",
                fix=f"run `noria pipeline run {pipeline.name} --step {up} --run-id {run_id}` first",
            )
        inputs[param] = outs[param]
    return ex.run(step_name, inputs, StepProgress("", [], enabled=False))
