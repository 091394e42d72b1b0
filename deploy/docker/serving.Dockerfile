# The serving image: `noria serve` (FastAPI under uvicorn) on port 8000, as a non-root user.
#
# Build from the repository root (the context is the repository; .dockerignore keeps it small):
#   docker build -f deploy/docker/serving.Dockerfile \
#     --build-arg GIT_COMMIT="$(git rev-parse HEAD)" \
#     --build-arg UV_LOCK_SHA256="$(sha256sum uv.lock | cut -d' ' -f1)" -t noria-serving:dev .
# Build arguments: BASE_IMAGE (any Debian-based Python 3.11 image; scripts/docker_base.sh makes
# one where no registry can be reached), INSTALL_EXTRAS (extras from pyproject.toml), PROJECT_DIR
# (the project baked in at /app/project; Kubernetes mounts its noria.yaml from a ConfigMap),
# EXTRA_CA_BUNDLE (see extra-ca.pem), GIT_COMMIT, VERSION, CREATED, SOURCE_URL (OCI labels),
# GIT_DIRTY (true when built from a tree with uncommitted changes) and UV_LOCK_SHA256
# (`sha256sum uv.lock`). GIT_COMMIT, GIT_DIRTY, UV_LOCK_SHA256 and VERSION (as IMAGE_VERSION) are
# also environment variables, which Noria records on every run and snapshot made in the image
# (there is no git checkout in it) and shows in /version (noria.provenance.image_provenance).
# Dependencies are exactly those of uv.lock (`uv sync --frozen`); nothing is resolved here.
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
# Dependencies first (the slow layer, cached while only src/ changes), then Noria itself.
RUN set --; for e in ${INSTALL_EXTRAS}; do set -- "$@" --extra "$e"; done \
    && /opt/uv/bin/uv sync --frozen --no-dev --no-install-project "$@"
COPY README.md ./
COPY src/ src/
# The project templates of `noria init` travel inside the wheel (pyproject's force-include).
COPY examples/ examples/
RUN set --; for e in ${INSTALL_EXTRAS}; do set -- "$@" --extra "$e"; done \
    && /opt/uv/bin/uv sync --frozen --no-dev --no-editable "$@" \
    && /app/.venv/bin/noria --version

# ---- the image ----
FROM ${BASE_IMAGE} AS serving
ARG GIT_COMMIT=unknown
ARG GIT_DIRTY=unknown
ARG UV_LOCK_SHA256=unknown
ARG VERSION=0.1.0
ARG CREATED=unknown
ARG SOURCE_URL=unknown
ARG PROJECT_DIR=examples/flights
LABEL org.opencontainers.image.title="noria-serving" \
      org.opencontainers.image.description="Noria model serving API (noria serve)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.revision="${GIT_COMMIT}" \
      io.noria.git.dirty="${GIT_DIRTY}" \
      io.noria.uv-lock.sha256="${UV_LOCK_SHA256}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="${SOURCE_URL}"
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# libgomp1: OpenMP for LightGBM. Exact apt versions are not pinned (hadolint DL3008): the
# base tag fixes the Debian release, and Debian drops superseded versions from its mirror.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 noria \
    && useradd --system --uid 10001 --gid noria --home-dir /home/noria --create-home \
        --shell /usr/sbin/nologin noria \
    && mkdir -p /app/project/.noria && chown noria:noria /app/project/.noria
# Everything the process reads is root-owned; it writes only to /tmp and the project's .noria
# (emptyDir volumes on Kubernetes, where the root file system is read-only).
# GIT_COMMIT, GIT_DIRTY, UV_LOCK_SHA256, IMAGE_VERSION (not NORIA_*, which are config overrides)
# tell the running code which code and lock it is.
# DVC keeps its site cache (repository locks, index) under /var and fontconfig its cache under
# $HOME by default, both read-only in a pod: /tmp is the pod's writable emptyDir (found by
# tests/integration/test_cluster_rehearsal.py).
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 \
    NORIA_PROJECT_DIR=/app/project \
    GIT_COMMIT=${GIT_COMMIT} GIT_DIRTY=${GIT_DIRTY} \
    UV_LOCK_SHA256=${UV_LOCK_SHA256} IMAGE_VERSION=${VERSION} \
    HOME=/home/noria MPLCONFIGDIR=/tmp/matplotlib \
    MLFLOW_DISABLE_TELEMETRY=true DVC_NO_ANALYTICS=1 \
    DVC_SITE_CACHE_DIR=/tmp/dvc-site-cache XDG_CACHE_HOME=/tmp/.cache
WORKDIR /app/project
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
ENTRYPOINT ["noria"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
# The large copies come last: every instruction after them would copy the whole tree again
# on copy-on-write-less storage drivers (vfs).
COPY ${PROJECT_DIR}/ /app/project/
COPY --from=builder /app/.venv /app/.venv
