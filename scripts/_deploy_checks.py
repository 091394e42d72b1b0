"""The checks of scripts/check_deploy.py that need the tools' libraries (PyYAML, python-hcl2,
KServe's and Kubernetes' model classes). They run under .tools/deploy-venv's interpreter, as
`python scripts/check_deploy.py _NAME ARGS`; each prints its findings and returns 1 on any.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

Doc = dict[str, Any]


def _fail(findings: list[str], what: str) -> int:
    if not findings:
        return 0
    # Module folders are read once per caller, so the same finding can come more than once.
    print(f"{what}:", *dict.fromkeys(findings), sep="\n  ", file=sys.stderr)
    return 1


def _docs(path: Path) -> list[Doc]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


# ---- preprod and prod alike ----

# What the environments may differ in (maturity item 14): replicas, resources, hostnames, and
# the `environment` label wherever it is (ENVIRONMENT_LABEL). Paths use "*" for any list index.
ENVIRONMENT_LABEL = "labels.environment"
ALLOWED_DIFFERENCES = (
    "spec.replicas",
    "spec.minReplicas",
    "spec.maxReplicas",
    "spec.template.spec.containers.*.resources",
    "spec.rules.*.host",
    "spec.tls.*.hosts",
)


def _flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _flatten(item, f"{prefix}.{i}")
    else:
        yield prefix, value


def _allowed(path: str) -> bool:
    generic = re.sub(r"\.\d+(?=\.|$)", ".*", path)
    if generic == ENVIRONMENT_LABEL or generic.endswith("." + ENVIRONMENT_LABEL):
        return True
    return any(generic == a or generic.startswith(a + ".") for a in ALLOWED_DIFFERENCES)


def alike(args: list[str]) -> int:
    first, second = (Path(a) for a in args)

    def index(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
        # ConfigMap names carry a content hash: the same content gives the same name in both.
        return {(d["kind"], d["metadata"]["name"]): dict(_flatten(d)) for d in _docs(path)}

    left, right = index(first), index(second)
    findings = [f"{kind}/{name} exists in only one environment" for kind, name in left.keys() ^ right.keys()]
    for key in sorted(left.keys() & right.keys()):
        for path in sorted(left[key].keys() | right[key].keys()):
            a, b = left[key].get(path), right[key].get(path)
            if a != b and not _allowed(path):
                findings.append(f"{key[0]}/{key[1]} {path}: {a!r} ({first.stem}) != {b!r} ({second.stem})")
    return _fail(findings, f"{first.stem} and {second.stem} differ beyond replicas, resources and hostnames")


# ---- KServe: the InferenceService against KServe's own model classes ----

PRIMITIVES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "object": (object,),
    "datetime": (str,),
    "date": (str,),
}


def _model_modules() -> tuple[types.ModuleType, types.ModuleType]:
    """kserve.models without running kserve/__init__.py (it imports the model server, whose
    dependencies are not installed: the wheel is installed --no-deps)."""
    spec = importlib.util.find_spec("kserve")
    if spec is None or spec.submodule_search_locations is None:
        raise SystemExit("kserve is not installed in this environment")
    package = types.ModuleType("kserve")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["kserve"] = package
    import kserve.models as kserve_models
    import kubernetes.client.models as k8s_models

    return kserve_models, k8s_models


def _build(type_name: str, value: Any, path: str, modules: tuple[types.ModuleType, ...], findings: list[str]) -> Any:
    # KServe's generator writes list[X] and dict(str, X); the Kubernetes client's, List[X] and Dict[str, X].
    if type_name.startswith(("list[", "List[")):
        if not isinstance(value, list):
            findings.append(f"{path}: expected a list, got {value!r}")
            return None
        return [_build(type_name[5:-1], v, f"{path}[{i}]", modules, findings) for i, v in enumerate(value)]
    if type_name.startswith(("dict(", "Dict[")):
        if not isinstance(value, dict):
            findings.append(f"{path}: expected a mapping, got {value!r}")
            return None
        inner = type_name[type_name.index(",") + 1 : -1].strip()
        return {k: _build(inner, v, f"{path}.{k}", modules, findings) for k, v in value.items()}
    if type_name in PRIMITIVES:
        ok = isinstance(value, PRIMITIVES[type_name]) and not (
            type_name in ("int", "float") and isinstance(value, bool)
        )
        if not ok:
            findings.append(f"{path}: expected {type_name}, got {value!r}")
        return value
    cls = next((getattr(m, type_name) for m in modules if hasattr(m, type_name)), None)
    if cls is None:
        findings.append(f"{path}: no model class {type_name} in kserve or kubernetes")
        return None
    if not isinstance(value, dict):
        findings.append(f"{path}: expected an object ({type_name}), got {value!r}")
        return None
    known = set(cls.attribute_map.values())
    findings += [f"{path}.{key}: unknown field of {type_name}" for key in value if key not in known]
    kwargs = {
        attr: _build(cls.openapi_types[attr], value[key], f"{path}.{key}", modules, findings)
        for attr, key in cls.attribute_map.items()
        if key in value
    }
    try:
        return cls(**kwargs)  # the generated setters reject missing required fields and bad enums
    except (ValueError, TypeError) as exc:
        findings.append(f"{path}: {exc}")
        return None


def kserve(args: list[str]) -> int:
    modules = _model_modules()
    findings: list[str] = []
    services = [d for d in _docs(Path(args[0])) if d.get("kind") == "InferenceService"]
    if not services:
        findings.append(f"{args[0]}: no InferenceService")
    for doc in services:
        where = f"InferenceService/{doc.get('metadata', {}).get('name')}"
        if doc.get("apiVersion") != "serving.kserve.io/v1beta1":
            findings.append(f"{where}: apiVersion {doc.get('apiVersion')!r}, expected serving.kserve.io/v1beta1")
        service = _build("V1beta1InferenceService", doc, where, modules, findings)
        if service is not None and service.spec is not None:
            containers = service.spec.predictor.containers or []
            if len(containers) != 1 or not containers[0].image:
                findings.append(f"{where}: a custom predictor needs exactly one container with an image")
    return _fail(findings, "InferenceService invalid for KServe's model classes")


# ---- Terraform: every file parses; variables, outputs, modules and labels agree ----


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text


def _blocks(parsed: dict[str, Any], kind: str) -> Iterator[tuple[list[str], dict[str, Any]]]:
    """(labels, body) of every `kind` block; python-hcl2 nests one dict level per block label."""

    def walk(node: Any, labels: list[str]) -> Iterator[tuple[list[str], dict[str, Any]]]:
        if isinstance(node, dict) and node.get("__is_block__"):
            yield labels, node
        elif isinstance(node, dict):
            for key, value in node.items():
                if not key.startswith("__"):
                    yield from walk(value, [*labels, _unquote(key)])
        elif isinstance(node, list):
            for item in node:
                yield from walk(item, labels)

    yield from walk(parsed.get(kind, []), [])


class _Dir:
    def __init__(self, path: Path, findings: list[str]) -> None:
        import hcl2

        self.path = path
        self.text = ""
        self.variables: dict[str, dict[str, Any]] = {}
        self.outputs: set[str] = set()
        self.locals: set[str] = set()
        self.modules: dict[str, dict[str, Any]] = {}
        self.resources: list[tuple[str, str, dict[str, Any]]] = []
        for file in sorted(path.glob("*.tf")):
            try:
                parsed = hcl2.loads(file.read_text())
            except Exception as exc:
                findings.append(f"{file}: does not parse: {exc}")
                continue
            self.text += file.read_text()
            for labels, body in _blocks(parsed, "variable"):
                self.variables[labels[0]] = body
                if "description" not in body:
                    findings.append(f"{file}: variable {labels[0]} has no description")
            for labels, body in _blocks(parsed, "output"):
                self.outputs.add(labels[0])
                if "description" not in body:
                    findings.append(f"{file}: output {labels[0]} has no description")
            for block in parsed.get("locals", []):
                self.locals |= {k for k in block if not k.startswith("__")}
            for labels, body in _blocks(parsed, "module"):
                self.modules[labels[0]] = body
            for labels, body in _blocks(parsed, "resource"):
                self.resources.append((labels[0], labels[1], body))
        code = re.sub(r"(?m)^\s*#.*$", "", self.text)
        self.var_refs = set(re.findall(r"\bvar\.([A-Za-z_][\w-]*)", code))
        self.local_refs = set(re.findall(r"\blocal\.([A-Za-z_][\w-]*)", code))
        self.module_refs = set(re.findall(r"\bmodule\.([A-Za-z_][\w-]*)\.([A-Za-z_][\w-]*)", code))


META_ARGUMENTS = {"source", "version", "providers", "depends_on", "count", "for_each"}


def _check_dir(d: _Dir, root: Path, findings: list[str]) -> None:
    where = d.path.relative_to(root)
    findings += [f"{where}: var.{v} is used but not declared" for v in sorted(d.var_refs - d.variables.keys())]
    findings += [f"{where}: variable {v} is declared but never used" for v in sorted(d.variables.keys() - d.var_refs)]
    findings += [f"{where}: local.{v} is used but not defined" for v in sorted(d.local_refs - d.locals)]
    for name, body in d.modules.items():
        source = (d.path / _unquote(str(body.get("source", "")))).resolve()
        if not source.is_dir():
            findings.append(f"{where}: module {name}: source {source} is not a folder")
            continue
        module = _Dir(source, findings)
        passed = {k for k in body if not k.startswith("__")} - META_ARGUMENTS
        findings += [
            f"{where}: module {name} passes {a}, which {source.name} does not declare"
            for a in passed - module.variables.keys()
        ]
        required = {v for v, spec in module.variables.items() if "default" not in spec}
        findings += [f"{where}: module {name} does not pass required {v}" for v in sorted(required - passed)]
        for ref_module, output in d.module_refs:
            if ref_module == name and output not in module.outputs:
                findings.append(f"{where}: module.{name}.{output}: {source.name} has no such output")
    findings += [f"{where}: module.{m} is not called here" for m, _ in sorted(d.module_refs) if m not in d.modules]
    for kind, name, body in d.resources:
        if kind.startswith("kubernetes_") and "labels" not in json.dumps(body.get("metadata", "")):
            findings.append(f"{where}: {kind}.{name} has no metadata labels (cost labels, maturity item 39)")
        if kind == "helm_release":
            text = json.dumps(body)
            if "labels" not in text.lower() and "kubernetes_namespace_v1." not in str(body.get("namespace", "")):
                findings.append(
                    f"{where}: helm_release.{name} neither sets labels nor lives in a labelled namespace of this module"
                )


def terraform(args: list[str]) -> int:
    root = Path(args[0])
    findings: list[str] = []
    folders = sorted({p.parent for p in root.rglob("*.tf") if ".terraform" not in p.parts})
    dirs = {folder: _Dir(folder, findings) for folder in folders}
    for d in dirs.values():
        _check_dir(d, root, findings)
    envs = sorted(p for p in (root / "envs").iterdir() if p.is_dir())
    for env in envs:
        labels_block = re.search(r"labels\s*=\s*\{(.*?)\}", dirs[env].text, re.S)
        if not labels_block or "cost-center" not in labels_block.group(1):
            findings.append(f"{env.relative_to(root)}: local.labels has no cost-center label")
        findings += _check_tfvars(env, dirs[env], root)
    # Environments are the same code with other values: only terraform.tfvars and the state key differ.
    for file in ("main.tf", "variables.tf", "versions.tf", "outputs.tf"):
        texts = {(env / file).read_text() if (env / file).exists() else None for env in envs}
        if len(texts) > 1:
            findings.append(f"envs/*/{file} differ between environments: put the difference in terraform.tfvars")
    return _fail(findings, "Terraform inconsistent")


def _check_tfvars(env: Path, d: _Dir, root: Path) -> list[str]:
    import hcl2

    tfvars = env / "terraform.tfvars"
    if not tfvars.exists():
        return [f"{env.relative_to(root)}: no terraform.tfvars"]
    values = {k for k in hcl2.loads(tfvars.read_text()) if not k.startswith("__")}
    # A sensitive variable is a secret: never in terraform.tfvars (committed), but passed by the
    # deploy workflow from the environment's secrets, as TF_VAR_<name>.
    secret = {v for v, spec in d.variables.items() if spec.get("sensitive") in (True, "true")}
    required = {v for v, spec in d.variables.items() if "default" not in spec} - secret
    out = [f"{tfvars.relative_to(root)}: {v} is not a declared variable" for v in sorted(values - d.variables.keys())]
    out += [f"{tfvars.relative_to(root)}: {v} is a secret, it must not be committed" for v in sorted(secret & values)]
    deploy = root.parents[1] / ".github" / "workflows" / "deploy.yml"
    passed = deploy.read_text() if deploy.is_file() else ""
    out += [
        f"{env.relative_to(root)}: secret {v} is not passed by .github/workflows/deploy.yml (TF_VAR_{v})"
        for v in sorted(secret)
        if f"TF_VAR_{v}:" not in passed
    ]
    return out + [f"{tfvars.relative_to(root)}: required {v} is missing" for v in sorted(required - values)]


# ---- GitHub: workflows pinned and least-privilege; CODEOWNERS; branch protection ----

PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def workflows(args: list[str]) -> int:
    github = Path(args[0])
    findings: list[str] = []
    jobs_by_workflow: dict[str, set[str]] = {}
    for file in sorted((github / "workflows").glob("*.y*ml")):
        doc = yaml.safe_load(file.read_text())
        if "permissions" not in doc:
            findings.append(
                f"{file.name}: no top-level permissions (least privilege: declare them, `contents: read` at most)"
            )
        jobs = doc.get("jobs", {})
        jobs_by_workflow[file.stem] = {job.get("name", key) for key, job in jobs.items()}
        for key, job in jobs.items():
            uses = [job["uses"]] if "uses" in job else [s["uses"] for s in job.get("steps", []) if "uses" in s]
            for ref in uses:
                if not (ref.startswith(("./", "docker://")) or PINNED.match(ref)):
                    findings.append(f"{file.name}: job {key}: `{ref}` is not pinned to a commit SHA")
    codeowners = github / "CODEOWNERS"
    if not codeowners.exists():
        findings.append(".github/CODEOWNERS is missing")
    else:
        repo = github.parent
        for n, line in enumerate(codeowners.read_text().splitlines(), 1):
            if line.strip() and not line.startswith("#"):
                pattern, *owners = line.split()
                if not owners:
                    findings.append(f"CODEOWNERS:{n}: {pattern} has no owner")
                if "*" not in pattern and not (repo / pattern.strip("/")).exists():
                    findings.append(f"CODEOWNERS:{n}: {pattern} matches nothing")
    protection = github.parent / "deploy" / "github" / "branch-protection.json"
    rules = json.loads(protection.read_text())
    required = set(rules["required_status_checks"]["contexts"])
    missing = required - jobs_by_workflow.get("ci", set())
    findings += [f"{protection.name}: required check {c!r} is no job of ci.yml" for c in sorted(missing)]
    return _fail(findings, "GitHub configuration")


# ---- checkov skips carry reasons ----

SKIP = re.compile(r"checkov:skip=(CKV\w*_\d+)(.*)")
ANNOTATION_SKIP = re.compile(r"checkov\.io/skip\d+:\s*(CKV\w*_\d+)(.*)")


def skips(args: list[str]) -> int:
    root = Path(args[0])
    findings: list[str] = []
    for folder in (root / "deploy", root / ".github"):
        for file in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix not in (".txt", ".pem")):
            for n, line in enumerate(file.read_text(errors="replace").splitlines(), 1):
                for match in (*SKIP.finditer(line), *ANNOTATION_SKIP.finditer(line)):
                    reason = match.group(2).lstrip(":= ").strip()
                    if len(reason) < 15:
                        findings.append(f"{file.relative_to(root)}:{n}: skip of {match.group(1)} without a reason")
    return _fail(findings, "checkov skips need a reason")


# ---- who reaches what: the public Ingress, the platform's NetworkPolicies (issue 14) ----

# The only paths of the serving API the public Ingress may route: the prediction endpoint and the
# probes a load balancer or uptime check asks. /metrics, /version, /docs, /openapi.json, /reload stay
# inside the cluster.
PUBLIC_PATHS = frozenset({"/predict", "/health", "/ready"})


def public_paths(args: list[str]) -> int:
    findings: list[str] = []
    for file in map(Path, args):
        ingresses = [d for d in _docs(file) if d.get("kind") == "Ingress"]
        if not ingresses:
            findings.append(f"{file}: no Ingress")
        for doc in ingresses:
            where = f"{file.name}: Ingress {doc['metadata']['name']}"
            for rule in doc.get("spec", {}).get("rules", []):
                for entry in rule.get("http", {}).get("paths", []):
                    path, kind = entry.get("path"), entry.get("pathType")
                    if path not in PUBLIC_PATHS or kind != "Exact":
                        findings.append(
                            f"{where}: path {path} ({kind}) is public -- route only {', '.join(sorted(PUBLIC_PATHS))} "
                            "with pathType Exact (deploy/k8s/base/serving-ingress.yaml)"
                        )
    return _fail(findings, "the public Ingress exposes more than the API")


# Each platform service of deploy/terraform/modules/platform, the labels of its pods, its port, and
# the only workloads (by app.kubernetes.io/name) allowed to connect to it.
NAME = "app.kubernetes.io/name"
PLATFORM_SERVICES: dict[str, tuple[dict[str, str], int, frozenset[str]]] = {
    "mlflow": ({NAME: "mlflow"}, 5000, frozenset({"noria-serving", "noria-pipeline"})),
    "postgresql": ({NAME: "postgresql"}, 5432, frozenset({"mlflow", "noria-pipeline"})),
    "redis": ({NAME: "redis"}, 6379, frozenset({"noria-serving", "noria-pipeline"})),
    "seaweedfs-s3": (
        {NAME: "seaweedfs", "app.kubernetes.io/component": "s3"},
        8333,
        frozenset({"mlflow", "noria-serving", "noria-pipeline"}),
    ),
}


def _hcl_value(value: Any, local: dict[str, Any]) -> Any:
    """python-hcl2's value with quotes stripped and ``${local.X}`` references resolved."""
    if isinstance(value, dict):
        return {_unquote(k): _hcl_value(v, local) for k, v in value.items() if not k.startswith("__")}
    if isinstance(value, str):
        ref = re.fullmatch(r"\$\{local\.(\w+)\}", value)
        return _hcl_value(local[ref.group(1)], local) if ref else _unquote(value)
    return value


def platform_policies(args: list[str]) -> int:
    """Every platform service has a NetworkPolicy admitting only its clients, by the labels the
    rendered manifests (args[1:]) really give Noria's pods."""
    import hcl2

    module = Path(args[0])
    local: dict[str, Any] = {}
    text = ""
    for file in sorted(module.glob("*.tf")):
        text += file.read_text()
        for block in hcl2.loads(file.read_text()).get("locals", []):
            local |= {k: v for k, v in block.items() if not k.startswith("__")}
    pod_names = {
        template["metadata"]["labels"].get(NAME)
        for file in args[1:]
        for doc in _docs(Path(file))
        for template in [
            doc.get("spec", {}).get("template")
            or doc.get("spec", {}).get("jobTemplate", {}).get("spec", {}).get("template")
        ]
        if template
    }
    findings: list[str] = []
    if not re.search(
        r'kubernetes_network_policy_v1"\s+"platform"\s*\{\s*for_each\s*=\s*local\.platform_policies', text
    ):
        findings.append(f"{module}: no kubernetes_network_policy_v1 made for each of local.platform_policies")
    policies = _hcl_value(local.get("platform_policies", {}), local)
    for service, (pods, port, allowed) in PLATFORM_SERVICES.items():
        policy = policies.get(service)
        if policy is None:
            findings.append(f"{module}: {service} has no NetworkPolicy (local.platform_policies)")
            continue
        if policy.get("pods") != pods or policy.get("port") != port:
            findings.append(
                f"{module}: {service}'s policy selects {policy.get('pods')} port {policy.get('port')}, "
                f"expected {pods} port {port}"
            )
        clients = {selector.get(NAME) for selector in policy.get("clients", {}).values()}
        if clients != allowed:
            findings.append(f"{module}: {service} admits {sorted(clients)}, expected exactly {sorted(allowed)}")
        unknown = clients - pod_names - {"mlflow"}
        if unknown:
            findings.append(f"{module}: {service} admits {sorted(unknown)}, which no pod of deploy/k8s is labelled")
    return _fail(findings, "platform NetworkPolicies")


SUBCOMMANDS: dict[str, Callable[[list[str]], int]] = {
    "_public_paths": public_paths,
    "_platform_policies": platform_policies,
    "_alike": alike,
    "_kserve": kserve,
    "_terraform": terraform,
    "_workflows": workflows,
    "_skips": skips,
}
