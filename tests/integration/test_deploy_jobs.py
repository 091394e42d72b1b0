"""The loop's CronJobs in deploy/k8s, checked offline against Noria itself.

No Kubernetes API server can run here (no cluster, no kind: no privileges for it), so the
manifests are proven with their own tools and with Noria's: the prod overlay is rendered with
``kubectl kustomize`` (the pinned kubectl of scripts/check_deploy.py; `make lint` also runs
kubernetes-validate and checkov on it), then for every CronJob of the pipeline image
- its shell script is expanded by a real ``sh`` with the container's environment (ConfigMaps and
  Secrets resolved as the kubelet would, secrets replaced by placeholders), and every ``noria``
  command in it is parsed by Noria's own CLI (an unknown command or option fails here);
- its environment is given to ``load_project`` on the project the ConfigMap carries
  (examples/flights): every NORIA_* variable must be a real configuration key with a valid value.
Running the pods themselves against real services, in the order a cluster would, is
test_cluster_rehearsal.py.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
from pod_support import render_overlay

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration

LOOP = {"noria-ingest", "noria-features", "noria-training", "noria-monitoring"}
# The data remote's own endpoint and read-only identity (pre-production reads production's data):
# variable -> key of noria-secrets, optional (production's Secret has none of them: one store).
DATA_REMOTE = {
    "NORIA_DATA_S3_ENDPOINT_URL": "s3-data-endpoint-url",
    "NORIA_DATA_S3_ACCESS_KEY_ID": "s3-data-access-key-id",
    "NORIA_DATA_S3_SECRET_ACCESS_KEY": "s3-data-secret-access-key",
}
_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    return render_overlay("prod")


def _container_env(container: dict[str, Any], docs: list[dict[str, Any]]) -> dict[str, str]:
    """The container's environment as the kubelet builds it: envFrom ConfigMaps, then env in order,
    with $(VAR) references to earlier variables expanded; secrets are placeholders."""
    maps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        name = source["configMapRef"]["name"]
        assert name in maps, f"envFrom names ConfigMap {name}, which the overlay does not render"
        env.update(maps[name])
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), str(item["value"]))
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            assert ref["name"] == "noria-secrets", item
            env[item["name"]] = f"secret-{ref['key']}"
    return env


def _cronjobs(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "CronJob"}


def _noria_commands(script: str, env: dict[str, str], tmp: Path) -> list[list[str]]:
    """The ``noria`` commands of a container's script, each expanded by sh as the container would."""
    commands = []
    for segment in (s.strip() for s in script.split("&&")):
        words = shlex.split(segment)
        if words[0] in ("cp", "cd"):
            continue
        assert words[0] == "noria", f"not a noria command: {segment!r}"
        done = subprocess.run(
            ["sh", "-c", f'set -- {segment}; printf "%s\\0" "$@"'],
            env=env | {"PATH": "/usr/bin:/bin"},
            cwd=tmp,
            capture_output=True,
            text=True,
            check=True,
        )
        commands.append(done.stdout.split("\0")[1:-1])  # without "noria"
    return commands


def _parse(argv: list[str]) -> str:
    """Parse ``noria ARGV`` with the CLI's own parser (nothing runs); the full command name."""
    from noria.cli import app

    command: Any = typer.main.get_command(app)  # typer's own click: groups are known by resolve_command
    ctx = command.make_context("noria", list(argv))
    names = []
    while hasattr(command, "resolve_command"):
        rest = [*ctx._protected_args, *ctx.args]
        name, sub, args = command.resolve_command(ctx, rest)
        assert sub is not None and name is not None, argv
        names.append(name)
        ctx = sub.make_context(name, args, parent=ctx)
        command = sub
    return " ".join(names)


def test_every_part_of_the_loop_has_a_cronjob_running_real_noria_commands(
    rendered: list[dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from noria.config import RESERVED_ENV, load_project
    from noria.data.versioning import project_remote
    from noria.s3 import Identity

    jobs = _cronjobs(rendered)
    assert set(jobs) >= LOOP, f"missing: {LOOP - set(jobs)}"
    seen: dict[str, list[str]] = {}
    for name in sorted(LOOP):
        spec = jobs[name]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        [container] = spec["containers"]
        assert container["image"].startswith("ghcr.io/noria-mlops/noria-pipeline:")
        assert container["command"] == ["/bin/sh", "-c"]
        env = _container_env(container, rendered)
        assert env["NORIA_PROFILE"] == "cluster" and env["NORIA_PROJECT_DIR"] == "/work/project"
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert "/work" in mounts and "/app/project/noria.yaml" in mounts  # a writable copy, the deployed config
        commands = _noria_commands(container["args"][0], env, tmp_path)
        seen[name] = [_parse(argv) for argv in commands]
        assert seen[name][0] == "data pull", f"{name}: a pod starts with no snapshot; pull first"
        # every NORIA_* variable is a real key of the deployed project's configuration
        overrides = {k: v for k, v in env.items() if k.startswith("NORIA_") and k != "NORIA_PROJECT_DIR"}
        assert set(DATA_REMOTE) <= set(overrides), name
        project = load_project(ROOT / "examples" / "flights", environ=overrides)
        assert project.profile == "cluster"
        assert str(project.config.storage.dvc_remote).startswith("s3://")
        assert project.config.serving.prediction_log.remote == "s3://noria-data/predictions"
        # the data remote's own variables: optional keys of noria-secrets, reserved names (no config
        # key), and what the DVC remote and the snapshot records use when the Secret has them
        refs = {i["name"]: i["valueFrom"]["secretKeyRef"] for i in container["env"] if "valueFrom" in i}
        for var, key in DATA_REMOTE.items():
            assert refs.get(var) == {"name": "noria-secrets", "key": key, "optional": True}, (name, var)
        with monkeypatch.context() as mp:
            for var in DATA_REMOTE:
                mp.setenv(var, env[var])
            remote = project_remote(project)
        assert remote.endpoint_url == "secret-s3-data-endpoint-url" and remote.own_endpoint, name
        assert remote.identity == Identity("secret-s3-data-access-key-id", "secret-s3-data-secret-access-key")
    assert set(DATA_REMOTE) <= RESERVED_ENV
    assert seen == {
        "noria-ingest": ["data pull", "data ingest"],
        "noria-features": ["data pull", "features apply", "features materialize"],
        "noria-training": ["data pull", "pipeline run"],
        "noria-monitoring": ["data pull", "monitor drift", "monitor feedback", "monitor run"],
    }
    suspended = {name for name in LOOP if jobs[name]["spec"].get("suspend")}
    assert suspended == {"noria-ingest", "noria-training"}  # started on demand (data arrives, train.yml)
    assert jobs["noria-features"]["spec"]["schedule"].split()[1] == "*"  # hourly


def test_the_materialize_time_is_the_pod_clock_in_utc(rendered: list[dict[str, Any]], tmp_path: Path) -> None:
    from noria.features.online import parse_time

    container = _cronjobs(rendered)["noria-features"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][
        0
    ]
    env = _container_env(container, rendered)
    [*_, materialize] = _noria_commands(container["args"][0], env, tmp_path)
    until = materialize[materialize.index("--until") + 1]
    before = datetime.now(UTC)
    moment = parse_time(until)
    assert before <= moment <= datetime.now(UTC) and moment.utcoffset() == timedelta(0), until


def test_a_command_the_cli_does_not_know_is_caught() -> None:
    """The parser above can fail: a misspelt option or command is refused."""
    assert _parse(["monitor", "drift", "--window", "latest"]) == "monitor drift"
    with pytest.raises(Exception, match="No such option: --windw"):
        _parse(["monitor", "drift", "--windw", "latest"])
    with pytest.raises(Exception, match="No such command 'pul'"):
        _parse(["data", "pul"])


def test_serving_reads_redis_and_ships_its_log(rendered: list[dict[str, Any]]) -> None:
    from noria.config import load_project

    [deployment] = [d for d in rendered if d["kind"] == "Deployment" and d["metadata"]["name"] == "noria-serving"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    env = _container_env(container, rendered)
    assert env["NORIA_FEATURES__ONLINE_STORE__CONNECTION_STRING"] == "redis:6379,password=secret-redis-password"
    overrides = {k: v for k, v in env.items() if k.startswith("NORIA_") and k != "NORIA_API_KEYS"}
    project = load_project(ROOT / "examples" / "flights", environ=overrides)
    assert project.config.serving.prediction_log.remote == "s3://noria-data/predictions"
