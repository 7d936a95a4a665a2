#!/usr/bin/env bash
# Builds a Python base image from Debian's own packages, for machines that reach Debian's
# mirrors and PyPI but no container registry (the tests and the CUDA build script use it):
#
#   deploy/docker/base.sh [IMAGE]       # default: localhost/attnserve-python:3.11-bookworm
#
# then build with `--build-arg PYTHON_IMAGE=IMAGE`. The image holds Debian 12's python3 (3.11)
# with venv support, CA certificates and nothing else; pip comes from `python3 -m venv`, as in
# the Dockerfiles. It stands in for python:3.11-slim-bookworm. Needs root, debootstrap and
# podman; about 40 s and 300 MB of downloads. An image already in the store is kept (delete it
# to rebuild). DEBIAN_MIRROR picks the mirror (default: deb.debian.org).
set -euo pipefail

image=${1:-localhost/attnserve-python:3.11-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if podman image exists "$image"; then
    echo "base image $image is in the store"
    exit 0
fi

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || { cat "$rootfs.log" >&2; exit 1; }
rm -f "$rootfs.log"
# What slim images leave out: package lists and caches, documentation.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
tar -C "$rootfs" -c . | podman import --quiet \
    --change 'CMD ["python3"]' --change 'ENV LANG=C.UTF-8' - "$image" >/dev/null
echo "built base image $image ($(podman image inspect --format '{{.Size}}' "$image") bytes)"
