"""``noria cost``: the monthly cost of an environment from its manifests' resource requests.

Renders the environment's kustomize folder (``kubectl kustomize``; plain YAML without a
kustomization) and prices what pods request: Deployments and StatefulSets for 730 hours with
``spec.replicas`` or an HPA's min and max, CronJobs as often as scheduled for
``cost.job_minutes[name]`` or at most ``activeDeadlineSeconds``, Jobs once, volume claims and the
declared object storage per GiB-month. Pods without cpu and memory requests are *unpriced*.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from noria.errors import ConfigError, ExternalToolError, NotFoundError

if TYPE_CHECKING:
    from noria.config import CostConfig, Project

HOURS_PER_MONTH = 730.0  # 365 * 24 / 12
_KUSTOMIZATIONS = ("kustomization.yaml", "kustomization.yml", "Kustomization")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18, "m": 1e-3}
_QUANTITY = re.compile(r"^([0-9.]+(?:[eE][-+]?[0-9]+)?)([a-zA-Z]*)$")
_MACROS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0"}
_MACROS |= {"@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
_MONTHS, _DAYS = "jan feb mar apr may jun jul aug sep oct nov dec", "sun mon tue wed thu fri sat"
_NAMES = {_MONTHS[i : i + 3]: i // 4 + 1 for i in range(0, 48, 4)} | {_DAYS[i : i + 3]: i // 4 for i in range(0, 28, 4)}


@dataclass
class Workload:
    """One priced (or unpriced) line of the estimate; cpu in cores and memory in GiB per pod."""

    kind: str
    name: str
    replicas_min: int = 0
    replicas_max: int = 0
    cpu: float = 0.0
    memory_gib: float = 0.0
    hours_month: float = 0.0
    storage_gib: float = 0.0
    cost_min: float = 0.0
    cost_max: float = 0.0
    note: str = ""
    unpriced: str = ""  # why it could not be priced (then its costs are 0)


@dataclass
class Estimate:
    environment: str
    currency: str
    manifests: str
    prices: dict[str, float]
    workloads: list[Workload] = field(default_factory=list)

    @property
    def total_min(self) -> float:
        return round(sum(w.cost_min for w in self.workloads), 2)

    @property
    def total_max(self) -> float:
        return round(sum(w.cost_max for w in self.workloads), 2)

    @property
    def unpriced(self) -> list[Workload]:
        return [w for w in self.workloads if w.unpriced]

    def to_dict(self) -> dict[str, Any]:
        unpriced = [{"kind": w.kind, "name": w.name, "reason": w.unpriced} for w in self.unpriced]
        totals = {"total_min": self.total_min, "total_max": self.total_max, "unpriced": unpriced}
        return asdict(self) | {"hours_per_month": HOURS_PER_MONTH} | totals


def estimate(project: Project, environment: str) -> Estimate:
    """The monthly cost of ``environment`` (its manifests rendered, priced with the project's table)."""
    folder = manifests_folder(project, environment)
    repo = next((b for b in folder.parents if (b / ".git").exists()), project.root.resolve())
    shown = folder.relative_to(repo).as_posix() if folder.is_relative_to(repo) else str(folder)
    return price(render(folder), project.config.cost, environment, shown)


def manifests_folder(project: Project, environment: str) -> Path:
    """The environment's kustomize folder: in the project, else in a parent up to the repository's root."""
    config = project.config.cost
    override = config.environments.get(environment)
    pattern = override.manifests if override and override.manifests else config.manifests
    relative = Path(pattern.replace("{env}", environment)).expanduser()
    tried = []
    for base in [project.root.resolve(), *project.root.resolve().parents]:
        candidate = relative if relative.is_absolute() else base / relative
        tried.append(str(candidate))
        if candidate.is_dir():
            return candidate
        if relative.is_absolute() or (base / ".git").exists():
            break
    raise NotFoundError(
        f"no manifests for environment {environment!r}: looked for {' and '.join(tried[:3])}",
        fix="pass an environment that has an overlay (--env), or set cost.manifests (or "
        f"cost.environments.{environment}.manifests) in noria.yaml to its kustomize folder",
    )


def render(folder: Path) -> list[dict[str, Any]]:
    """The Kubernetes objects of ``folder``: ``kubectl kustomize`` output, or its YAML files as they are."""
    if any((folder / name).is_file() for name in _KUSTOMIZATIONS):
        kubectl = shutil.which("kubectl")
        if kubectl is None:
            raise ExternalToolError(
                f"kubectl is not installed: `noria cost` renders {folder} with `kubectl kustomize`",
                fix="install kubectl and put it on PATH: `apt-get install kubectl` from the Kubernetes apt "
                "repository (https://kubernetes.io/docs/tasks/tools/)",
            )
        done = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise ExternalToolError(
                f"`kubectl kustomize {folder}` failed: {done.stderr.strip()[:500]}",
                fix="fix the kustomization (run the same command to see the whole error)",
            )
        texts = [done.stdout]
    else:
        texts = [p.read_text(encoding="utf-8") for p in sorted(folder.rglob("*.y*ml"))]
    try:
        docs = [d for text in texts for d in yaml.safe_load_all(text)]
    except yaml.YAMLError as exc:
        raise ConfigError(f"the manifests of {folder} are not valid YAML: {exc}") from exc
    return [d for d in docs if isinstance(d, dict) and "kind" in d]


def price(objects: list[dict[str, Any]], config: CostConfig, environment: str, source: str) -> Estimate:
    """Price rendered objects with ``config``'s table for ``environment``."""
    override = config.environments.get(environment)
    prices = config.prices.model_dump() | (dict(override.prices) if override else {})
    storage = override.object_storage_gib if override and override.object_storage_gib is not None else None
    storage = config.object_storage_gib if storage is None else storage
    out = Estimate(environment, config.currency, source, prices)
    hpas = {
        (o["spec"].get("scaleTargetRef", {}).get("kind"), o["spec"].get("scaleTargetRef", {}).get("name")): o["spec"]
        for o in objects
        if o["kind"] == "HorizontalPodAutoscaler" and isinstance(o.get("spec"), dict)
    }
    for obj in objects:
        kind, name = obj["kind"], str(obj.get("metadata", {}).get("name", "?"))
        spec = obj.get("spec") or {}
        if kind in ("Deployment", "StatefulSet"):
            w = _pods(kind, name, spec.get("template", {}), HOURS_PER_MONTH, prices)
            replicas = int(spec.get("replicas", 1))
            hpa = hpas.get((kind, name))
            low, high = (
                (int(hpa.get("minReplicas", 1)), int(hpa.get("maxReplicas", 1))) if hpa else (replicas, replicas)
            )
            if hpa:
                w.note = f"autoscaled {low}-{high} replicas (HorizontalPodAutoscaler)"
            claims = sum(_gib(c.get("spec", {}), "storage") for c in spec.get("volumeClaimTemplates", []))
            _scale(w, low, high, claims, prices)
        elif kind in ("CronJob", "Job"):
            job = spec.get("jobTemplate", {}).get("spec", {}) if kind == "CronJob" else spec
            w = _job(kind, name, spec, job, config.job_minutes, prices)
        elif kind == "PersistentVolumeClaim":
            w = Workload(kind, name, storage_gib=_gib(spec, "storage"))
            w.cost_min = w.cost_max = round(w.storage_gib * prices["gib_storage_month"], 2)
        else:
            continue
        out.workloads.append(w)
    if storage:
        cost = round(storage * prices["object_storage_gib_month"], 2)
        out.workloads.append(Workload("ObjectStorage", "cost.object_storage_gib", 0, 0, storage_gib=storage))
        out.workloads[-1].cost_min = out.workloads[-1].cost_max = cost
    return out


def _job(
    kind: str, name: str, spec: dict[str, Any], job: dict[str, Any], minutes: dict[str, float], prices: dict[str, float]
) -> Workload:
    if kind == "CronJob":
        runs = 0.0 if spec.get("suspend") else runs_per_month(str(spec.get("schedule", "")), name)
    else:
        runs = 1.0
    if name in minutes:
        hours, note = minutes[name] / 60, f"{runs:g} runs/month x {minutes[name]:g} min (cost.job_minutes)"
    elif job.get("activeDeadlineSeconds"):
        seconds = float(job["activeDeadlineSeconds"])
        hours, note = seconds / 3600, f"{runs:g} runs/month x at most {seconds / 60:g} min (activeDeadlineSeconds)"
    else:
        w = Workload(kind, name)
        w.unpriced = f"no activeDeadlineSeconds and no cost.job_minutes.{name}: declare how long a run takes"
        return w
    w = _pods(kind, name, job.get("template", {}), runs * hours, prices)
    w.note = note + (" (suspended: not counted)" if spec.get("suspend") else "")
    pods = int(job.get("parallelism", 1))
    _scale(w, pods, pods, 0.0, prices)
    return w


def _pods(kind: str, name: str, template: dict[str, Any], hours: float, prices: dict[str, float]) -> Workload:
    """A workload with its per-pod requests (or why it is unpriced); replicas come from _scale."""
    pod = template.get("spec") or {}
    w = Workload(kind, name, hours_month=round(hours, 2))
    missing = [
        f"container {c.get('name', '?')} requests no {r}"
        for c in pod.get("containers", [])
        for r in ("cpu", "memory")
        if r not in ((c.get("resources") or {}).get("requests") or {})
    ]
    if missing or not pod.get("containers"):
        w.unpriced = "; ".join(missing) or "no containers"
        return w
    cpu = sum(_cpu(c["resources"]["requests"]["cpu"]) for c in pod["containers"])
    mem = sum(_gib(c["resources"], "memory") for c in pod["containers"])
    for init in pod.get("initContainers", []):  # the scheduler reserves the larger of the two
        requests = (init.get("resources") or {}).get("requests") or {}
        cpu = max(cpu, _cpu(requests.get("cpu", 0)))
        mem = max(mem, _gib(init.get("resources") or {}, "memory"))
    w.cpu, w.memory_gib = round(cpu, 3), round(mem, 3)
    return w


def _scale(w: Workload, low: int, high: int, claims_gib: float, prices: dict[str, float]) -> None:
    w.replicas_min, w.replicas_max, w.storage_gib = low, high, round(claims_gib * high, 3)
    if w.unpriced:
        return
    pod = w.hours_month * (w.cpu * prices["cpu_hour"] + w.memory_gib * prices["gib_memory_hour"])
    pod += claims_gib * prices["gib_storage_month"]
    w.cost_min, w.cost_max = round(pod * low, 2), round(pod * high, 2)


def _quantity(value: Any) -> tuple[float, str]:
    m = _QUANTITY.match(str(value).strip())
    if not m:
        raise ConfigError(f"{value!r} is not a Kubernetes quantity (expected e.g. 500m, 2, 512Mi, 1Gi)")
    return float(m[1]), m[2]


def _cpu(value: Any) -> float:
    number, unit = _quantity(value)
    if unit and unit not in _DECIMAL:
        raise ConfigError(f"cpu {value!r} has an unknown unit (expected cores or millicores, e.g. 2 or 500m)")
    return number * _DECIMAL.get(unit, 1.0)


def _gib(holder: dict[str, Any], resource: str) -> float:
    """GiB of ``resource`` in ``holder["requests"]`` (0 when it requests none)."""
    value = (holder.get("resources", holder).get("requests") or {}).get(resource)
    if value is None:
        return 0.0
    number, unit = _quantity(value)
    factor = _BINARY.get(unit) or _DECIMAL.get(unit) or (1.0 if not unit else None)
    if factor is None:
        raise ConfigError(f"{resource} {value!r} has an unknown unit (expected e.g. 512Mi, 2Gi, 1G)")
    return number * factor / 2**30


def _field(text: str, low: int, high: int, schedule: str) -> set[int]:
    out: set[int] = set()
    for part in text.lower().split(","):
        base, _, step = part.partition("/")
        try:
            every = int(step) if step else 1
            if base in ("*", "?"):
                first, last = low, high
            else:
                ends = [int(_NAMES.get(x, x)) for x in base.split("-", 1)]
                first, last = ends[0], ends[-1] if len(ends) == 2 else (high if step else ends[0])
        except ValueError:
            first, last, every = 1, 0, 0
        if every < 1 or not low <= first <= last <= high:
            raise ConfigError(f"cron schedule {schedule!r}: {part!r} is not a value or range in {low}-{high}")
        out.update(range(first, last + 1, every))
    return out


def runs_per_month(schedule: str, name: str = "") -> float:
    """Average runs per month of a 5-field cron schedule (or @daily, @hourly, ...), over a 365-day year."""
    text = _MACROS.get(schedule.strip(), schedule.strip())
    parts = text.split()
    if len(parts) != 5:
        raise ConfigError(
            f"CronJob {name}: schedule {schedule!r} is not 5 cron fields (minute hour day-of-month month weekday)"
        )
    minutes, hours = _field(parts[0], 0, 59, schedule), _field(parts[1], 0, 23, schedule)
    doms, months = _field(parts[2], 1, 31, schedule), _field(parts[3], 1, 12, schedule)
    dows = {d % 7 for d in _field(parts[4], 0, 7, schedule)}
    either = parts[2] not in ("*", "?") and parts[4] not in ("*", "?")  # cron ORs the two day fields then
    days = 0
    for offset in range(365):
        day = date(2025, 1, 1) + timedelta(days=offset)
        if day.month not in months:
            continue
        on_dom, on_dow = day.day in doms, day.isoweekday() % 7 in dows
        days += (on_dom or on_dow) if either else (on_dom and on_dow)
    return round(days * len(minutes) * len(hours) / 12, 2)
