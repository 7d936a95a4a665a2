#!/usr/bin/env bash
# Regenerates the images' lock files from pyproject.toml, exact versions with hashes, for
# CPython 3.11 on x86-64 Linux (the images' Python):
#
#   deploy/docker/lock.sh               # needs uv (in the dev extra) and PyPI
#
# requirements-cpu.lock    the serving install: pyproject's [project] dependencies
# requirements-cuda.lock   the same with onnxruntime-gpu and CUDA 13's runtime libraries from
#                          PyPI (its cuda and cudnn extras) in place of onnxruntime
# requirements-build.lock  the build backend that makes the attnserve wheel
set -euo pipefail
cd "$(dirname "$0")"
root=../..
uv=${UV:-$(command -v uv || echo "$root/.venv/bin/uv")}
# The version verified on an H200 (see docs/images.md); CUDA 13.
ONNXRUNTIME_GPU="onnxruntime-gpu[cuda,cudnn]==1.31.1"

compile() {
    "$uv" pip compile --quiet --generate-hashes --python-version 3.11 \
        --python-platform x86_64-manylinux_2_28 --custom-compile-command deploy/docker/lock.sh \
        "$@"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

compile "$root/pyproject.toml" -o requirements-cpu.lock
# An override whose marker never matches removes onnxruntime; onnxruntime-gpu stands in.
echo 'onnxruntime; sys_platform == "never"' >"$work/overrides.txt"
echo "$ONNXRUNTIME_GPU" >"$work/gpu.in"
compile "$root/pyproject.toml" "$work/gpu.in" --override "$work/overrides.txt" \
    -o requirements-cuda.lock
python3 -c 'import sys, tomllib; print(*tomllib.load(open(sys.argv[1], "rb"))["build-system"]["requires"], sep="\n")' \
    "$root/pyproject.toml" >"$work/build.in"
compile "$work/build.in" -o requirements-build.lock
