"""Rendered Kubernetes pods run as processes on this machine: a small kubelet for the rehearsal.

No Kubernetes API server or container runtime can run here, so test_cluster_rehearsal.py runs the
pods of ``kubectl kustomize deploy/k8s/overlays/prod`` with the Linux primitives a runtime uses
(pod_init.py is each pod's PID 1, in its own mount, network, PID and UTS namespaces: its host
name is the pod's name):

- the **image** is the Dockerfile's final stage as far as a process sees it: its ``ENV`` (parsed
  from deploy/docker/*.Dockerfile, build args filled in: the commit, the ``uv.lock`` hash, the
  version), its ``WORKDIR`` and ``ENTRYPOINT``, ``/app/project`` (a copy of the project the
  Dockerfile copies) and ``/app/.venv`` (this environment), read-only;
- the **pod** is the manifest: the container's command and args with ``$(VAR)`` expanded, its
  environment (ConfigMaps and Secrets resolved, the kubelet's ``KUBERNETES_SERVICE_*`` and
  ``HOSTNAME`` added), its volumes (emptyDir folders, ConfigMap files by subPath) at their mount
  paths, a read-only root, the service-account token when the pod mounts one;
- the **cluster network** is ``/etc/hosts`` naming each service (``mlflow``, ``redis``, ...) and a
  relay: the pod connects to ``mlflow:5000`` on its own loopback, the relay carries that through
  a unix socket to the real server this test started on some free port (:class:`Bridge`).

Nothing in a command, an argument or an environment value is rewritten: only the services'
addresses differ, as on any cluster. Pods run as this test's user (root), not as the manifest's
``runAsUser``; resource limits are not enforced.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
POD_INIT = Path(__file__).with_name("pod_init.py")
KUBERNETES_SERVICE_IP = "10.96.0.1"  # the API service's address in every pod (kubeadm's default)
_VAR = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # a base image's PATH


# -- the images ----------------------------------------------------------------------------------


@dataclass
class Image:
    """What a container of this image sees: its environment, folders and entry point."""

    env: dict[str, str]
    workdir: str
    entrypoint: list[str]
    cmd: list[str]
    project: Path  # the copy of the project the image holds at /app/project


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _expand(value: str, known: Mapping[str, str]) -> str:
    """``$NAME`` / ``${NAME}`` as Docker expands them in ENV (unknown names are empty)."""
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: known.get(m.group(1), ""), value)


def image_from_dockerfile(dockerfile: Path, build_args: Mapping[str, str], project: Path) -> Image:
    """The final stage of ``dockerfile`` (and the stages it is built FROM), as a process sees it."""
    stages: dict[str, dict[str, Any]] = {}
    current: dict[str, Any] = {}
    args: dict[str, str] = {}
    for word, rest in _instructions(dockerfile):
        if word == "FROM":
            parts = rest.split()
            base = stages.get(parts[0], {"env": {"PATH": _DEFAULT_PATH}, "workdir": "/", "entrypoint": [], "cmd": []})
            current = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
            if len(parts) == 3 and parts[1].upper() == "AS":
                stages[parts[2]] = current
            args = {}
        elif word == "ARG":
            name, _, default = rest.partition("=")
            args[name] = build_args.get(name, default)
        elif word == "ENV":
            for pair in shlex.split(rest):
                name, _, value = pair.partition("=")
                current["env"][name] = _expand(value, {**args, **current["env"]})
        elif word == "WORKDIR":
            current["workdir"] = rest
        elif word in ("ENTRYPOINT", "CMD"):
            current[word.lower()] = json.loads(rest)
    return Image(
        env=dict(current["env"]),
        workdir=current["workdir"],
        entrypoint=current["entrypoint"],
        cmd=current["cmd"],
        project=project,
    )


def build_args() -> dict[str, str]:
    """The build args deploy/docker's `make docker-build` passes, for this checkout."""

    def git(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()

    import tomllib

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    return {
        "GIT_COMMIT": git("rev-parse", "HEAD"),
        "GIT_DIRTY": "true" if git("status", "--porcelain", "--untracked-files=no") else "false",
        "UV_LOCK_SHA256": hashlib.sha256((ROOT / "uv.lock").read_bytes()).hexdigest(),
        "VERSION": version,
    }


# -- the network ---------------------------------------------------------------------------------


class Bridge:
    """Host side of the pods' network: one unix socket per service, relayed to its real port."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="pod-bridge", daemon=True)
        self._thread.start()
        self._servers: list[asyncio.AbstractServer] = []

    def add(self, name: str, port: int) -> str:
        path = str(self.folder / f"{name}.sock")

        async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                writer.close()
                return
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        async def start() -> None:
            self._servers.append(await asyncio.start_unix_server(relay, path))

        asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        return path

    def close(self) -> None:
        async def stop() -> None:
            for server in self._servers:
                server.close()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


# -- the pods ------------------------------------------------------------------------------------


@dataclass
class Service:
    host: str  # the name pods use (a Service's name)
    port: int  # the port pods use
    local_port: int  # where the real server listens on this machine
    address: str = "127.0.0.1"  # the address the name resolves to inside pods


@dataclass
class Pod:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path
    sockets: dict[int, str] = field(default_factory=dict)  # container port -> unix socket on the host
    work: Path | None = None  # the pod's folder: its volumes (emptyDir) live there

    def init_pid(self) -> int | None:
        """The host PID of the pod's PID 1 (pod_init.py), the child of ``unshare``."""
        with contextlib.suppress(OSError, ValueError):
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
            return int(children[0]) if children else None
        return None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: ``unshare`` dies, the kernel SIGKILLs its child (PID 1), and with it the whole pod."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def terminate(self, grace: float = 30.0) -> int:
        """A pod's graceful stop: SIGTERM to the container (through PID 1), SIGKILL after ``grace``."""
        pid = self.init_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        try:
            return self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill()
            return -9


class Kubelet:
    """Runs the containers of rendered manifests as processes (see the module docstring)."""

    def __init__(
        self,
        docs: list[dict[str, Any]],
        images: Mapping[str, Image],
        secrets: Mapping[str, str],
        services: list[Service],
        folder: Path,
        pycache: Path,
        service_account: Mapping[str, str] | None = None,
    ) -> None:
        self.docs = docs
        self.images = dict(images)
        self.secrets = dict(secrets)
        self.services = services
        self.folder = folder
        self.pycache = pycache
        pycache.mkdir(parents=True, exist_ok=True)
        self.service_account = dict(service_account or {})
        # Unix socket paths are short (108 bytes): the bridge lives in its own folder under /tmp.
        self._sockets = Path(tempfile.mkdtemp(prefix="noria-pods-"))
        self.bridge = Bridge(self._sockets)
        self._relays = [
            {"address": s.address, "port": s.port, "socket": self.bridge.add(f"{s.host}-{s.port}", s.local_port)}
            for s in services
        ]
        folder.mkdir(parents=True, exist_ok=True)
        self._hosts = folder / "hosts"
        names: dict[str, list[str]] = {}
        for s in services:
            if not s.host[0].isdigit():  # an address is not a name
                names.setdefault(s.address, []).append(s.host)
        lines = ["127.0.0.1 localhost"] + [f"{a} {' '.join(dict.fromkeys(n))}" for a, n in names.items()]
        self._hosts.write_text("\n".join(lines) + "\n")
        self.pods: list[Pod] = []
        self._count = 0

    # -- the container as the kubelet builds it ------------------------------------------------

    def config_maps(self) -> dict[str, dict[str, str]]:
        return {d["metadata"]["name"]: d.get("data", {}) for d in self.docs if d["kind"] == "ConfigMap"}

    def container_env(self, container: Mapping[str, Any]) -> dict[str, str]:
        maps = self.config_maps()
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            env.update(maps[source["configMapRef"]["name"]])
        for item in container.get("env", []):
            if "value" in item:
                env[item["name"]] = _VAR.sub(lambda m: env.get(m.group(1), m.group(0)), str(item["value"]))
            else:
                ref = item["valueFrom"]["secretKeyRef"]
                if ref["key"] in self.secrets:
                    env[item["name"]] = self.secrets[ref["key"]]
                else:  # as the kubelet: an optional key the Secret lacks leaves the variable unset
                    assert ref.get("optional"), f"{item['name']}: the Secret has no key {ref['key']}"
        return env

    def _image(self, container: Mapping[str, Any]) -> Image:
        name = str(container["image"]).rsplit("/", 1)[-1].split(":")[0].split("@")[0]
        return self.images[name]

    def _mounts(
        self, spec: Mapping[str, Any], container: Mapping[str, Any], image: Image, work: Path
    ) -> list[dict[str, Any]]:
        venv = Path(sys.prefix).resolve()
        system = ["/usr", "/etc", sys.base_prefix, str(venv), str(ROOT), str(self.pycache), str(self._sockets)]
        mounts = [
            {"source": p, "path": p, "read_only": p not in (str(self.pycache), str(self._sockets))}
            for p in dict.fromkeys(system)
        ]
        mounts.append({"source": "/dev", "path": "/dev", "read_only": False})
        mounts.append({"source": str(image.project), "path": "/app/project", "read_only": True})
        mounts.append({"source": str(venv), "path": "/app/.venv", "read_only": True})
        mounts.append({"source": str(self._hosts), "path": "/etc/hosts", "read_only": True})
        maps = self.config_maps()
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for mount in container.get("volumeMounts", []):
            volume = volumes[mount["name"]]
            if "emptyDir" in volume:
                source = work / "volumes" / mount["name"]
                source.mkdir(parents=True, exist_ok=True)
            elif "configMap" in volume:
                data = maps[volume["configMap"]["name"]]
                source = work / "configmaps" / mount["name"] / mount.get("subPath", "")
                source.parent.mkdir(parents=True, exist_ok=True)
                if mount.get("subPath"):
                    source.write_text(data[mount["subPath"]])
                else:
                    source.mkdir(parents=True, exist_ok=True)
                    for key, value in data.items():
                        (source / key).write_text(value)
            else:
                raise AssertionError(f"volume {mount['name']}: only emptyDir and configMap are rehearsed")
            mounts.append({"source": str(source), "path": mount["mountPath"], "read_only": bool(mount.get("readOnly"))})
        return mounts

    def start(
        self, name: str, pod_spec: Mapping[str, Any], *, expose: tuple[int, ...] = (), restart_of: Pod | None = None
    ) -> Pod:
        """Start the pod's (single) container; returns at once.

        ``restart_of``: the container of that (dead) pod is restarted, as the kubelet does after a
        kill: same pod, same emptyDir volumes, a new process.
        """
        [container] = pod_spec["containers"]
        image = self._image(container)
        if restart_of is not None:
            assert restart_of.work is not None and restart_of.proc.poll() is not None
            work = restart_of.work
            shutil.rmtree(work / "root")
        else:
            self._count += 1
            work = self.folder / f"{self._count:02d}-{name}"
        root = work / "root"
        root.mkdir(parents=True)
        for link in ("bin", "lib", "lib64", "sbin"):  # merged /usr: the top-level folders are links
            target = Path("/") / link
            if target.is_symlink():
                (root / link).symlink_to(os.readlink(target))
        (root / "home" / "noria").mkdir(parents=True)
        env = dict(image.env) | {
            "HOSTNAME": name,
            "KUBERNETES_SERVICE_HOST": KUBERNETES_SERVICE_IP,
            "KUBERNETES_SERVICE_PORT": "443",
            "PYTHONPYCACHEPREFIX": str(self.pycache),  # the image's compiled bytecode, shared
        }
        env |= self.container_env(container)
        argv = [
            *(container.get("command") or image.entrypoint),
            *(container.get("args") or ([] if container.get("command") else image.cmd)),
        ]
        argv = [_VAR.sub(lambda m: env.get(m.group(1), m.group(0)), a) for a in argv]
        files = {}
        if pod_spec.get("automountServiceAccountToken") and self.service_account:
            account = "/var/run/secrets/kubernetes.io/serviceaccount"
            files = {f"{account}/{k}": v for k, v in self.service_account.items()}
        sockets = {port: str(self._sockets / f"{name}-{port}.sock") for port in expose}
        spec = {
            "root": str(root),
            "mounts": self._mounts(pod_spec, container, image, work),
            "files": files,
            "addresses": sorted({s.address for s in self.services} - {"127.0.0.1"}),
            "services": self._relays,
            "exposed": [{"port": p, "socket": s} for p, s in sockets.items()],
            "argv": argv,
            "env": env,
            "working_dir": container.get("workingDir") or image.workdir,
            "hostname": name,
        }
        (work / "pod.json").write_text(json.dumps(spec, indent=1))
        log = work / ("pod.log" if restart_of is None else f"pod-restart-{time.time_ns()}.log")
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    "unshare",
                    "--mount",
                    "--net",
                    "--pid",
                    "--uts",
                    "--fork",
                    "--kill-child=SIGKILL",
                    "--propagation",
                    "private",
                    sys.executable,
                    str(POD_INIT),
                    str(work / "pod.json"),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            )
        pod = Pod(name=name, proc=proc, log=log, sockets=sockets, work=work)
        self.pods.append(pod)
        return pod

    def run(self, name: str, pod_spec: Mapping[str, Any], timeout: float = 900.0) -> Pod:
        """Run the pod to completion; fails the test with its log when the container fails."""
        pod = self.start(name, pod_spec)
        try:
            code = pod.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pod.kill()
            raise AssertionError(f"pod {name} ran over {timeout:.0f} s:\n{pod.output()[-6000:]}") from None
        assert code == 0, f"pod {name} failed (exit {code}):\n{pod.output()[-8000:]}"
        return pod

    def close(self) -> None:
        for pod in self.pods:
            if pod.proc.poll() is None:
                pod.terminate(20)
        self.bridge.close()
        shutil.rmtree(self._sockets, ignore_errors=True)


def render_overlay(name: str = "prod") -> list[dict[str, Any]]:
    """``kubectl kustomize deploy/k8s/overlays/NAME`` with the pinned kubectl of `make lint`."""
    import yaml

    sys.path.insert(0, str(ROOT / "scripts"))
    import check_deploy  # the pinned tools of `make lint` (made on first use, from deploy/requirements-check.txt)

    kubectl = check_deploy._deploy_tools() / "kubectl"
    out = subprocess.run(
        [str(kubectl), "kustomize", str(ROOT / "deploy" / "k8s" / "overlays" / name)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def pod_spec_of(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    """The pod template's spec of a CronJob, Job or Deployment."""
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return doc["spec"]["template"]["spec"]


@contextlib.contextmanager
def kubelet(**kwargs: Any) -> Iterator[Kubelet]:
    runner = Kubelet(**kwargs)
    try:
        yield runner
    finally:
        runner.close()


def wait_ready(pod: Pod, port: int, path: str = "/ready", timeout: float = 180.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    with httpx.Client(transport=httpx.HTTPTransport(uds=pod.sockets[port]), base_url="http://pod") as client:
        while True:
            try:
                if client.get(path, timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if pod.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"pod {pod.name} not ready (exit {pod.proc.poll()}):\n{pod.output()[-6000:]}")
            time.sleep(0.5)
