"""Section 4, monitoring and support (statements 39-46).

Alert rules are Prometheus rules in the deploy folders (rule files and PrometheusRule objects);
receivers are Alertmanager configuration (``receivers:`` with a ``*_configs`` entry, in YAML,
Terraform or an AlertmanagerConfig object). The monitoring records are the project's own:
``monitoring.dir`` (drift, performance, decisions, review queues), the prediction log and the
batch delivery records. "Regularly" means something runs the work on a schedule.
"""

from __future__ import annotations

import re

from noria.maturity import _evidence as ev
from noria.maturity._context import Context, age_days, placeholder_lines
from noria.maturity._model import Evidence, Finding, Status
from noria.maturity._registry import check
from noria.maturity.checks_documentation import filled
from noria.maturity.checks_quality import alert_rules
from noria.maturity.checks_retraining import scheduled

COST_DAYS = 90  # a cost estimate older than this is not "regular"
MONEY = r"[$€£]\s?\d|\d[\d,.]*\s?(USD|EUR|GBP|dollars|euros)\b"
INFRA_RULE = r"\bup\b|kube_|restarts|unavailable|container_|node_|probe_|kube_job"
MONITOR_RUN = r"noria\s+monitor\s+(drift|run)|[\"']monitor[\"'],\s*[\"'](drift|run)[\"']"
CADENCE = r"daily|weekly|monthly|every (day|week|month|morning|monday|tuesday|wednesday|thursday|friday)"
REVIEWER = r"reviewed by|reviewer|owner|on-call|responsible|analyst"
REVIEW = r"review (queue|of (the )?predictions)|reviewing predictions|low.certainty|review runbook"
RECEIVER = r"(webhook|email|slack|pagerduty|opsgenie|msteams|telegram|sns|pushover|victorops|discord)_configs"
# What a delivery alert's expression reads, by the failure it catches.
DELIVERY_ALERTS = {
    "late": r"time\(\)|late_after",
    "failed": r"fail",
    "short": r"rows",
}


def _rules_matching(ctx: Context, pattern: str) -> list[tuple[str, str]]:
    rx = re.compile(pattern, re.I)
    return [(ctx.rel(p), str(r.get("alert"))) for p, r in alert_rules(ctx) if rx.search(str(r.get("expr", "")))]


def _rule_evidence(found: list[tuple[str, str]], what: str) -> list[Evidence]:
    if not found:
        return []
    names = sorted({a for _, a in found})
    return [ev.record(found[0][0], f"{what}: {', '.join(names[:6])}", found[0][0])]


@check(39, "Infrastructure cost is tracked and estimated regularly.")
def cost(ctx: Context) -> Finding:
    labelled = [p for p in ctx.deploy_files() if re.search(r"cost[-_]?cent(er|re)", ctx.text(p), re.I)]
    quotas = ctx.kinds("ResourceQuota") or [(p, {}) for p in ctx.deploy_files(".tf") if "resource_quota" in ctx.text(p)]
    estimates = [s for s in filled(ctx.sections(r"\bcosts?\b"))[0] if re.search(MONEY, s.body)]
    evidence = [ev.file(ctx, p, "cost-allocation labels") for p in labelled[:1]]
    evidence += [ev.file(ctx, p, "a resource quota caps what an environment can cost") for p, _ in quotas[:1]]
    evidence += [ev.section(s, "cost estimate") for s in estimates[:1]]
    todo = []
    if not labelled:
        todo.append("label every deployed object with its cost centre (kustomize labels, Terraform labels)")
    if not estimates:
        todo.append("write the monthly cost estimate per environment (a '## Cost' section with the amount)")
    else:
        changed = ctx.last_change(estimates[0].doc.path)
        if changed is None or age_days(changed, ctx.now) > COST_DAYS:
            todo.append(f"refresh the cost estimate in {estimates[0].doc.rel} (older than {COST_DAYS} days)")
    if not todo:
        return Finding(Status.MET, tuple(evidence))
    return Finding(Status.PARTIAL if evidence else Status.NOT_MET, tuple(evidence), "; ".join(todo))


def receivers(ctx: Context) -> list[Evidence]:
    """Alertmanager receivers that deliver somewhere (in YAML, Terraform or an AlertmanagerConfig)."""
    return [e for e, filled_in in _receiver_files(ctx) if filled_in]


def _receiver_files(ctx: Context) -> list[tuple[Evidence, bool]]:
    """Files configuring Alertmanager receivers, and whether they are filled in (no TODO/TBD/FILL IN)."""
    found = []
    for path in ctx.deploy_files(".yml", ".yaml", ".tf", ".json"):
        text = ctx.text(path)
        if "receiver" in text and re.search(RECEIVER, text):
            todo = placeholder_lines(text)
            if todo:
                found.append((ev.file(ctx, path, f"receivers still a placeholder: {todo[0][:80]!r}"), False))
            else:
                found.append((ev.file(ctx, path, "Alertmanager routes alerts to receivers"), True))
    return found


@check(40, "Infrastructure health is monitored, with alerts.")
def infrastructure_alerts(ctx: Context) -> Finding:
    rules = _rules_matching(ctx, INFRA_RULE)
    files = _receiver_files(ctx)
    routed = [e for e, filled_in in files if filled_in]
    unfilled = [e for e, filled_in in files if not filled_in]
    evidence = _rule_evidence(rules, "infrastructure alerts") + (routed[:1] or unfilled[:1])
    if not rules:
        return Finding(
            Status.NOT_MET,
            tuple(evidence),
            "add Prometheus alert rules on the service and cluster (service down, pods restarting, replicas missing)",
        )
    if not routed:
        todo = "route the alerts to people: Alertmanager receivers (webhook, e-mail, chat) as code"
        if unfilled:
            todo = f"name the real receiver in {unfilled[0].where} (replace its TODO): alerts reach nobody yet"
        return Finding(Status.PARTIAL, tuple(evidence), todo)
    return Finding(Status.MET, tuple(evidence))


@check(41, "Real-time use: every request and response is logged; latency, status codes and health are monitored.")
def request_monitoring(ctx: Context) -> Finding:
    log = ctx.project.config.serving.prediction_log
    evidence = [
        ev.config(ctx, "serving", "prediction_log", detail="every request and answer logged" if log.enabled else "off")
    ]
    files = ctx.records.prediction_log_files
    if files:
        evidence.append(ev.record(ctx.rel(files[-1].parent), f"{len(files)} prediction log files"))
    scraped = ctx.kinds("ServiceMonitor") + ctx.kinds("PodMonitor")
    scrape_configs = [p for p in ctx.deploy_files(".yml", ".yaml") if "scrape_configs" in ctx.text(p)]
    evidence += [
        ev.file(ctx, p, "Prometheus scrapes the service's /metrics")
        for p in ([p for p, _ in scraped] + scrape_configs)[:1]
    ]
    latency = _rules_matching(ctx, r"request_duration|latency")
    errors = _rules_matching(ctx, r'status=~?"5|5\.\.|5xx|error')
    evidence += _rule_evidence(latency + errors, "latency and error alerts")
    probes = [p for p, d in ctx.kinds("Deployment") if "readinessProbe" in str(d) and "livenessProbe" in str(d)]
    evidence += [ev.file(ctx, p, "readiness and liveness probes") for p in probes[:1]]
    todo = []
    if not log.enabled:
        todo.append("log every request (serving.prediction_log.enabled: true)")
    if not (scraped or scrape_configs):
        todo.append("scrape /metrics with Prometheus (a ServiceMonitor)")
    if not latency or not errors:
        todo.append("alert on latency and on 5xx responses")
    if not probes:
        todo.append("give the serving Deployment readiness and liveness probes")
    if not todo:
        return Finding(Status.MET, tuple(evidence))
    return Finding(Status.PARTIAL if log.enabled else Status.NOT_MET, tuple(evidence), "; ".join(todo))


@check(42, "Batch use: continuity of delivery to the target system is monitored.")
def batch_continuity(ctx: Context) -> Finding:
    """Delivery records, alerts on them (late, failed, short) and, for a project that batches, its schedule.

    Every ``noria predict`` run leaves a delivery record; ``noria serve`` exports them as the
    ``noria_batch_delivery_*`` series (newest success and its rows, typical rows, newest failure,
    the project's thresholds) which the alert rules read.
    """
    batch = ctx.project.config.serving.batch
    deliveries = ctx.records.deliveries
    evidence = [
        ev.config(ctx, "serving", "batch", "deliveries_dir", detail="every noria predict run leaves a delivery record")
    ]
    if deliveries:
        last = deliveries[-1]
        evidence.append(
            ev.record(
                ctx.rel(ctx.project.path(batch.deliveries_dir)),
                f"{len(deliveries)} deliveries, newest {last.get('finished_at') or last.get('started_at', '?')}: "
                f"{last.get('status', '?')}",
            )
        )
    rules = [(p, r) for p, r in alert_rules(ctx) if re.search(r"deliver|batch", str(r.get("expr", "")), re.I)]
    evidence += _rule_evidence([(ctx.rel(p), str(r.get("alert"))) for p, r in rules], "delivery alerts")
    if batch.late_after_seconds:
        evidence.append(
            ev.config(
                ctx,
                "serving",
                "batch",
                "late_after_seconds",
                detail=f"late after {batch.late_after_seconds / 3600:g} h without a successful delivery",
            )
        )
    if not rules:
        return Finding(
            Status.PARTIAL,
            tuple(evidence),
            "alert when a scheduled batch is late, failed or short: Prometheus rules on the noria_batch_delivery_* "
            "series `noria serve` exports from the delivery records (as in Noria's deploy/prometheus/rules/noria.yml)",
        )
    todo = []
    missing = [kind for kind, pattern in DELIVERY_ALERTS.items() if not any(_reads(r, pattern) for _, r in rules)]
    if missing:
        todo.append(f"alert also when a batch delivery is {' or '.join(missing)} (rules on noria_batch_delivery_*)")
    if deliveries and not batch.late_after_seconds and any(_reads(r, "late_after_seconds") for _, r in rules):
        todo.append(
            "declare the batch schedule (serving.batch.late_after_seconds: its period plus slack): "
            "without it the lateness alert never fires"
        )
    if todo:
        return Finding(Status.PARTIAL, tuple(evidence), "; ".join(todo))
    return Finding(Status.MET, tuple(evidence))


def _reads(rule: dict[str, object], pattern: str) -> bool:
    return bool(re.search(pattern, str(rule.get("expr", "")), re.I))


@check(43, "Offline evaluation metrics are stored and monitored.")
def offline_metrics(ctx: Context) -> Finding:
    view = ctx.records.registry
    evidence: list[Evidence] = []
    stored = bool(view.lineage and view.lineage.metrics)
    if view.lineage is not None and stored:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in list(view.lineage.metrics.items())[:4])
        evidence.append(
            ev.record(f"registry: {view.subject}, run {view.lineage.run_id[:12]}", f"holdout metrics: {shown}")
        )
    watched = _rules_matching(ctx, r"holdout|metric_drop")
    evidence += _rule_evidence(watched, "alerts on the live metric against the holdout")
    compared = [r for r in ctx.records.performance if r.get("holdout") is not None]
    if compared:
        evidence.append(
            ev.record(
                ctx.rel(ctx.records.monitoring_dir / "performance"),
                f"{len(compared)} windows compared with the holdout",
            )
        )
    policy = ctx.project.config.monitoring.policy
    if policy.metric_drop is not None:
        evidence.append(
            ev.config(
                ctx, "monitoring", "policy", "metric_drop", detail=f"retrain below holdout - {policy.metric_drop:g}"
            )
        )
    monitored = bool(watched or compared)
    if stored and monitored:
        return Finding(Status.MET, tuple(evidence))
    todo = []
    if not stored:
        todo.append("train through Noria (noria pipeline run training): the holdout metrics are stored with the run")
    if not monitored:
        todo.append(
            "compare live metrics with the holdout: noria monitor feedback, and an alert on noria_model_metric_drop"
        )
    return Finding(Status.PARTIAL if evidence else Status.NOT_MET, tuple(evidence), "; ".join(todo))


@check(44, "A feedback loop tracks the business KPIs.")
def kpi_feedback(ctx: Context) -> Finding:
    kpi = ctx.project.config.monitoring.kpi
    if not (kpi.name or kpi.metric or kpi.target is not None):
        return Finding(
            Status.NOT_MET,
            (),
            "name the business KPI in noria.yaml (monitoring.kpi: {metric, name, target}), measured on delayed labels",
        )
    evidence = [ev.config(ctx, "monitoring", "kpi", detail=f"{kpi.name or kpi.metric}, target {kpi.target}")]
    tracked = [r for r in ctx.records.performance if r.get("kpi")]
    if tracked:
        last = tracked[-1]["kpi"]
        evidence.append(
            ev.record(
                ctx.rel(ctx.records.monitoring_dir / "performance"),
                f"{len(tracked)} windows measured; newest {tracked[-1].get('window')}: {last.get('value')}",
            )
        )
    evidence += _rule_evidence(_rules_matching(ctx, r"kpi"), "KPI alerts")
    todo = []
    if kpi.target is None:
        todo.append("set the agreed target (monitoring.kpi.target)")
    if not tracked:
        todo.append("feed the labels back: noria monitor feedback (after serving)")
    if todo:
        return Finding(Status.PARTIAL, tuple(evidence), "; ".join(todo))
    return Finding(Status.MET, tuple(evidence))


@check(
    45, "Distributions of important features are recomputed regularly, with alerts on shifts that affect the target."
)
def drift_monitoring(ctx: Context) -> Finding:
    drift = ctx.project.config.monitoring.drift
    evidence = [
        ev.config(
            ctx,
            "monitoring",
            "drift",
            "min_importance",
            detail=f"alerts only on features with >= {drift.min_importance:.0%} of the model's importance",
        )
    ]
    records = ctx.records.drift
    if records:
        evidence.append(
            ev.record(
                ctx.rel(ctx.records.monitoring_dir / "drift"),
                f"{len(records)} drift records, newest {records[-1].get('window')}",
            )
        )
    alerts = _rules_matching(ctx, r"drift")
    evidence += _rule_evidence(alerts, "drift alerts")
    runs = scheduled(ctx, MONITOR_RUN)
    evidence += runs[:1]
    todo = []
    if not alerts:
        todo.append("alert on drift of important features (a Prometheus rule on noria_feature_drift_psi)")
    if not runs:
        todo.append("run noria monitor drift / noria monitor run on a schedule (a scheduled workflow or CronJob)")
    if not records:
        todo.append("compute drift on served windows (noria monitor drift --window W)")
    if not todo:
        return Finding(Status.MET, tuple(evidence))
    return Finding(Status.PARTIAL if (alerts or runs or records) else Status.NOT_MET, tuple(evidence), "; ".join(todo))


@check(46, "Outliers are detected; low-certainty predictions are reviewed regularly.", person=True)
def review_queue(ctx: Context) -> Finding:
    band = ctx.project.config.monitoring.feedback.review_band
    evidence = [
        ev.config(
            ctx,
            "monitoring",
            "feedback",
            "review_band",
            detail=f"out-of-distribution answers and those within {band:g} of the decision go to the review queue",
        )
    ]
    files = ctx.records.review_files
    if files:
        evidence.append(ev.record(ctx.rel(files[-1].parent), f"{len(files)} review queues, newest {files[-1].stem}"))
    runbooks = [
        s
        for s in filled(ctx.sections(REVIEW))[0]
        if re.search(CADENCE, s.body, re.I) and re.search(REVIEWER, s.body, re.I)
    ]
    evidence += [ev.section(s, "who reviews the queue, and how often") for s in runbooks[:1]]
    if band <= 0:
        return Finding(
            Status.PARTIAL,
            tuple(evidence),
            "send low-certainty answers to review (monitoring.feedback.review_band > 0)",
        )
    if not runbooks:
        return Finding(
            Status.NEEDS_PERSON,
            tuple(evidence),
            "name who reviews the queue and how often, in a runbook (docs/runbooks/review.md), and do it",
        )
    if not files:
        return Finding(Status.PARTIAL, tuple(evidence), "produce the queue: noria monitor feedback (after serving)")
    return Finding(Status.MET, tuple(evidence))
