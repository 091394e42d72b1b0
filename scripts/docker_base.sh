#!/usr/bin/env bash
# Make a local stand-in for python:3.11-slim when no registry can be pulled from:
# Debian bookworm (which ships Python 3.11) built by debootstrap and loaded with `docker import`.
#
#   scripts/docker_base.sh [TAG]      (default noria-base:bookworm; needs root, debootstrap, docker)
#
# The root file system is cached as a tarball in DOCKER_BASE_CACHE (default
# ~/.cache/noria/docker: outside the work tree, so fresh clones on the same machine, CI's
# included, reuse it); a second run only re-imports it (seconds). Delete the tarball to
# rebuild it from Debian's mirror.
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=${1:-noria-base:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${DOCKER_BASE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/noria/docker}
TARBALL=$CACHE/noria-base-bookworm.tar
# What python:3.11-slim provides that Noria needs: the interpreter with venv/ensurepip and CA
# certificates. libgomp1 (OpenMP, for LightGBM) is installed by the Dockerfile itself.
PACKAGES=python3,python3-venv,ca-certificates

if ${DOCKER:-docker} image inspect "$TAG" >/dev/null 2>&1; then
    echo "docker-base: $TAG is already loaded"
    exit 0
fi

if [[ ! -s $TARBALL ]]; then
    command -v debootstrap >/dev/null || {
        echo "docker-base: debootstrap is missing -- fix: apt-get install -y debootstrap" >&2
        exit 1
    }
    mkdir -p "$CACHE"
    root=$(mktemp -d "$CACHE/rootfs.XXXXXX")
    trap 'rm -rf "$root"' EXIT
    echo "docker-base: debootstrap bookworm (minbase + $PACKAGES) from $MIRROR; a few minutes"
    SECONDS=0
    debootstrap --variant=minbase --include="$PACKAGES" bookworm "$root" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 || {
        tail -20 "$CACHE/debootstrap.log" >&2
        exit 1
    }
    # Slim it like the official slim images: no apt lists, docs, man pages or locales.
    rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb \
        "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/log/*.log
    find "$root"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +
    # `python` as in the official image (Debian only names it python3).
    ln -sf python3 "$root"/usr/bin/python
    # mktemp made the folder 0700, and it becomes the image's "/": a non-root user could not
    # reach anything ("executable file not found").
    chmod 0755 "$root"
    tar --numeric-owner -C "$root" -cf "$TARBALL.tmp" .
    mv "$TARBALL.tmp" "$TARBALL"
    echo "docker-base: root file system built in ${SECONDS}s ($(du -h "$TARBALL" | cut -f1))"
fi

${DOCKER:-docker} import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    --message "Debian bookworm minbase + $PACKAGES (debootstrap), stand-in for python:3.11-slim" \
    "$TARBALL" "$TAG" >/dev/null
echo "docker-base: loaded $TAG"
