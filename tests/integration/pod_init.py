"""PID 1 of a rehearsal pod (pod_support.py): the container's file system, network and process.

Started by ``unshare --mount --net --pid --uts --fork`` with one argument, a JSON spec written by
pod_support.py. In its own namespaces it does what a kubelet and a container runtime do:

1. brings up the pod's loopback and gives it the cluster addresses the pod talks to (the
   Kubernetes API service's IP), since a new network namespace has nothing;
2. builds the container's root file system in ``spec.root``: the host's system folders and the
   image's parts (its project, its environment) bound read-only, the pod's volumes (emptyDir
   folders, ConfigMap files mounted by subPath) bound read-write at their mount paths, ``/etc/hosts``
   naming the cluster's services, the service-account token when the pod mounts one, a fresh
   ``/proc``; the root itself read-only, as ``readOnlyRootFilesystem: true`` asks;
3. relays the pod's network: each service port the pod connects to (``mlflow:5000``,
   ``redis:6379``, ...) is a listener on the pod's loopback whose connections go through a unix
   socket to the host side (pod_support.Bridge), and each container port is reachable from the
   host through a unix socket (the only thing both network namespaces share is the file system);
4. chroots, runs the container's command with its environment and working folder, forwards
   SIGTERM to it (a pod's graceful stop) and exits with its exit code.

SIGKILL of this process (the host kills the ``unshare`` parent, whose death signal is SIGKILL)
ends every process of the pod at once, as a container runtime's kill does.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from pod_support import pipe  # this script's folder is first on sys.path


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def _bind(source: str, target: Path, *, read_only: bool) -> None:
    if not target.exists():  # under a read-only bind the mount point must exist already
        if Path(source).is_dir():
            target.mkdir(parents=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.touch()
    _mount("--rbind", source, str(target))
    if read_only:
        _mount("-o", "remount,bind,ro", str(target))


def build_root(spec: dict[str, Any]) -> Path:
    root = Path(spec["root"])
    _mount("--make-rprivate", "/")
    _mount("--bind", str(root), str(root))  # its own mount, so it can be made read-only below
    # Parents before children: a volume at /work before a host folder bound at /work/main.
    for mount in sorted(spec["mounts"], key=lambda m: m["path"].count("/")):
        _bind(mount["source"], root / mount["path"].lstrip("/"), read_only=mount["read_only"])
    for path, text in spec.get("files", {}).items():  # the service-account token and friends
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    (root / "proc").mkdir(exist_ok=True)
    _mount("-t", "proc", "proc", str(root / "proc"))
    if spec.get("read_only_root", True):
        _mount("-o", "remount,bind,ro", str(root))
    return root


async def _join(client: tuple[asyncio.StreamReader, asyncio.StreamWriter], connect: Any) -> None:
    reader, writer = client
    try:
        up_reader, up_writer = await connect()
    except OSError:
        writer.close()
        return
    await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


async def _relay(services: list[dict[str, Any]], exposed: list[dict[str, Any]], ready: threading.Event) -> None:
    servers = []
    for service in services:  # pod -> host: a TCP listener in the pod, a unix socket on the host

        async def to_host(r: Any, w: Any, sock: str = service["socket"]) -> None:
            await _join((r, w), lambda: asyncio.open_unix_connection(sock))

        servers.append(await asyncio.start_server(to_host, service["address"], service["port"]))
    for port in exposed:  # host -> pod: a unix socket on the host, the container's port in the pod

        async def to_pod(r: Any, w: Any, number: int = port["port"]) -> None:
            await _join((r, w), lambda: asyncio.open_connection("127.0.0.1", number))

        servers.append(await asyncio.start_unix_server(to_pod, port["socket"]))
    ready.set()
    await asyncio.gather(*(s.serve_forever() for s in servers))


def main(spec_file: str) -> int:
    spec = json.loads(Path(spec_file).read_text())
    socket.sethostname(spec["hostname"])  # a pod's host name is its name
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for address in spec.get("addresses", []):
        subprocess.run(["ip", "addr", "add", f"{address}/32", "dev", "lo"], check=True)
    root = build_root(spec)
    ready = threading.Event()
    threading.Thread(target=asyncio.run, args=(_relay(spec["services"], spec["exposed"], ready),), daemon=True).start()
    if not ready.wait(30):
        print("pod_init: the network relay did not start", file=sys.stderr)
        return 125
    os.chroot(root)
    os.chdir(spec["working_dir"])
    child = subprocess.Popen(spec["argv"], env=spec["env"])
    signal.signal(signal.SIGTERM, lambda *_: child.send_signal(signal.SIGTERM))
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            return child.wait()
        except InterruptedError:  # pragma: no cover - PEP 475 retries; kept for clarity
            continue


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
