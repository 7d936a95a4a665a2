#!/usr/bin/env bash
# Builds the CUDA image with podman on the Debian-made base (deploy/docker/build.sh) and checks
# it: no registry needed, only Debian's mirrors and PyPI. Not part of CI: the image is 3 GB.
#
#   deploy/docker/build-cuda.sh ARTIFACT_DIR [IMAGE]     # IMAGE: localhost/attnserve:cuda
#   GPU=1 deploy/docker/build-cuda.sh ARTIFACT_DIR       # also serve on the host's GPU
#
# Checks, without a GPU: onnxruntime lists CUDAExecutionProvider; every library the CUDA
# provider links resolves inside the image, except the driver's libcuda.so.1, which the NVIDIA
# container toolkit mounts from the host; with provider=auto the server starts and reports
# SERVING (on the CPU). With GPU=1 (needs the NVIDIA container toolkit's CDI specification):
# SERVING with provider=cuda, and /metrics must name CUDAExecutionProvider.
# Prints the build time, the image's size and each check.
set -euo pipefail
cd "$(dirname "$0")/../.."

artifact=${1:?usage: deploy/docker/build-cuda.sh ARTIFACT_DIR [IMAGE]}
image=${2:-localhost/attnserve:cuda}
# shellcheck source=deploy/podman/env.sh
source deploy/podman/env.sh

deploy/docker/build.sh cuda "$artifact" "$image"

in_image() {  # one command in a throwaway container of the image
    podman run --rm --read-only --user 10001 --network none --no-healthcheck \
        --entrypoint "$1" "$image" "${@:2}"
}

echo "== providers"
providers=$(in_image python -c 'import onnxruntime as ort; print(ort.__version__, ort.get_available_providers())')
echo "$providers"
grep -q CUDAExecutionProvider <<<"$providers"

echo "== libraries of the CUDA provider (libcuda.so.1 comes from the host's driver)"
missing=$(in_image sh -c 'ldd /opt/venv/lib/python3.11/site-packages/onnxruntime/capi/libonnxruntime_providers_cuda.so' \
    | grep 'not found' | grep -v 'libcuda\.so\.1' || true)
if [ -n "$missing" ]; then
    echo "unresolved: $missing" >&2
    exit 1
fi
echo "all resolve"

serve_and_check() {  # NAME PROVIDER [podman run options]: wait for SERVING, show the provider
    local name=$1 provider=$2
    local port=${PORT:-50071} metrics=${METRICS_PORT:-50072}
    podman run -d --rm --name "$name" --read-only --user 10001 --network host \
        -e ATTNSERVE_PORT="$port" -e ATTNSERVE_METRICS_PORT="$metrics" \
        -e ATTNSERVE_PROVIDER="$provider" "${@:3}" "$image" >/dev/null
    for _ in $(seq 1 120); do
        if podman healthcheck run "$name" >/dev/null 2>&1; then
            python3 -c 'import sys, urllib.request as u; print(*[l for l in u.urlopen(sys.argv[1]).read().decode().splitlines() if l.startswith("attnserve_model_info")])' \
                "http://127.0.0.1:$metrics/metrics"
            podman kill --signal TERM "$name" >/dev/null
            return 0
        fi
        sleep 1
    done
    podman logs "$name" >&2
    podman kill "$name" >/dev/null
    return 1
}

echo "== provider=auto without a GPU serves on the CPU"
serve_and_check attnserve-cuda-check auto

if [ "${GPU:-0}" = 1 ]; then
    echo "== provider=cuda on the GPU"
    served=$(serve_and_check attnserve-cuda-gpu cuda --device nvidia.com/gpu=all)
    echo "$served"
    grep -q 'provider="CUDAExecutionProvider"' <<<"$served"
fi
echo "CUDA image $image: checks passed"
