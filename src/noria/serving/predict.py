"""``POST /predict``: validate, route (A/B), look up features, score, explain, log, answer.

The hot path avoids pandas and per-request allocation beyond a few small lists: the body is
validated from bytes by pydantic's Rust parser, the model row is built in the model's fixed
feature order, one LightGBM call gives the SHAP contributions (whose sum is the raw score, so
no second predict is needed), and the response is written by orjson. Logging is a queue put
of one small record. The online lookup is the one wait: concurrent requests share one store
read (:mod:`noria.serving.coalesce`), and their rows are scored together right after it
(:meth:`Predictor.score_batch`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson
from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from noria.errors import NoriaError
from noria.serving.ab_assignment import CHALLENGER, CHAMPION, Arm, Router
from noria.serving.coalesce import IN_PROCESS_STORES, LookupBatcher, cut
from noria.serving.config import ServingConfig
from noria.serving.errors import ServingHTTPError
from noria.serving.loader import ModelHolder
from noria.serving.metrics import ServingMetrics
from noria.serving.model import Scored, ServedModel
from noria.serving.predlog import PredictionLog, ScoredRow
from noria.serving.requests import RequestSchema
from noria.serving.sources import FeatureSource, LookedUp
from noria.tasks import Task

logger = logging.getLogger("noria.serving")


@dataclass
class Outcome:
    """What a /predict call produced: the response body and the work left for after the response."""

    body: bytes
    shadow: list[int]  # rows to score with the challenger after answering
    requests: list[Any]
    looked_up: LookedUp | None


def _subset(looked: LookedUp | None, rows: list[int], n: int) -> LookedUp | None:
    if looked is None or len(rows) == n:
        return looked
    return LookedUp({k: v[rows] for k, v in looked.values.items()}, [looked.missing[i] for i in rows])


@dataclass
class _Job:
    """One request's part of a shared read: what scoring its rows needs."""

    requests: Sequence[Any]
    models: list[ServedModel]
    arms: list[Arm]
    explain: bool
    started: float  # when it asked for its features (perf_counter)


Results = list[tuple[Scored, ServedModel, Arm]]


@dataclass
class _Scored:
    """A job's rows scored after the read it shared: results, its features, what it waited for."""

    results: Results
    looked: LookedUp | None  # its rows of the read (kept only when a shadow model will need them)
    lookup_s: float  # its wait for the read and the read
    model_s: float  # the scoring of the rows it was scored with (its batch's)


@dataclass
class _Failed:
    """Scoring a job's rows failed: raised in its own request, not taken for a store failure."""

    error: Exception


STORE_FAILURE_LOG_SECONDS = 10.0  # at most one traceback of a failing online store per this many seconds


class _FailureLog:
    """Online store failures in the service log without a flood: concurrent requests share one read,
    so one store failure fails them all with the same exception, and a store that is down fails
    every request. One traceback per ``every`` seconds; the failures in between are counted in it.
    """

    def __init__(self, every: float) -> None:
        self.every = every
        self._last_at = -float("inf")
        self._last_error: BaseException | None = None  # held, not its id: an id can be reused
        self._quiet = 0

    def report(self, exc: BaseException) -> None:
        if exc is self._last_error:  # another request of the same failed read
            self._quiet += 1
            return
        self._last_error = exc
        now = time.monotonic()
        if now - self._last_at < self.every:
            self._quiet += 1
            return
        since = f" ({self._quiet} more failed lookups since the last report)" if self._quiet else ""
        self._last_at, self._quiet = now, 0
        logger.error("online feature lookup failed%s", since, exc_info=exc)


class Predictor:
    def __init__(
        self,
        config: ServingConfig,
        adapter: TypeAdapter[Any],
        holder: ModelHolder,
        features: FeatureSource | None,
        metrics: ServingMetrics,
        prediction_log: PredictionLog | None,
        *,
        schema: RequestSchema,
        task: Task,
    ) -> None:
        self.config = config
        self.adapter = adapter
        self.schema = schema
        self.task = task
        self.answer = answer_builder(task)
        self.batch_key = schema.batch_key
        self.holder = holder
        self.features = features
        self.metrics = metrics
        self.log = prediction_log
        self.router = Router(config.ab, {wire: attr for attr, wire in schema.fields})
        self.threshold = config.decision_threshold
        self.explain_default = config.explanations.enabled and config.explanations.top > 0
        self.batcher: LookupBatcher | None = None
        self._failures = _FailureLog(STORE_FAILURE_LOG_SECONDS)
        if features is not None:
            in_process = getattr(features, "kind", "") in IN_PROCESS_STORES
            # The request mapping runs in the batcher: once for the requests that share a read.
            self.batcher = LookupBatcher(
                features, worker_thread=not in_process, prepare=schema.rows, finish=self.score_batch
            )

    def close(self) -> None:
        """Stop the lookup worker thread (the app's shutdown)."""
        if self.batcher is not None:
            self.batcher.close()

    def parse(self, body: bytes) -> list[Any]:
        parsed = self.adapter.validate_json(body)  # raises pydantic's ValidationError
        return self.schema.split(parsed)

    def _needs_lookup(self, requests: Sequence[Any], models: Sequence[ServedModel]) -> bool:
        """Whether to ask the online store: not when every request brings all its model's features inline."""
        if self.batcher is None:
            return False
        for request, model in zip(requests, models, strict=True):
            given = request.features
            if not given or not model.inputs_set <= given.keys():
                return True
        return False

    async def _lookup(self, job: _Job) -> _Scored:
        """Features from the online store, read together with concurrent requests' (one read for
        all), and the job's rows scored with theirs (:meth:`score_batch`)."""
        assert self.batcher is not None
        try:
            done = await self.batcher.lookup(job.requests, job)
        except NoriaError:
            raise
        except Exception as exc:  # the store is down or broken: say so, do not guess features
            self._failures.report(exc)
            raise ServingHTTPError(
                503,
                f"the online feature store failed: {type(exc).__name__}: {str(exc)[:200]}",
                fix="check the online store (noria features materialize), or send every feature inline",
            ) from exc
        if isinstance(done, _Failed):  # the rows were read but could not be scored: this request's error
            raise done.error
        self.metrics.lookup.observe(done.lookup_s)
        return cast(_Scored, done)

    def score_batch(self, jobs: Sequence[_Job], looked: LookedUp, parts: Sequence[slice]) -> list[_Scored | _Failed]:
        """Score the rows of the requests that shared one read, right after it (on the event loop).

        Scored together, the model's trees are walked for every row while they are in the CPU's
        caches; scored one request at a time, with HTTP parsing and other requests' work in
        between, LightGBM's leaf call cost 4-5x more than in a tight loop (measured). Every row
        of the batch is encoded and scored in one call when all use one model and one
        explanation setting (no A/B split); otherwise, or when that call fails (a request's
        inline features are refused), each request is scored on its own, so only the culprit
        fails.
        """
        read_at = time.perf_counter()
        shadow = self.config.ab.shadow and self.holder.challenger is not None
        first = jobs[0]
        model = first.models[0]
        together = len(jobs) > 1 and all(
            job.explain == first.explain and all(m is model for m in job.models) for job in jobs
        )
        if together:
            inline: list[Any] = []
            where: list[str] = []
            for job in jobs:
                inline += [r.features for r in job.requests]
                where += self._where(len(job.requests), range(len(job.requests)))
            try:
                scored = model.score(model.encode(inline, looked, where), self.threshold, first.explain)
            except Exception:  # one request's rows are refused: score each on its own, only it fails
                together = False
        out: list[_Scored | _Failed] = []
        if together:
            model_s = time.perf_counter() - read_at
            for job, rows in zip(jobs, parts, strict=True):
                results = [(s, model, arm) for s, arm in zip(scored[rows], job.arms, strict=True)]
                mine = cut(looked, rows) if shadow else None
                out.append(_Scored(results, mine, read_at - job.started, model_s))
            return out
        for job, rows in zip(jobs, parts, strict=True):
            start = time.perf_counter()
            mine = cut(looked, rows)
            try:
                results = self._score(job.requests, job.models, job.arms, mine, job.explain)
            except Exception as exc:
                out.append(_Failed(exc))
                continue
            out.append(_Scored(results, mine if shadow else None, read_at - job.started, time.perf_counter() - start))
        return out

    def _score(
        self,
        requests: Sequence[Any],
        models: Sequence[ServedModel],
        arms: Sequence[Arm],
        looked: LookedUp | None,
        explain: bool,
    ) -> Results:
        """Every request's score, model and arm, each model's rows scored together."""
        n = len(requests)
        results: list[tuple[Scored, ServedModel, Arm] | None] = [None] * n
        for model in {id(m): m for m in models}.values():
            rows = [i for i in range(n) if models[i] is model]
            encoded = model.encode([requests[i].features for i in rows], _subset(looked, rows, n), self._where(n, rows))
            for i, scored in zip(rows, model.score(encoded, self.threshold, explain), strict=True):
                results[i] = (scored, model, arms[i])
        return cast(Results, results)

    def _where(self, n: int, rows: Sequence[int]) -> list[str]:
        """How errors name the inline features of ``rows`` of a body of ``n`` requests."""
        return ["features"] if n == 1 else [f"{self.batch_key}[{i}].features" for i in rows]

    async def handle(
        self, body: bytes, headers: Mapping[str, str], request_id: str, started: float, explain: bool | None
    ) -> Outcome:
        """Answer one /predict body: awaits only for the online lookup, when one is needed."""
        requests = self.parse(body)
        champion = self.holder.champion
        if champion is None:
            raise ServingHTTPError(503, "no model is loaded yet", fix="wait for /ready, or check the registry alias")
        challenger = self.holder.challenger
        if self.router.active and challenger is not None:
            arms: list[Arm] = [self.router.arm(self.router.key(r, headers)) for r in requests]
        else:
            arms = [CHAMPION] * len(requests)
        models = [challenger if arm == CHALLENGER and challenger is not None else champion for arm in arms]
        explain = self.explain_default if explain is None else explain and self.config.explanations.top > 0
        n = len(requests)
        looked: LookedUp | None = None
        lookup_ms: float | None = None
        if self._needs_lookup(requests, models):
            done = await self._lookup(_Job(requests, models, arms, explain, time.perf_counter()))
            results, looked = done.results, done.looked
            lookup_ms, model_ms = done.lookup_s * 1000.0, done.model_s * 1000.0
        else:
            model_start = time.perf_counter()
            results = self._score(requests, models, arms, None, explain)
            model_ms = (time.perf_counter() - model_start) * 1000.0
        predictions = []
        log_rows: list[ScoredRow] = []
        now = time.time()
        latency_ms = (time.perf_counter() - started) * 1000.0
        threshold = self.threshold if self.task.name == "binary" else None
        answer = self.answer
        for i, (scored, model, arm) in enumerate(results):
            kinds = [r["kind"] for r in scored.ood]
            self.metrics.observe_prediction(model.version, arm, scored.score, kinds)
            predictions.append(answer(scored, model, arm, self.threshold))
            if self.log is not None:
                log_rows.append(
                    ScoredRow(
                        request_id,
                        i,
                        now,
                        model.name,
                        model.version,
                        arm,
                        True,
                        body if n == 1 else requests[i],
                        scored,
                        threshold,
                        model.features,
                        latency_ms,
                        lookup_ms,
                        model_ms,
                    )
                )
        if self.log is not None:
            self.log.write(log_rows)
        if n == 1:
            payload: dict[str, Any] = {"request_id": request_id, **predictions[0]}
        else:
            payload = {"request_id": request_id, "predictions": predictions}
        shadow = [i for i in range(n) if arms[i] == CHAMPION] if self.config.ab.shadow and challenger else []
        return Outcome(orjson.dumps(payload), shadow, requests, looked)

    def shadow(self, outcome: Outcome, request_id: str) -> None:
        """Score the champion's rows with @challenger too and log them (never returned)."""
        challenger = self.holder.challenger
        if challenger is None or not outcome.shadow:
            return
        rows = outcome.shadow
        n = len(outcome.requests)
        encoded = challenger.encode(
            [outcome.requests[i].features for i in rows], _subset(outcome.looked_up, rows, n), None
        )
        now = time.time()
        threshold = self.threshold if self.task.name == "binary" else None
        log_rows: list[ScoredRow] = []
        for i, scored in zip(rows, challenger.score(encoded, self.threshold, False), strict=True):
            self.metrics.observe_prediction(challenger.version, "shadow", scored.score, [])
            log_rows.append(
                ScoredRow(
                    request_id,
                    i,
                    now,
                    challenger.name,
                    challenger.version,
                    "shadow",
                    False,
                    outcome.requests[i],
                    scored,
                    threshold,
                    challenger.features,
                )
            )
        if self.log is not None:
            self.log.write(log_rows)

    def log_failure(self, request_id: str, started: float, status: int, message: str, body: bytes | None) -> None:
        if self.log is None:
            return
        text = None if body is None else body[:4096].decode("utf-8", "replace")
        self.log.write(
            [
                {
                    "request_id": request_id,
                    "row": 0,
                    "timestamp": time.time(),
                    "endpoint": "/predict",
                    "status": status,
                    "served": False,
                    "input": text,
                    "latency_ms": (time.perf_counter() - started) * 1000.0,
                    "error": message,
                }
            ]
        )


AnswerBuilder = Any  # (Scored, ServedModel, arm, threshold) -> the response dict of one prediction


def answer_builder(task: Task) -> AnswerBuilder:
    """The response of one prediction in the task's terms (a closure: the hot path pays no dispatch)."""
    if task.name == "binary":
        field = task.label_name

        def binary(scored: Scored, model: ServedModel, arm: str, threshold: float) -> dict[str, Any]:
            return {
                "probability": round(scored.score, 6),
                field: scored.decision,
                "threshold": threshold,
                "model_name": model.name,
                "model_version": model.version,
                "arm": arm,
                "explanation": scored.explanation,
                "out_of_distribution": {"flag": bool(scored.ood), "reasons": scored.ood},
            }

        return binary
    if task.name == "multiclass":
        classes = task.classes

        def multiclass(scored: Scored, model: ServedModel, arm: str, threshold: float) -> dict[str, Any]:
            probabilities = scored.probabilities or []
            return {
                "class": scored.label,
                "probabilities": {c: round(p, 6) for c, p in zip(classes, probabilities, strict=False)},
                "model_name": model.name,
                "model_version": model.version,
                "arm": arm,
                "explanation": scored.explanation,
                "out_of_distribution": {"flag": bool(scored.ood), "reasons": scored.ood},
            }

        return multiclass
    unit = task.unit

    def regression(scored: Scored, model: ServedModel, arm: str, threshold: float) -> dict[str, Any]:
        return {
            "prediction": round(scored.score, 6),
            "unit": unit,
            "model_name": model.name,
            "model_version": model.version,
            "arm": arm,
            "explanation": scored.explanation,
            "out_of_distribution": {"flag": bool(scored.ood), "reasons": scored.ood},
        }

    return regression


__all__ = ["Outcome", "Predictor", "PydanticValidationError", "answer_builder"]
