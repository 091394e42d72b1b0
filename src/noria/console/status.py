"""The loop's state, stage by stage: what ``noria status`` prints and the console's overview draws.

Each stage of the loop (data -> features -> training -> registry -> serving -> monitoring ->
retraining, and the maturity score beside it) is read from the records the CLI reads: the newest
snapshot record, the feature store's files, the registry, the serving endpoint when one is named
and the prediction log's newest files (the request rate, :mod:`noria.monitoring.traffic`), the
monitoring store and the maturity assessment. A stage is ``ok``, ``warn`` (worth a look),
``stale`` or ``failing`` (both shown red, with the command that fixes it), ``missing`` (never run:
red too, with the command that starts it), ``off`` (the project does not use it) or ``unknown``
(nothing to ask, e.g. no serving URL). Times are ISO 8601 UTC; ages are computed by the reader, so
the same records give the same JSON whenever it is asked.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from noria.errors import NoriaError, NotFoundError

if TYPE_CHECKING:
    from noria.config import Project

STAGES = ("data", "features", "training", "registry", "serving", "monitoring", "retraining", "maturity")
RED = frozenset({"stale", "failing", "missing"})
SERVING_TIMEOUT_S = 1.5


@dataclass
class Stage:
    """One stage of the loop: its state, a one-line summary, when it last moved, what fixes it."""

    stage: str
    state: str  # ok | warn | stale | failing | missing | off | unknown
    summary: str
    at: str | None = None  # ISO 8601 UTC of the record the state comes from
    fix: str | None = None  # the command that repairs (or starts) the stage
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def red(self) -> bool:
        return self.state in RED


def loop_status(project: Project, serving_url: str | None = None) -> dict[str, Any]:
    """The state of every stage of the project's loop, as a JSON-ready dict (``noria status --json``)."""
    name = project.config.model.name
    snapshot = data_stage(project)
    stages = [
        snapshot,
        features_stage(project, snapshot.at),
        *_registry(project, name),
        _serving(serving_url, project),
        *_monitoring(project, name),
        _maturity(project),
    ]
    stages.sort(key=lambda s: STAGES.index(s.stage))
    return {
        "project": project.config.project,
        "model": name,
        "stages": [asdict(s) for s in stages],
        "red": [s.stage for s in stages if s.red],
    }


def age_text(at: str | None, now: datetime | None = None) -> str:
    """How long ago ``at`` was, in the largest sensible unit ("3 min ago", "2 d ago")."""
    if not at:
        return ""
    try:
        then = datetime.fromisoformat(at)
    except ValueError:
        return ""
    then = then if then.tzinfo else then.replace(tzinfo=UTC)
    seconds = max(0.0, ((now or datetime.now(UTC)) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def _iso_mtime(path: Any) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")


# --- stages --------------------------------------------------------------------------------------


def data_stage(project: Project) -> Stage:
    """The newest snapshot."""
    from noria.data.snapshots import list_snapshots

    records = list_snapshots(project)
    if not records:
        return Stage("data", "missing", "no data snapshot yet", fix="noria data ingest")
    r = records[-1]
    totals = r.totals()
    months = f"{r.months[0]}..{r.months[-1]}" if r.months else "no months"
    state = "warn" if any(t.warnings for t in r.tables.values()) else "ok"
    return Stage(
        "data",
        state,
        f"snapshot {r.short_id}: {months}, {totals['rows_in_snapshot']:,} rows; its ingest accepted"
        f" {totals['accepted']:,}, quarantined {totals['quarantined']:,}",
        at=r.created_at,
        fix=f"noria data show {r.short_id} --quarantine" if state == "warn" else None,
        details={"snapshot": r.id, "snapshots": len(records), **totals},
    )


def features_stage(project: Project, snapshot_at: str | None) -> Stage:
    """The feature store: applied, and the online store written after the newest snapshot."""
    from noria.features.definitions import load_definitions

    try:
        defs = load_definitions(project)
    except NoriaError as exc:
        return Stage("features", "off", f"no feature store: {exc.message}")
    spec = defs.config.online_store
    online = [v for v, view in defs.config.feature_views.items() if view.online]
    details: dict[str, Any] = {"views": len(defs.config.feature_views), "online_views": len(online)}
    if not (defs.repo_dir / "registry.db").is_file():
        return Stage("features", "missing", "the feature store is not applied", fix="noria features apply")
    if spec.type != "sqlite":
        return Stage(
            "features", "unknown", f"online store {spec.type}: freshness is read on its server", details=details
        )
    path = project.path(spec.path)
    if not online:
        return Stage("features", "ok", "no view is served online", details=details)
    if not path.is_file():
        return Stage(
            "features",
            "missing",
            "the online store was never filled",
            fix="noria features materialize --until <the newest data time>",
            details=details,
        )
    written = _iso_mtime(path)
    stale = snapshot_at is not None and written < snapshot_at
    summary = f"online store ({len(online)} views) last written {written}"
    if stale:
        summary += ", before the newest snapshot"
    return Stage(
        "features",
        "stale" if stale else "ok",
        summary,
        at=written,
        fix="noria features materialize --until <the newest data time>" if stale else None,
        details=details,
    )


def _registry(project: Project, name: str) -> list[Stage]:
    from noria.monitoring.report import registry_exists

    train = "noria pipeline run training"
    if not registry_exists(project):
        return [
            Stage("training", "missing", "no model trained yet", fix=train),
            Stage("registry", "missing", "no registry yet", fix=train),
        ]
    from noria.registry import list_models

    try:
        (summary,) = list_models(project, name)
    except NotFoundError:
        return [
            Stage("training", "missing", f"no version of {name!r} yet", fix=train),
            Stage("registry", "missing", f"no registered model {name!r}", fix=train),
        ]
    except NoriaError as exc:
        return [Stage("training", "failing", f"the registry could not be read: {exc.message}", fix=exc.fix)]
    if not summary.versions:
        return [
            Stage("training", "missing", f"no version of {name!r} yet", fix=train),
            Stage("registry", "missing", "no champion", fix=train),
        ]
    newest = max(summary.versions, key=lambda v: v.version)
    gate = newest.tags.get("noria.gate.decision", "")
    training = Stage(
        "training",
        "ok",
        f"newest version {newest.version}" + (f", gate: {gate}" if gate else ""),
        at=newest.created_at,
        details={"version": newest.version, "run_id": newest.run_id, "gate": gate, "metrics": newest.metrics},
    )
    champion, challenger = summary.aliases.get("champion"), summary.aliases.get("challenger")
    if champion is None:
        registry = Stage(
            "registry",
            "missing",
            "no @champion",
            fix=f"noria promote {name} {newest.version}",
            details={"challenger": challenger},
        )
    else:
        info = next(v for v in summary.versions if v.version == champion)
        at = info.tags.get("noria.gate.at") or info.created_at
        text = f"@champion version {champion}" + (f", @challenger version {challenger}" if challenger else "")
        registry = Stage("registry", "ok", text, at=at, details={"champion": champion, "challenger": challenger})
    return [training, registry]


def serving_stage(url: str | None, project: Project | None = None) -> dict[str, Any]:
    """The service's health, asked now (``url`` None: not known), and, given the ``project``, its
    request rate from the prediction log."""
    return asdict(_serving(url, project))


def _serving(url: str | None, project: Project | None = None) -> Stage:
    """The service's health (``/ready``) and its recent request rate (the prediction log).

    A service that is ready but logged no request in the last hour is STALE: it is expected to
    answer, nobody asks it (or the log is not written). Without a URL the rate is still given.
    """
    rate: dict[str, Any] | None = None
    at: str | None = None
    words = ""
    if project is not None:
        from noria.monitoring.traffic import rate_text, request_rate

        rate = request_rate(project)
        at = rate.get("last_request_at")
        words = "; " + rate_text(rate)
    extra = {} if rate is None else {"requests": rate}
    if not url:
        return Stage(
            "serving",
            "unknown",
            "no service URL given" + words,
            at=at,
            fix="noria ui --serving-url http://HOST:PORT",
            details=extra,
        )
    import httpx

    base = url.rstrip("/")
    try:
        ready = httpx.get(f"{base}/ready", timeout=SERVING_TIMEOUT_S)
        body = ready.json()
    except (httpx.HTTPError, ValueError) as exc:
        return Stage(
            "serving",
            "failing",
            f"{base} does not answer: {type(exc).__name__}" + words,
            at=at,
            fix="noria serve",
            details={"url": base, **extra},
        )
    details = {"url": base, "ready": bool(body.get("ready")), "model": body.get("model")}
    details["problems"] = body.get("problems")
    details |= extra
    if ready.status_code != 200 or not body.get("ready"):
        problems = "; ".join(body.get("problems") or []) or f"HTTP {ready.status_code}"
        return Stage("serving", "failing", f"not ready: {problems}" + words, at=at, fix="noria serve", details=details)
    if rate is not None and rate.get("windows") and rate["windows"][-1]["requests"] == 0:
        minutes = rate["windows"][-1]["minutes"]
        last = f"the last at {at}" if at else "none ever"
        return Stage(
            "serving",
            "stale",
            f"ready, serving {body.get('model')}, but no request logged in the last {minutes} min ({last})",
            at=at,
            fix=f"check that clients reach {base} (and serving.prediction_log.dir holds the log)",
            details=details,
        )
    return Stage("serving", "ok", f"ready, serving {body.get('model')}" + words, at=at, details=details)


def _monitoring(project: Project, name: str) -> list[Stage]:
    from noria.monitoring.store import MonitoringStore

    store = MonitoringStore.of(project)
    drift = [r for r in store.records("drift") if r.get("model_name") == name]
    performance = [r for r in store.records("performance") if r.get("model_name") == name]
    decisions = [d for d in store.decisions() if d.get("model_name", name) in (name, "")]
    stages = [_drift_stage(project, drift, performance), _decision_stage(decisions)]
    return stages


def _newest_window(project: Project) -> str | None:
    from noria.monitoring.window import windows_in_log

    logged = windows_in_log(project)
    return max(logged) if logged else None


def _drift_stage(project: Project, drift: list[dict[str, Any]], performance: list[dict[str, Any]]) -> Stage:
    logged = _newest_window(project)
    if not drift:
        if logged is None:
            return Stage("monitoring", "missing", "no prediction logged yet", fix="noria serve (then noria replay)")
        return Stage("monitoring", "missing", "no drift computed yet", fix="noria monitor drift --window latest")
    newest = drift[-1]
    alerts = list(newest.get("alerts") or [])
    details: dict[str, Any] = {
        "window": newest["window"],
        "version": newest.get("model_version"),
        "drift_share": newest.get("drift_share"),
        "alerts": alerts,
        "newest_logged_window": logged,
    }
    parts = [f"drift {newest['window']}: " + (f"ALERT on {', '.join(alerts)}" if alerts else "no alert")]
    state, fix = ("failing", "noria monitor run") if alerts else ("ok", None)
    if performance:
        p = performance[-1]
        metric = p.get("primary_metric") or ""
        live = (p.get("metrics") or {}).get(metric)
        holdout, drop = p.get("holdout"), p.get("metric_drop")
        details |= {"performance_window": p["window"], "metric": metric, "live": live, "holdout": holdout}
        parts.append(f"{metric} {_num(live)} live vs {_num(holdout)} holdout ({p['window']})")
        limit = project.config.monitoring.policy.metric_drop
        if isinstance(drop, int | float) and limit is not None and drop > limit:
            state, fix = "failing", "noria monitor run"
            parts.append(f"drop {drop:.3f} > {limit:g}")
    if logged is not None and logged > newest["window"] and state == "ok":
        state, fix = "stale", "noria monitor drift --window latest"
        parts.append(f"{logged} is logged but not checked")
    return Stage("monitoring", state, "; ".join(parts), at=newest.get("computed_at"), fix=fix, details=details)


def _decision_stage(decisions: list[dict[str, Any]]) -> Stage:
    if not decisions:
        return Stage("retraining", "missing", "the policy never ran", fix="noria monitor run --dry-run")
    d = decisions[-1]
    text = f"{d.get('window') or ''}: {d.get('action')}"
    if d.get("candidate_version") is not None:
        text += f", version {d['candidate_version']} " + ("promoted" if d.get("promoted") else "not promoted")
    reasons = list(d.get("reasons") or [])
    details = {"window": d.get("window"), "action": d.get("action"), "reasons": reasons, "promoted": d.get("promoted")}
    return Stage("retraining", "ok", text, at=d.get("decided_at"), details=details)


def _maturity(project: Project) -> Stage:
    from noria.maturity import assess

    result = assess(project)
    sections = {str(s.number): f"{s.score:g}/{s.total}" for s in result.sections()}
    details = {"score": result.score, "of": result.total, "mature": result.mature, "sections": sections}
    text = f"{result.score:g} of {result.total}" + (", mature" if result.mature else ", not mature (sections 1-4)")
    return Stage("maturity", "ok" if result.mature else "warn", text, fix="noria maturity", details=details)


def _num(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "n/a"


__all__ = ["RED", "STAGES", "Stage", "age_text", "data_stage", "features_stage", "loop_status", "serving_stage"]
