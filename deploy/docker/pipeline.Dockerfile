# The pipeline-step runner image: one container runs one step of a Noria pipeline, e.g.
#   noria pipeline run training --step train --run-id 2024-07-01T00-00
# as a Kubernetes Job/CronJob, or one KubernetesPodOperator task of the generated Airflow DAG.
#
# Build from the repository root:
#   docker build -f deploy/docker/pipeline.Dockerfile \
#     --build-arg GIT_COMMIT="$(git rev-parse HEAD)" \
#     --build-arg UV_LOCK_SHA256="$(sha256sum uv.lock | cut -d' ' -f1)" -t noria-pipeline:dev .
# Build arguments as in serving.Dockerfile. The builder stage is the same on purpose: both
# images hold exactly the environment of uv.lock, so a model is served by the code that trained it.
# The `dev` target is the editor's container (.devcontainer/devcontainer.json): this image's
# runtime with the whole locked environment (dev group included); `make docker-test` builds it.
ARG BASE_IMAGE=python:3.11-slim-bookworm
#checkov:skip=CKV_DOCKER_7:The base is a build argument whose default, python:3.11-slim-bookworm, is a fixed tag

# ---- builder: the locked virtual environment in /app/.venv (discarded after the copy) ----
FROM ${BASE_IMAGE} AS builder
ARG INSTALL_EXTRAS="redis cluster"
ARG EXTRA_CA_BUNDLE=deploy/docker/extra-ca.pem
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PIP_CERT=/build/ca.pem SSL_CERT_FILE=/build/ca.pem REQUESTS_CA_BUNDLE=/build/ca.pem \
    UV_PYTHON_DOWNLOADS=never UV_PYTHON=python3 UV_PROJECT_ENVIRONMENT=/app/.venv \
    UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_NO_CACHE=1
WORKDIR /src
COPY deploy/docker/uv-requirements.txt /build/
COPY ${EXTRA_CA_BUNDLE} /build/extra-ca.pem
# The CA bundle lives at its own path: apt would overwrite /etc/ssl/certs/ca-certificates.crt.
RUN cat /etc/ssl/certs/ca-certificates.crt /build/extra-ca.pem > /build/ca.pem \
    && python3 -m venv /opt/uv \
    && /opt/uv/bin/pip install --no-compile --require-hashes -r /build/uv-requirements.txt
COPY pyproject.toml uv.lock ./
RUN set --; for e in ${INSTALL_EXTRAS}; do set -- "$@" --extra "$e"; done \
    && /opt/uv/bin/uv sync --frozen --no-dev --no-install-project "$@"
COPY README.md ./
COPY src/ src/
# The project templates of `noria init` travel inside the wheel (pyproject's force-include).
COPY examples/ examples/
RUN set --; for e in ${INSTALL_EXTRAS}; do set -- "$@" --extra "$e"; done \
    && /opt/uv/bin/uv sync --frozen --no-dev --no-editable "$@" \
    && /app/.venv/bin/noria --version

# ---- dev-env: the whole of uv.lock (every extra and the dev group: pytest, ruff, mypy, ...) ----
# Only the dev target below reads it: the same layers as the builder above, then what `make`
# installs on a workstation (uv sync --frozen --all-extras --group dev), nothing resolved here.
FROM builder AS dev-env
RUN /opt/uv/bin/uv sync --frozen --all-extras --group dev --no-editable \
    && /app/.venv/bin/pytest --version && /app/.venv/bin/ruff --version

# ---- runtime: what the pipeline image and the dev container share ----
FROM ${BASE_IMAGE} AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# libgomp1: OpenMP for LightGBM; git: DVC and the lineage records read the project's history.
# Exact apt versions are not pinned (hadolint DL3008): the base tag fixes the Debian release,
# and Debian drops superseded versions from its mirror.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 git \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 noria \
    && useradd --system --uid 10001 --gid noria --home-dir /home/noria --create-home \
        --shell /usr/sbin/nologin noria \
    && mkdir -p /app/project/.noria /app/project/data \
    && chown noria:noria /app/project/.noria /app/project/data
# DVC keeps its site cache (repository locks, index) under /var and fontconfig its cache under
# $HOME by default, both read-only in a pod: /tmp is the pod's writable emptyDir (found by
# tests/integration/test_cluster_rehearsal.py).
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    NORIA_PROJECT_DIR=/app/project \
    HOME=/home/noria MPLCONFIGDIR=/tmp/matplotlib \
    MLFLOW_DISABLE_TELEMETRY=true DVC_NO_ANALYTICS=1 \
    DVC_SITE_CACHE_DIR=/tmp/dvc-site-cache XDG_CACHE_HOME=/tmp/.cache
WORKDIR /app/project

# ---- dev: the editor's container (.devcontainer/devcontainer.json builds this target) ----
#   docker build -f deploy/docker/pipeline.Dockerfile --target dev -t noria-dev .
# The pipeline image's runtime with uv.lock's whole environment; the source is the workspace the
# editor mounts (its src/ comes first on PYTHONPATH), so no code is copied in.
FROM runtime AS dev
# A login shell for the editor's terminals (the pipeline image's user has none), and the locked
# environment first on its PATH (Debian's /etc/profile resets PATH in login shells).
RUN usermod --shell /bin/bash noria \
    && echo "export PATH=/app/.venv/bin:\$PATH" > /etc/profile.d/noria-venv.sh
# No project is baked in: Noria finds the nearest noria.yaml from the working folder (an empty
# value counts as unset).
ENV NORIA_PROJECT_DIR=
COPY --from=dev-env /app/.venv /app/.venv
USER 10001:10001
CMD ["sleep", "infinity"]

# ---- the image (the default target: the last stage) ----
FROM runtime AS pipeline
ARG GIT_COMMIT=unknown
ARG GIT_DIRTY=unknown
ARG UV_LOCK_SHA256=unknown
ARG VERSION=0.1.0
ARG CREATED=unknown
ARG SOURCE_URL=unknown
ARG PROJECT_DIR=examples/flights
LABEL org.opencontainers.image.title="noria-pipeline" \
      org.opencontainers.image.description="Noria pipeline-step runner (noria pipeline run)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      io.noria.git.dirty="${GIT_DIRTY}" \
      io.noria.uv-lock.sha256="${UV_LOCK_SHA256}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE_URL}"
ENV GIT_COMMIT=${GIT_COMMIT} GIT_DIRTY=${GIT_DIRTY} \
    UV_LOCK_SHA256=${UV_LOCK_SHA256} IMAGE_VERSION=${VERSION}
USER 10001:10001
# A batch container serves nothing: the check is that the entry point starts.
HEALTHCHECK --interval=60s --timeout=10s --retries=3 CMD ["noria", "--version"]
ENTRYPOINT ["noria"]
CMD ["pipeline", "--help"]
# The large copies come last (see serving.Dockerfile).
COPY ${PROJECT_DIR}/ /app/project/
COPY --from=builder /app/.venv /app/.venv
