#!/usr/bin/env bash
# Builds an image with podman where no container registry is reachable: on the Python base made
# from Debian's packages (base.sh), with a prebuilt artifact directory as the `artifact` build
# context (so no torch in the build). The container test and build-cuda.sh build this way.
#
#   deploy/docker/build.sh cpu|cuda ARTIFACT_DIR [IMAGE]     # IMAGE: localhost/attnserve:VARIANT
#
# Prints the build time and the image's size. BASE_IMAGE names another base.
set -euo pipefail
cd "$(dirname "$0")/../.."

variant=${1:?usage: deploy/docker/build.sh cpu|cuda ARTIFACT_DIR [IMAGE]}
artifact=${2:?usage: deploy/docker/build.sh cpu|cuda ARTIFACT_DIR [IMAGE]}
image=${3:-localhost/attnserve:$variant}
base=${BASE_IMAGE:-localhost/attnserve-python:3.11-bookworm}
# shellcheck source=deploy/podman/env.sh
source deploy/podman/env.sh

# Only PyPI is reachable, over the host's network; where outbound TLS is re-signed by a local
# authority, pip inside the build must trust the host's CA bundle.
ca=/etc/ssl/certs/ca-certificates.crt
ca_mount=()
if [ -f "$ca" ]; then
    ca_mount=(-v "$ca:$ca:ro")
fi

deploy/docker/base.sh "$base"
start=$(date +%s)
# docker format: an OCI image cannot carry the HEALTHCHECK.
podman build --format docker --network host "${ca_mount[@]}" \
    --build-arg PYTHON_IMAGE="$base" --build-context artifact="$artifact" \
    -f "deploy/docker/Dockerfile.$variant" -t "$image" .
echo "built $image in $(($(date +%s) - start)) s: $(podman image inspect --format '{{.Size}}' "$image") bytes"
