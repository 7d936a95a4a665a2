"""Deployment files, checked offline: kustomize renders, Kubernetes schemas, house policies.

There is no cluster and no Docker engine here: manifests are rendered with kubectl's kustomize,
validated against the Kubernetes OpenAPI schemas of a stated version, and held to the rules a
platform team expects; the Dockerfiles are parsed and checked stage by stage.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from attnserve.service.cli import build_parser
from attnserve.service.server.artifact_entries import parse_entries
from attnserve.service.server.settings import Settings
from tests.support import ROOT
from tests.support.deploy import assert_locked_down, render_overlay

DOCKER = ROOT / "deploy/docker"
KUBERNETES_VERSION = "1.33.0"
OVERLAYS = ("cpu", "gpu", "cpu-queue-autoscale")
CRD_KINDS = {"ServiceMonitor"}  # no upstream schema; shape-checked below
GRPC_PORT = 50051

Object = dict[str, Any]


def render(overlay: str) -> list[Object]:
    return [doc for doc in yaml.safe_load_all(render_overlay(overlay)) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[Object]]:
    return request.param, render(request.param)


def one(objects: list[Object], kind: str) -> Object:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def containers(objects: list[Object]) -> list[Object]:
    spec = one(objects, "Deployment")["spec"]["template"]["spec"]
    return list(spec.get("initContainers", [])) + list(spec["containers"])


def test_every_object_validates_strictly(rendered: tuple[str, list[Object]]) -> None:
    _, objects = rendered
    kinds = {o["kind"] for o in objects}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"} <= kinds
    assert {"ConfigMap", "NetworkPolicy", "ServiceAccount", "ServiceMonitor"} <= kinds
    for obj in objects:
        if obj["kind"] in CRD_KINDS:
            continue
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_strict_validation_rejects_a_typo() -> None:
    deployment = one(render("cpu"), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePulPolicy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_service_monitor_scrapes_the_metrics_port(rendered: tuple[str, list[Object]]) -> None:
    _, objects = rendered
    monitor = one(objects, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    ports = {p["name"] for s in objects if s["kind"] == "Service" for p in s["spec"]["ports"]}
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    assert "metrics" in ports


def test_probes_are_grpc_on_the_served_port(rendered: tuple[str, list[Object]]) -> None:
    _, objects = rendered
    (server,) = containers(objects)
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert server[probe]["grpc"]["port"] == GRPC_PORT, probe
    assert server["readinessProbe"]["grpc"]["service"] == "attnserve.v1.Embedder"
    served = {p["containerPort"] for p in server["ports"] if p["name"] == "grpc"}
    config = one(objects, "ConfigMap")["data"]
    assert served == {int(config["ATTNSERVE_PORT"])} == {GRPC_PORT}


def test_each_configured_port_is_served_published_and_admitted(
    rendered: tuple[str, list[Object]],
) -> None:
    """gRPC, the OpenAI HTTP route and /metrics: the ConfigMap's port is the container's named
    port, the ClusterIP Service targets it by name and the NetworkPolicy lets traffic in."""
    _, objects = rendered
    config = one(objects, "ConfigMap")["data"]
    configured = {
        "grpc": int(config["ATTNSERVE_PORT"]),
        "http": int(config["ATTNSERVE_HTTP_PORT"]),
        "metrics": int(config["ATTNSERVE_METRICS_PORT"]),
    }
    (server,) = containers(objects)
    assert {p["name"]: p["containerPort"] for p in server["ports"]} == configured
    services = {s["metadata"]["name"]: s["spec"] for s in objects if s["kind"] == "Service"}
    assert {p["targetPort"] for p in services["attnserve"]["ports"]} == set(configured)
    policy = one(objects, "NetworkPolicy")["spec"]
    admitted = {p["port"] for rule in policy["ingress"] for p in rule["ports"]}
    assert admitted == set(configured.values())


def test_requests_limits_and_security_context(rendered: tuple[str, list[Object]]) -> None:
    _, objects = rendered
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    for container in containers(objects):
        assert_locked_down(container)
    account = one(objects, "ServiceAccount")
    assert account["automountServiceAccountToken"] is False


def test_grace_period_covers_drain_and_shutdown(rendered: tuple[str, list[Object]]) -> None:
    _, objects = rendered
    config = one(objects, "ConfigMap")["data"]
    needed = float(config["ATTNSERVE_DRAIN_DELAY_S"]) + float(config["ATTNSERVE_SHUTDOWN_GRACE_S"])
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > needed


def test_command_and_settings_are_the_real_cli(rendered: tuple[str, list[Object]]) -> None:
    _, objects = rendered
    config = one(objects, "ConfigMap")["data"]
    for key in config:
        assert key.startswith("ATTNSERVE_"), key
        assert key.removeprefix("ATTNSERVE_").lower() in Settings.model_fields, key
    Settings(**{k.removeprefix("ATTNSERVE_").lower(): v for k, v in config.items()
                if k != "ATTNSERVE_ARTIFACT"})  # fmt: skip  # the values validate too
    (server,) = containers(objects)
    assert server["command"][:2] == ["attnserve", "serve"]
    args = build_parser().parse_args(server["command"][1:] + server.get("args", []))
    assert args.command == "serve"


def test_the_configmap_lists_the_models_by_name(rendered: tuple[str, list[Object]]) -> None:
    _, objects = rendered
    listed = parse_entries(one(objects, "ConfigMap")["data"]["ATTNSERVE_ARTIFACT"])
    names = [entry.name for entry in listed]
    assert listed
    assert None not in names  # each model named: the API names do not depend on the image
    assert len(set(names)) == len(names)
    assert all(entry.path.is_absolute() for entry in listed)


def test_images_are_pinned(rendered: tuple[str, list[Object]]) -> None:
    _, objects = rendered
    for container in containers(objects):
        image = container["image"]
        name, _, tag = image.rpartition(":")
        assert name, image
        assert tag, f"{image} has no tag"
        assert tag != "latest"


def test_autoscaler_targets_the_deployment(rendered: tuple[str, list[Object]]) -> None:
    overlay, objects = rendered
    hpa = one(objects, "HorizontalPodAutoscaler")
    deployment = one(objects, "Deployment")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    metric = hpa["spec"]["metrics"][0]
    if overlay == "cpu-queue-autoscale":
        assert metric["type"] == "Pods"
        rules = yaml.safe_load((ROOT / "deploy/prometheus/adapter-rules.yaml").read_text())
        published = {rule["name"]["as"] for rule in rules["rules"]["custom"]}
        assert metric["pods"]["metric"]["name"] in published
    else:
        assert metric["resource"]["name"] == "cpu"


def test_services_headless_and_clusterip(rendered: tuple[str, list[Object]]) -> None:
    _, objects = rendered
    services = {s["metadata"]["name"]: s["spec"] for s in objects if s["kind"] == "Service"}
    assert services["attnserve-headless"]["clusterIP"] == "None"
    assert services["attnserve"]["type"] == "ClusterIP"
    labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    for spec in services.values():
        assert spec["selector"].items() <= labels.items()
        assert any(p["name"] == "grpc" and p["appProtocol"] == "grpc" for p in spec["ports"])
    config = one(objects, "ConfigMap")["data"]
    assert float(config["ATTNSERVE_MAX_CONNECTION_AGE_S"]) > 0  # connections rebalance


def test_the_cpu_budget_covers_the_workers(rendered: tuple[str, list[Object]]) -> None:
    """Workers x intra-op threads fit the CPU limit, and each worker has a core of its own."""
    overlay, objects = rendered
    config = one(objects, "ConfigMap")["data"]
    workers = int(config["ATTNSERVE_WORKERS"])
    threads = int(config["ATTNSERVE_INTRA_OP_THREADS"])
    (server,) = containers(objects)
    cores = int(server["resources"]["limits"]["cpu"])
    assert workers * threads <= cores, overlay
    assert workers <= cores, overlay
    if overlay != "gpu":  # on CPU the threads are the work: use every core
        assert workers * threads == cores, overlay


def test_gpu_overlay_asks_for_a_gpu() -> None:
    objects = render("gpu")
    (server,) = containers(objects)
    assert server["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert server["image"].endswith("-cuda")
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["tolerations"]
    assert pod["nodeSelector"]
    assert one(objects, "ConfigMap")["data"]["ATTNSERVE_PROVIDER"] == "cuda"
    assert int(one(objects, "ConfigMap")["data"]["ATTNSERVE_WORKERS"]) > 1


# --- Dockerfiles ---------------------------------------------------------------------------------


def stages(dockerfile: Path) -> list[list[tuple[str, str]]]:
    """(instruction, arguments) per stage, continuation lines joined, comments dropped."""
    text = dockerfile.read_text().replace("\\\n", " ")
    result: list[list[tuple[str, str]]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        if instruction.upper() == "FROM":
            result.append([])
        if result:
            result[-1].append((instruction.upper(), rest.strip()))
    return result


@pytest.mark.parametrize("name", ["Dockerfile.cpu", "Dockerfile.cuda"])
def test_runtime_stage_is_slim_non_root_and_runs_the_real_cli(name: str) -> None:
    dockerfile = ROOT / "deploy/docker" / name
    *_, runtime = stages(dockerfile)
    text = " ".join(v for _, v in runtime).lower()
    assert "torch" not in text
    assert "[export" not in text
    users = [v for k, v in runtime if k == "USER"]
    assert users
    assert users[-1] not in ("root", "0")
    entry = yaml.safe_load(next(v for k, v in runtime if k == "ENTRYPOINT"))  # exec form: JSON
    command = yaml.safe_load(next(v for k, v in runtime if k == "CMD"))
    assert isinstance(entry, list)
    assert isinstance(command, list)
    assert entry[0] == "attnserve"
    parsed = build_parser().parse_args(entry[1:] + command)
    assert parsed.command == "serve"
    healthcheck = next(v for k, v in runtime if k == "HEALTHCHECK")
    assert "/opt/attnserve/healthcheck.py" in healthcheck
    assert not [v for k, v in runtime if k == "RUN" and "pip" in v]  # it copies /opt/venv


@pytest.mark.parametrize("name", ["Dockerfile.cpu", "Dockerfile.cuda"])
def test_base_images_are_pinned(name: str) -> None:
    text = (ROOT / "deploy/docker" / name).read_text()
    images = [line.split("=", 1)[1] for line in text.splitlines() if line.startswith("ARG ")]
    assert images
    for image in images:
        _, _, tag = image.rpartition(":")
        assert tag
        assert tag != "latest"
        assert any(ch.isdigit() for ch in tag), image


def stage(dockerfile: Path, name: str) -> list[tuple[str, str]]:
    (found,) = [s for s in stages(dockerfile) if s[0][1].endswith(f" AS {name}")]
    return found


@pytest.mark.parametrize("variant", ["cpu", "cuda"])
def test_the_serving_install_comes_only_from_the_lock_files(variant: str) -> None:
    runs = " ".join(v for k, v in stage(DOCKER / f"Dockerfile.{variant}", "serving") if k == "RUN")
    installs = [step for step in runs.split("&&") if " install " in step]
    assert len(installs) == 3, installs
    for step in installs:
        if "/wheels/attnserve-" in step:  # our own wheel: its dependencies are the locked ones
            assert "--no-deps" in step
            continue
        assert "--require-hashes" in step, step
        assert "--no-deps" in step, step  # nothing beyond the lock sneaks in
    assert f"-r requirements-{variant}.lock" in " ".join(runs.split())
    assert "-r requirements-build.lock" in runs


def test_cuda_dockerfile_is_the_cpu_one_with_its_lock_and_provider() -> None:
    """Two files for users, one design: the CUDA one is the CPU one with its own lock and one
    more ENV in the runtime stage (the provider, and where the CUDA wheels' libraries are)."""

    def normalised(dockerfile: Path) -> list[list[tuple[str, str]]]:
        return [[(k, " ".join(v.split())) for k, v in s] for s in stages(dockerfile)]

    cpu = normalised(DOCKER / "Dockerfile.cpu")
    cuda = normalised(DOCKER / "Dockerfile.cuda")
    extra = [v for k, v in cuda[-1] if k == "ENV" and v not in {w for _, w in cpu[-1]}]
    assert len(extra) == 1, extra
    settings = dict(pair.split("=", 1) for pair in extra[0].split())
    assert settings.pop("ATTNSERVE_PROVIDER") == "cuda"
    libraries = settings.pop("LD_LIBRARY_PATH").split(":")
    assert settings == {}
    assert all(p.startswith("/opt/venv/") and "/nvidia/" in p for p in libraries), libraries
    cuda[-1].remove(("ENV", extra[0]))
    assert cuda == [[(k, v.replace("-cpu.lock", "-cuda.lock")) for k, v in s] for s in cpu]


def locked(lock: str) -> dict[str, str]:
    """name -> version of every package in a lock file; each is exact and carries hashes."""
    pins: dict[str, str] = {}
    for line in (DOCKER / lock).read_text().replace("\\\n", " ").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        requirement, *options = line.split()
        assert any(o.startswith("--hash=sha256:") for o in options), f"{requirement}: no hash"
        name, exact, version = requirement.partition("==")
        assert exact, f"{requirement} is not pinned to one version"
        pins[canonicalize_name(name)] = version
    return pins


@pytest.mark.parametrize("variant", ["cpu", "cuda"])
def test_locks_pin_every_serving_dependency_within_pyproject(variant: str) -> None:
    pins = locked(f"requirements-{variant}.lock")
    onnxruntime = "onnxruntime-gpu" if variant == "cuda" else "onnxruntime"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for dependency in map(Requirement, project["dependencies"]):
        name = onnxruntime if dependency.name == "onnxruntime" else dependency.name
        assert name in pins, f"{name} is not in the {variant} lock"
        assert dependency.specifier.contains(pins[name]), f"{name}=={pins[name]}: {dependency}"
    assert ("onnxruntime" in pins) == (variant == "cpu")  # never both builds of one module
    assert "torch" not in pins


def test_cuda_lock_brings_the_verified_onnxruntime_gpu_and_cuda_13() -> None:
    pins = locked("requirements-cuda.lock")
    assert pins["onnxruntime-gpu"] == "1.31.1"
    assert pins["nvidia-cuda-runtime"].split(".")[0] == "13"
    assert pins["nvidia-cudnn-cu13"].split(".")[0] == "9"
    assert {"nvidia-cublas", "nvidia-cufft", "nvidia-curand"} <= pins.keys()


def test_build_lock_pins_the_wheels_build_backend() -> None:
    build_system = tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]
    (requirement,) = map(Requirement, build_system["requires"])
    assert requirement.specifier.contains(locked("requirements-build.lock")[requirement.name])


def test_dockerignore_keeps_the_build_context_small() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    for entry in (".git", ".venv", "tests", "*.onnx"):
        assert entry in ignored
