# shellcheck shell=bash
# Sourced by the build scripts: podman's settings for the development and CI machines.
# crun fails on their kernels' hybrid cgroups, so where runc is installed, containers.conf
# (beside this file) selects it, unless CONTAINERS_CONF names another file already.
if [ -z "${CONTAINERS_CONF:-}" ] && command -v runc >/dev/null; then
    CONTAINERS_CONF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/containers.conf
    export CONTAINERS_CONF
fi
