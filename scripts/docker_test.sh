#!/usr/bin/env bash
# `make docker-test`: build the serving (and pipeline-runner) images on a local Docker engine,
# run them, and check that they work: the entry point, the non-root user, a read-only root
# file system, the OCI labels, then /health, /version, /ready and one /predict through
# scripts/smoke_test.sh. The dev container (.devcontainer/devcontainer.json) is built as its
# build section says and the editor's tools (noria, ruff, pytest) run in it on the workspace.
#
#   scripts/docker_test.sh [PROJECT_DIR]
#
# PROJECT_DIR (or DOCKER_TEST_PROJECT): a prepared Noria project (noria.yaml and a trained,
# registered model in its local MLflow store). It is mounted at the same absolute path, since
# MLflow records absolute artifact paths. Without one, scripts/local_stack.py starts the
# platform's services here (PostgreSQL + MLflow server, SeaweedFS's S3, Redis), the pipeline image
# runs the loop's CronJob commands against them with the cluster profile (pull, ingest, features,
# the training pipeline; about two minutes), and the serving image must serve the champion that
# training promoted, from the MLflow server (with PIPELINE=0: `noria demo --until 3` on this
# machine, served with its local profile). DOCKER_TEST_PROJECT=none skips the HTTP checks.
# Environment:
#   BASE_IMAGE   base of both images; default: noria-base:bookworm, built by
#                scripts/docker_base.sh from Debian's mirror when no registry can be pulled
#                from (set python:3.11-slim-bookworm where Docker Hub is reachable)
#   PIPELINE=0   skip the pipeline-runner image
#   DEVCONTAINER=0  skip the dev container (.devcontainer/devcontainer.json's build section, built
#                with this machine's BASE_IMAGE, then noria, ruff and pytest run inside it)
#   KEEP_DOCKER_DATA=1  keep the private engine's data (a sparse file: re-runs use the build cache)
# If no Docker engine answers, the script installs Debian's docker.io (as root) and starts a
# private dockerd (no bridge: containers use the host network) on its own socket, with its data
# on a loop-mounted ext4 image (overlay2; vfs where that cannot be mounted), then stops it by
# PID, unmounts what it mounted and removes the image.
set -euo pipefail

main() {
    cd "$(dirname "$0")/.."
    ROOT=$PWD

    PROJECT=${1:-${DOCKER_TEST_PROJECT:-}}
    BASE_IMAGE=${BASE_IMAGE:-noria-base:bookworm}
    PIPELINE=${PIPELINE:-1}
    STATE=$ROOT/.tools/docker
    PRIVATE_ROOT=/var/lib/noria-docker-test
    PRIVATE_EXEC=/run/noria-docker-test
    PRIVATE_SOCK=unix://$PRIVATE_EXEC/docker.sock
    # The private engine's data lives in a sparse ext4 file system image, loop-mounted: overlay2
    # works on it (vfs would copy the whole image for every layer and container), and cleaning
    # up is one unmount and one file removal.
    PRIVATE_IMAGE=/var/lib/noria-docker-test.img
    TAG=noria-test
    COMMIT=$(git rev-parse HEAD 2>/dev/null || echo unknown)
    # The code version baked into both images (build arguments -> labels + environment variables).
    LOCK_SHA256=$(sha256sum uv.lock | cut -d' ' -f1)
    if [[ -n $(git status --porcelain --untracked-files=no 2>/dev/null) ]]; then DIRTY=true; else DIRTY=false; fi
    CONTAINER=noria-docker-test-$$
    dockerd_pid=
    SECONDS=0

    log() { echo "docker-test: $*"; }

    cleanup() {
        local rc=$?
        if [[ -n ${DOCKER:-} ]]; then
            $DOCKER rm -f "$CONTAINER" >/dev/null 2>&1 || true
        fi
        if [[ -n ${dev_pid:-} ]]; then  # the dev container check, when something else failed first
            kill "$dev_pid" 2>/dev/null || true
            wait "$dev_pid" 2>/dev/null || true
        fi
        if [[ -n ${stack_pid:-} ]]; then  # the local services (scripts/local_stack.py stops its own)
            kill -TERM "$stack_pid" 2>/dev/null || true
            wait "$stack_pid" 2>/dev/null || true
        fi
        if [[ -n $dockerd_pid ]]; then
            log "stopping the private dockerd (pid $dockerd_pid)"
            kill "$dockerd_pid" 2>/dev/null || true
            for _ in $(seq 60); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 1; done
            kill -9 "$dockerd_pid" 2>/dev/null || true
            # What dockerd (and its containerd) mounted under its own roots, deepest first; the
            # data root itself last (a loop-mounted file system, when overlay2 was used).
            mount | awk -v a="$PRIVATE_ROOT" -v b="$PRIVATE_EXEC" 'index($3, a) == 1 || index($3, b) == 1 { print $3 }' \
                | sort -r | while read -r point; do umount "$point" 2>/dev/null || umount -l "$point" 2>/dev/null || true; done
            if [[ ${KEEP_DOCKER_DATA:-0} != 1 ]]; then
                rm -rf "$PRIVATE_EXEC"
                if [[ -f $PRIVATE_IMAGE ]]; then rm -f "$PRIVATE_IMAGE"; rmdir "$PRIVATE_ROOT" 2>/dev/null || true
                else rm -rf "$PRIVATE_ROOT"; fi
            fi
        fi
        log "finished in ${SECONDS}s (exit $rc)"
    }
    trap cleanup EXIT

    # ---- an engine ----
    # Debian's docker CLI (20.10) runs BuildKit without the buildx plugin; newer CLIs need buildx.
    if [[ -x /usr/bin/docker ]]; then DOCKER=/usr/bin/docker; else DOCKER=$(command -v docker || true); fi
    if [[ -z $DOCKER ]] || ! $DOCKER info >/dev/null 2>&1; then
        if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
            [[ $(id -u) == 0 ]] || { log "no Docker engine and not root -- fix: start Docker, or run as root"; exit 1; }
            log "installing Debian's docker.io and debootstrap"
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null
            DOCKER=/usr/bin/docker
        fi
        mkdir -p "$PRIVATE_ROOT" "$PRIVATE_EXEC" "$STATE"
        driver=vfs
        if ! mountpoint -q "$PRIVATE_ROOT"; then
            [[ -f $PRIVATE_IMAGE ]] || { truncate -s 60G "$PRIVATE_IMAGE" && mkfs.ext4 -q -F "$PRIVATE_IMAGE"; }
            mount -o loop "$PRIVATE_IMAGE" "$PRIVATE_ROOT" 2>/dev/null || rm -f "$PRIVATE_IMAGE"
        fi
        mountpoint -q "$PRIVATE_ROOT" && driver=overlay2
        log "starting a private dockerd ($driver, host network) on $PRIVATE_SOCK"
        dockerd --storage-driver=$driver --bridge=none --iptables=false --ip-masq=false \
            --data-root "$PRIVATE_ROOT" --exec-root "$PRIVATE_EXEC" --pidfile "$PRIVATE_EXEC/dockerd.pid" \
            --host "$PRIVATE_SOCK" >"$STATE/dockerd-test.log" 2>&1 &
        dockerd_pid=$!
        export DOCKER_HOST=$PRIVATE_SOCK
        for _ in $(seq 60); do $DOCKER info >/dev/null 2>&1 && break; sleep 1; done
        $DOCKER info >/dev/null 2>&1 || { tail -20 "$STATE/dockerd-test.log"; exit 1; }
    fi
    export DOCKER

    # ---- the project the container serves ----
    # With the pipeline image, the project is made by it: `noria init` here (a copy of the
    # reference project, a git repository), then ingest, features and training run in the
    # pipeline image (below) and the serving image serves the model it trained.
    STACK=0
    if [[ -z $PROJECT ]]; then
        PROJECT=$STATE/project
        mkdir -p "$STATE"
        rm -rf "$PROJECT"
        if [[ $PIPELINE == 1 ]]; then
            # The services of deploy/compose on this machine (PostgreSQL + MLflow server, SeaweedFS's
            # S3, Redis): the images run against them with the cluster profile, on the host network.
            STACK=1
            PROJECT=
            "$ROOT/.venv/bin/python" scripts/local_stack.py "$STATE/stack" >"$STATE/stack.log" 2>&1 &
            stack_pid=$!
        else
            log "preparing a project with a champion in $PROJECT (noria demo --until 3)"
            "$ROOT/.venv/bin/noria" demo --dir "$PROJECT" --until 3 >"$STATE/prepare-project.log" 2>&1 \
                || { tail -40 "$STATE/prepare-project.log"; exit 1; }
            log "project ready ($((SECONDS))s so far)"
        fi
    elif [[ $PROJECT == none ]]; then
        PROJECT=
    fi

    # ---- the base image ----
    if [[ $BASE_IMAGE == noria-base:bookworm ]]; then
        scripts/docker_base.sh "$BASE_IMAGE"
    fi

    # ---- build ----
    # The host's CA bundle goes to its own path in the build context (networks that inspect TLS);
    # only the discarded builder stage reads it.
    mkdir -p "$STATE"
    cp "${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}" "$STATE/build-ca.pem" 2>/dev/null || : >"$STATE/build-ca.pem"
    build() { # NAME
        local start=$SECONDS
        log "building $TAG/$1 from $BASE_IMAGE"
        DOCKER_BUILDKIT=1 $DOCKER build --network host --progress plain \
            -f "deploy/docker/$1.Dockerfile" \
            --build-arg BASE_IMAGE="$BASE_IMAGE" \
            --build-arg EXTRA_CA_BUNDLE=.tools/docker/build-ca.pem \
            --build-arg GIT_COMMIT="$COMMIT" --build-arg GIT_DIRTY="$DIRTY" \
            --build-arg UV_LOCK_SHA256="$LOCK_SHA256" \
            --build-arg CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
            -t "$TAG/$1:latest" . >"$STATE/build-$1.log" 2>&1 || { tail -40 "$STATE/build-$1.log"; exit 1; }
        log "built $TAG/$1 in $((SECONDS - start))s, $($DOCKER image inspect --format '{{.Size}}' "$TAG/$1:latest" | awk '{printf "%.0f MB", $1/1e6}')"
    }
    images=(serving)
    [[ $PIPELINE == 1 ]] && images+=(pipeline)
    for image in "${images[@]}"; do build "$image"; done

    # ---- what every image must be ----
    # Each container start copies the whole image on the vfs driver (minutes on a busy machine),
    # so every image runs exactly once: the static checks, then (serving) the server itself.
    for image in "${images[@]}"; do
        ref=$TAG/$image:latest
        user=$($DOCKER image inspect --format '{{.Config.User}}' "$ref")
        revision=$($DOCKER image inspect --format '{{index .Config.Labels "org.opencontainers.image.revision"}}' "$ref")
        health=$($DOCKER image inspect --format '{{if .Config.Healthcheck}}{{.Config.Healthcheck.Test}}{{end}}' "$ref")
        [[ $user == 10001:10001 ]] || { log "$ref runs as '$user', expected 10001:10001"; exit 1; }
        [[ $revision == "$COMMIT" ]] || { log "$ref label revision '$revision', expected $COMMIT"; exit 1; }
        lock_label=$($DOCKER image inspect --format '{{index .Config.Labels "io.noria.uv-lock.sha256"}}' "$ref")
        [[ $lock_label == "$LOCK_SHA256" ]] || { log "$ref label uv-lock.sha256 '$lock_label', expected $LOCK_SHA256"; exit 1; }
        [[ -n $health ]] || { log "$ref has no HEALTHCHECK"; exit 1; }
        log "$ref: user $user, revision ${revision:0:12}, healthcheck set"
    done
    # ---- the dev container: .devcontainer/devcontainer.json's build, as the editor builds it ----
    # It needs only the images above, so it builds and runs while the pipeline image trains below
    # (its output is printed when it is waited for, before the serving image runs).
    dev_pid=""
    if [[ ${DEVCONTAINER:-1} == 1 ]]; then
        devcontainer_check >"$STATE/dev-check.log" 2>&1 &
        dev_pid=$!
    fi
    # Both run with a read-only root file system and only /tmp (and the state folder) writable,
    # as on Kubernetes.
    readonly_run=(--network host --read-only --tmpfs /tmp --tmpfs /app/project/.noria:uid=10001,gid=10001)
    if [[ $PIPELINE == 1 ]]; then
        # What Noria reads inside the image (no git checkout there): the commit and lock of the build,
        # which every run and snapshot made in a pod records.
        code=$($DOCKER run --rm "${readonly_run[@]}" --entrypoint /bin/sh "$TAG/pipeline:latest" \
            -c 'noria --version >&2 && noria pipeline --help >/dev/null && echo "noria pipeline --help: ok" >&2 &&
                python -c "import json; from pathlib import Path; from noria.provenance import code_version; print(json.dumps(code_version(Path.cwd())))"')
        log "$TAG/pipeline: code version $code"
        check_code "$TAG/pipeline" "$code"
    fi
    if [[ $STACK == 1 ]]; then
        for _ in $(seq 300); do [[ -f $STATE/stack/ready.json ]] && break; kill -0 "$stack_pid" 2>/dev/null || break; sleep 1; done
        [[ -f $STATE/stack/ready.json ]] || { tail -30 "$STATE/stack.log"; log "the local services did not start"; exit 1; }
        log "$(tail -1 "$STATE/stack.log")"
        # What deploy/k8s gives the pods (NORIA_PROFILE=cluster, the services' addresses, S3 keys), as -e options.
        mapfile -t stack_env < <(python3 -c 'import json, sys
for k, v in json.load(open(sys.argv[1]))["env"].items(): print("-e"); print(f"{k}={v}")' "$STATE/stack/ready.json")
        # The loop's first steps exactly as the CronJobs run them (deploy/k8s/base/loop-cronjobs.yaml):
        # a copy of the image's project on a writable folder, pull, ingest, features, training.
        local start=$SECONDS
        log "$TAG/pipeline: ingest, features and training against the local services"
        # Two tuning trials instead of the project's ten: CI-sized (the trials' count changes no
        # command; tests/integration/test_cluster_rehearsal.py runs the project's own settings).
        $DOCKER run --rm "${readonly_run[@]}" "${stack_env[@]}" -e NORIA_PROJECT_DIR=/tmp/project \
            -e NORIA_TRAINING__TRIALS=2 \
            --entrypoint /bin/sh "$TAG/pipeline:latest" \
            -c 'cp -R /app/project/. "$NORIA_PROJECT_DIR" && cd "$NORIA_PROJECT_DIR" && noria data pull &&
                noria data ingest && noria features apply &&
                noria features materialize --until 2013-07-01T00:00:00Z && noria pipeline run training --quiet' \
            >"$STATE/train-in-image.log" 2>&1 || { tail -40 "$STATE/train-in-image.log"; log "the pipeline image could not train"; exit 1; }
        # The champion it promoted, from the MLflow server: the serving image must serve that run's model.
        TRAINED_RUN=$(stack_run "$ROOT/.venv/bin/noria" --project examples/flights models list --json | python3 -c '
import json, sys
runs = [v["run_id"] for m in json.load(sys.stdin) for v in m["versions"] if "champion" in v["aliases"]]
print(runs[0] if runs else "")')
        [[ -n $TRAINED_RUN ]] || { tail -20 "$STATE/train-in-image.log"; log "no @champion after the pipeline image's training"; exit 1; }
        log "$TAG/pipeline: trained and promoted run ${TRAINED_RUN:0:12} in $((SECONDS - start))s"
    fi

    if [[ -n $dev_pid ]]; then
        wait "$dev_pid" || { cat "$STATE/dev-check.log"; log "the dev container check failed"; exit 1; }
        dev_pid=""
        cat "$STATE/dev-check.log"
    fi

    ref=$TAG/serving:latest
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    run=(--detach --name "$CONTAINER" "${readonly_run[@]}" -e NORIA_API_KEYS=docker-test-key-0123456789)
    if [[ $STACK == 1 ]]; then
        # The image's own project with the cluster profile: the champion from the MLflow server,
        # features from Redis, the prediction log shipped to s3://noria-data/predictions.
        run+=("${stack_env[@]}")
    elif [[ -n $PROJECT ]]; then
        PROJECT=$(cd "$PROJECT" && pwd)
        # The prepared project's owner runs the server, so that its MLflow store is writable.
        run+=(-v "$PROJECT:$PROJECT" -e NORIA_PROJECT_DIR="$PROJECT" --user "$(stat -c %u:%g "$PROJECT")")
    fi
    # Without a project (DOCKER_TEST_PROJECT=none) the container only proves the entry point and
    # says so (`noria serve` refuses to start without a registered model).
    if [[ -n $PROJECT || $STACK == 1 ]]; then then_serve="echo SERVING; exec noria serve --host 127.0.0.1 --port $port"; else then_serve="echo NO-PROJECT"; fi
    logged_before=0
    if [[ -n $PROJECT || $STACK == 1 ]]; then logged_before=$(count_log_files "$PROJECT"); fi
    $DOCKER run "${run[@]}" --entrypoint /bin/sh "$ref" -c "
        noria --version || exit 3
        $then_serve" >/dev/null
    for _ in $(seq 900); do
        logs=$($DOCKER logs "$CONTAINER" 2>&1)
        [[ $logs == *SERVING* || $logs == *NO-PROJECT* ]] && break
        [[ $($DOCKER inspect --format '{{.State.Running}}' "$CONTAINER") == false ]] && break
        sleep 1
    done
    log "$ref: read-only run: $(echo "$logs" | head -1)"
    [[ $logs == noria* ]] || { echo "$logs" >&2; log "$ref: \`noria --version\` failed"; exit 1; }
    if [[ -z $PROJECT && $STACK == 0 ]]; then
        log "SKIPPED the HTTP checks (DOCKER_TEST_PROJECT=none): noria serve needs a project with a registered model"
        exit 0
    fi
    log "serving on 127.0.0.1:$port (container $CONTAINER)"
    if ! SMOKE_API_KEY=docker-test-key-0123456789 scripts/smoke_test.sh "http://127.0.0.1:$port"; then
        $DOCKER logs --tail 50 "$CONTAINER" >&2
        exit 1
    fi
    version=$(python3 -c 'import json, sys, urllib.request; print(json.dumps(json.load(urllib.request.urlopen(sys.argv[1]))))' "http://127.0.0.1:$port/version")
    check_code "$ref /version" "$(echo "$version" | python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin)["code"]))')"
    if [[ -n ${TRAINED_RUN:-} ]]; then
        served_run=$(echo "$version" | python3 -c 'import json, sys; print(json.load(sys.stdin)["run_id"])')
        [[ $served_run == "$TRAINED_RUN" ]] || { log "$ref serves run $served_run, not $TRAINED_RUN (the pipeline image's)"; exit 1; }
        log "$ref serves the model the pipeline image trained (run ${served_run:0:12})"
    fi
    # docker stop sends SIGTERM: the service flushes its prediction log, written by the log's writer
    # process inside the read-only container; the smoke requests must be in a new file.
    $DOCKER stop --time 60 "$CONTAINER" >/dev/null
    logged_after=$(count_log_files "$PROJECT")
    if (( logged_after <= logged_before )); then
        $DOCKER logs --tail 50 "$CONTAINER" >&2
        log "the prediction log has no new file after SIGTERM (${PROJECT:+$PROJECT/.noria/predictions}${PROJECT:-s3://noria-data/predictions})"
        exit 1
    fi
    log "prediction log: $((logged_after - logged_before)) new file(s) written on SIGTERM${PROJECT:- and shipped to s3://noria-data/predictions}"
    log "ok: the serving image builds, runs read-only as non-root, serves predictions and logs them"
}

devcontainer_check() {  # build the image the editor's container is, then use it as the editor would
    local start=$SECONDS spec=.devcontainer/devcontainer.json ref=$TAG/dev:latest out user shell
    local -a build_args run_args
    # The build section (dockerfile, context, target, args), with this machine's base image and CA
    # bundle as for the images above: the builder and runtime layers are theirs, from the cache.
    out=$(python3 scripts/devcontainer_build.py build "$spec" "$ref" \
        BASE_IMAGE="$BASE_IMAGE" EXTRA_CA_BUNDLE=.tools/docker/build-ca.pem) || exit 1
    mapfile -t build_args <<<"$out"
    log "building $ref as $spec says: docker build ${build_args[*]}"
    DOCKER_BUILDKIT=1 $DOCKER build --network host --progress plain "${build_args[@]}" \
        >"$STATE/build-dev.log" 2>&1 || { tail -40 "$STATE/build-dev.log"; exit 1; }
    log "built $ref in $((SECONDS - start))s, $($DOCKER image inspect --format '{{.Size}}' "$ref" | awk '{printf "%.0f MB", $1/1e6}')"
    user=$($DOCKER image inspect --format '{{.Config.User}}' "$ref")
    [[ $user == 10001:10001 ]] || { log "$ref runs as '$user', expected 10001:10001"; exit 1; }
    # The workspace mount, working folder, containerEnv and remoteUser of the file; a login shell,
    # as the editor's terminals and its postCreateCommand get.
    out=$(python3 scripts/devcontainer_build.py run "$spec") || exit 1
    mapfile -t run_args <<<"$out"
    shell=$($DOCKER run --rm --entrypoint getent "$ref" passwd noria | cut -d: -f7)
    [[ $shell == /bin/bash ]] || { log "$ref: the user noria has the shell '$shell', expected /bin/bash"; exit 1; }
    out=$($DOCKER run --rm --network host "${run_args[@]}" --entrypoint /bin/bash "$ref" -lc '
        set -e
        noria --version; ruff --version; pytest --version; mypy --version
        python -c "import noria, os; assert noria.__file__.startswith(os.getcwd() + \"/src/\"), noria.__file__; print(\"noria imported from the workspace:\", noria.__file__)"
        ruff check --no-cache src/noria/_kit scripts/devcontainer_build.py
        ruff format --no-cache --check src/noria/_kit scripts/devcontainer_build.py
        pytest -q -p no:cacheprovider tests/unit/test_devcontainer.py' 2>&1) \
        || { echo "$out" | tail -40 >&2; log "$ref: the editor's tools failed in the dev container"; exit 1; }
    echo "$out" | sed 's/^/docker-test: dev: /'
    log "ok: the dev container builds from $spec and runs noria, ruff and pytest on the workspace ($((SECONDS - start))s)"
}

check_code() {  # WHAT JSON: the code version Noria reports must be the build's commit and lock
    python3 - "$1" "$2" "$COMMIT" "$LOCK_SHA256" <<'PY' || exit 1
import json, sys
what, code, commit, lock = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
if code.get("git_commit") != commit or code.get("uv_lock_sha256") != lock:
    sys.exit(f"docker-test: {what} reports code {code}, expected commit {commit} and uv.lock {lock}")
print(f"docker-test: {what}: commit {commit[:12]}, uv.lock {lock[:12]}: ok")
PY
}

stack_run() {  # COMMAND...: run a host command with the local services' environment (scripts/local_stack.py)
    env $(python3 -c 'import json, sys
print(" ".join(f"{k}={v}" for k, v in json.load(open(sys.argv[1]))["env"].items()))' "$STATE/stack/ready.json") "$@"
}

count_log_files() {  # Parquet files of a prediction log: a project's folder, or (none given) the local S3 bucket
    if [[ -z $1 ]]; then
        stack_run "$ROOT/.venv/bin/python" -c 'import boto3
pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket="noria-data", Prefix="predictions/")
print(sum(1 for page in pages for o in page.get("Contents", []) if o["Key"].endswith(".parquet")))'
        return
    fi
    { find "$1/.noria/predictions" -name '*.parquet' 2>/dev/null || true; } | wc -l
}

main "$@"
