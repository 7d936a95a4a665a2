"""The Kubernetes manifests, run: the CPU overlay's Deployment and ConfigMap under `podman kube
play`, on the image test_container.py builds (one build per session: tests/deploy/conftest.py).

deploy/k8s/overlays/cpu is rendered by kubectl's kustomize as test_deploy.py renders it, and
only what one machine needs is changed, each for a stated reason (`pod_documents`). podman runs
the rest as written: the ConfigMap as the container's environment, the command and arguments,
the pod's and the container's securityContext (user, read-only root, no capabilities, no
privilege escalation) and the resource limits, which the tests read back. podman 4.3 does not
run gRPC probes (its kube play makes a health check of exec, httpGet or tcpSocket liveness
probes only, and ignores readiness and startup probes), so the host runs the manifest's probes
as the kubelet would, through the published ports: the startup probe within its period x
failureThreshold budget, then readiness and liveness. gRPC health and an `Embed` equal to the
host server's answer, the OpenAI HTTP route and /metrics are then asked through the pod's ports.

Shutdown is the kubelet's: SIGTERM, up to terminationGracePeriodSeconds, then the pod removed.
`podman kube down` alone cannot show it: podman 4.3's (and later ones' until a 2024 fix) stops
pods with a timeout of 0, a SIGKILL at once (exit 137; podman issues 19135, 21767 and 22397,
pull request 22398), and podman 4.3 ignores terminationGracePeriodSeconds (containers keep its
10 s default). So the last
test stops the server's container with the manifest's grace, checks the drain (readiness
NOT_SERVING, exit 0, the drain in the log), and then `podman kube down` removes the pod; the
module's fixture runs `podman kube down` in any case.

Loopback only: every container port is published on 127.0.0.1 alone. Marker `container`: skips
where podman cannot run, fails under CI=true (as test_container.py). Prints kube play to ready.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from grpc_health.v1 import health_pb2
from prometheus_client.parser import text_string_to_metric_families

from attnserve.service.client.client import EmbedderClient
from tests.support.cli import report
from tests.support.deploy import Built, Podman, free_ports, health_status, render_overlay
from tests.support.servers import ServerThread
from tests.support.texts import VARIED_TEXTS

pytestmark = [pytest.mark.container, pytest.mark.slow]

OVERLAY = "cpu"
# What a single machine can run: the rest (Services, HPA, PodDisruptionBudget, NetworkPolicy,
# ServiceAccount, ServiceMonitor) are cluster objects that podman has no equivalent for;
# test_deploy.py checks them offline. The published loopback ports stand in for the Services.
KEPT_KINDS = ("ConfigMap", "Deployment")
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# float32 through the same graph and ONNX Runtime build; a difference means a different model.
MAX_ABS_DIFFERENCE = 1e-5

Object = dict[str, Any]


@dataclass
class GrpcProbe:
    """A Kubernetes gRPC probe, run as the kubelet runs it (its defaults where unset)."""

    port: int
    service: str
    period_s: float
    timeout_s: float
    failure_threshold: int

    @classmethod
    def of(cls, spec: Object) -> GrpcProbe:
        return cls(
            port=int(spec["grpc"]["port"]),
            service=str(spec["grpc"].get("service", "")),
            period_s=float(spec.get("periodSeconds", 10)),
            timeout_s=float(spec.get("timeoutSeconds", 1)),
            failure_threshold=int(spec.get("failureThreshold", 3)),
        )


@dataclass
class Pod:
    manifest: Path
    pod_id: str
    container_id: str
    host_ports: dict[str, int]  # container port name -> published port on 127.0.0.1
    container: Object  # the Deployment's container, as rendered
    pod_spec: Object
    config: dict[str, str]
    play_to_ready_s: float

    def target(self, port_name: str) -> str:
        return f"127.0.0.1:{self.host_ports[port_name]}"

    def probe(self, kind: str) -> tuple[GrpcProbe, str]:
        """The container's probe of this kind and the host address that reaches its port."""
        probe = GrpcProbe.of(self.container[kind])
        (name,) = [p["name"] for p in self.container["ports"] if p["containerPort"] == probe.port]
        return probe, self.target(name)


def rendered_documents() -> list[Object]:
    return [doc for doc in yaml.safe_load_all(render_overlay(OVERLAY)) if doc]


def pod_documents(
    documents: list[Object], image: str, name: str, host_ports: dict[str, int]
) -> list[Object]:
    """The rendered ConfigMap and Deployment, changed only where one machine needs it."""
    kept = [copy.deepcopy(doc) for doc in documents if doc["kind"] in KEPT_KINDS]
    (deployment,) = [doc for doc in kept if doc["kind"] == "Deployment"]
    # A unique name, so that this pod cannot meet another run's on a shared machine.
    deployment["metadata"]["name"] = name
    # One pod: replicas on one machine would contend for the same published ports.
    deployment["spec"]["replicas"] = 1
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    # The image just built, under its local name: what a release's kustomize `images:` does.
    container["image"] = image
    # The Service's part: each container port published on loopback only, on a free port.
    for port in container["ports"]:
        port["hostIP"] = "127.0.0.1"
        port["hostPort"] = host_ports[port["name"]]
    # podman 4.3 makes a *named* volume of each pod volume (emptyDir included: sizeLimit is not
    # enforced), so a unique name keeps two runs from sharing one /tmp. `kube down` removes it.
    renamed = {volume["name"]: f"{name}-{volume['name']}" for volume in pod["volumes"]}
    for volume in pod["volumes"]:
        volume["name"] = renamed[volume["name"]]
    for mount in container["volumeMounts"]:
        mount["name"] = renamed[mount["name"]]
    return kept


def ids_of(play_output: str) -> tuple[str, str]:
    """The pod and the (one) container from kube play's report: 'Pod:', id, 'Container:', id."""
    lines = [line.strip() for line in play_output.splitlines() if line.strip()]
    pod_id = lines[lines.index("Pod:") + 1]
    container_id = lines[lines.index("Container:") + 1]
    return pod_id, container_id


def await_startup(podman: Podman, pod: Pod, started: float) -> float:
    """Seconds from `kube play` to the startup probe's first success, asked within the probe's
    own budget (period x failureThreshold: past it the kubelet would restart the container)."""
    probe, target = pod.probe("startupProbe")
    deadline = started + probe.period_s * probe.failure_threshold
    while time.monotonic() < deadline:
        if health_status(target, probe.service, probe.timeout_s) == SERVING:
            return time.monotonic() - started
        state = podman.run("inspect", "--format", "{{.State.Running}}", pod.container_id)
        if state.stdout.strip() != "true":
            logs = podman.run("logs", pod.container_id, check=False)
            raise AssertionError(f"the server exited before ready:\n{logs.stderr[-4000:]}")
        time.sleep(0.25)
    raise AssertionError(f"startup probe failed for {deadline - started:.0f} s: {probe}")


@pytest.fixture(scope="module")
def pod(podman: Podman, built: Built, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pod]:
    documents = rendered_documents()
    (deployment,) = [doc for doc in documents if doc["kind"] == "Deployment"]
    (config,) = [doc["data"] for doc in documents if doc["kind"] == "ConfigMap"]
    pod_spec = deployment["spec"]["template"]["spec"]
    (container,) = pod_spec["containers"]
    names = [port["name"] for port in container["ports"]]
    host_ports = dict(zip(names, free_ports(len(names)), strict=True))
    name = f"attnserve-kube-{os.getpid()}"
    manifest = tmp_path_factory.mktemp("kube") / "attnserve.yaml"
    manifest.write_text(yaml.safe_dump_all(pod_documents(documents, built.image, name, host_ports)))
    started = time.monotonic()
    played = podman.run("kube", "play", str(manifest), timeout=120, check=False)
    try:
        assert played.returncode == 0, played.stdout + played.stderr[-4000:]
        pod_id, container_id = ids_of(played.stdout)
        running = Pod(manifest, pod_id, container_id, host_ports, container, pod_spec, config, 0)
        running.play_to_ready_s = await_startup(podman, running, started)
        yield running
    finally:
        podman.run("kube", "down", str(manifest), timeout=120, check=False)
        for volume in pod_spec["volumes"]:  # kube down removes them; this if it failed
            podman.run("volume", "rm", "--force", f"{name}-{volume['name']}", check=False)


def test_the_probes_pass(pod: Pod, capsys: pytest.CaptureFixture[str]) -> None:
    """Startup passed (the fixture); readiness (the API's health) and liveness (the server's)
    now answer SERVING on the ports the manifest names."""
    for kind in ("readinessProbe", "livenessProbe"):
        probe, target = pod.probe(kind)
        assert health_status(target, probe.service, probe.timeout_s) == SERVING, kind
    report(capsys, f"[kube play] pod created to ready (startup probe) {pod.play_to_ready_s:.1f} s")


def test_the_security_context_and_limits_hold(podman: Podman, pod: Pod) -> None:
    inspected = json.loads(podman.run("inspect", pod.container_id).stdout)[0]
    context = pod.container["securityContext"]
    user = f"{context['runAsUser']}:{pod.pod_spec['securityContext']['runAsGroup']}"
    assert inspected["Config"]["User"] == user
    assert inspected["HostConfig"]["ReadonlyRootfs"] is context["readOnlyRootFilesystem"] is True
    assert context["capabilities"]["drop"] == ["ALL"]
    assert inspected["EffectiveCaps"] in (None, [])
    assert context["allowPrivilegeEscalation"] is False
    assert "no-new-privileges" in inspected["HostConfig"]["SecurityOpt"]
    limits = pod.container["resources"]["limits"]
    assert inspected["HostConfig"]["NanoCpus"] == int(float(limits["cpu"]) * 1e9)
    assert inspected["HostConfig"]["Memory"] == quantity_bytes(limits["memory"])
    probe = podman.run("exec", pod.container_id, "sh", "-c", "id -u; touch /probe", check=False)
    assert probe.stdout.split() == [str(context["runAsUser"])]
    assert "Read-only file system" in probe.stderr


def quantity_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity in its binary units (the manifests use no others)."""
    units = {"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30}
    return int(quantity[:-2]) * units[quantity[-2:]]


def test_grpc_embed_equals_the_host_servers(pod: Pod, server: ServerThread) -> None:
    with EmbedderClient(pod.target("grpc")) as inside, EmbedderClient(server.target) as host:
        assert inside.info().artifact_sha256 == host.info().artifact_sha256
        theirs = inside.embed(VARIED_TEXTS)
        ours = host.embed(VARIED_TEXTS)
    assert theirs.pooled is not None
    assert ours.pooled is not None
    assert theirs.pooled.shape == (len(VARIED_TEXTS), 384)
    assert float(np.abs(theirs.pooled - ours.pooled).max()) <= MAX_ABS_DIFFERENCE


def test_the_openai_http_route_answers_on_its_port(pod: Pod) -> None:
    base = f"http://{pod.target('http')}/v1"
    with urllib.request.urlopen(f"{base}/models", timeout=10) as response:
        (model,) = json.loads(response.read())["data"]
    body = json.dumps({"model": model["id"], "input": VARIED_TEXTS[:3]}).encode()
    request = urllib.request.Request(
        f"{base}/embeddings", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    with EmbedderClient(pod.target("grpc")) as client:
        pooled = client.embed(VARIED_TEXTS[:3]).pooled
    assert pooled is not None
    vectors = np.array([item["embedding"] for item in answer["data"]], dtype=np.float32)
    assert [item["index"] for item in answer["data"]] == [0, 1, 2]
    assert answer["model"] == model["id"]
    assert float(np.abs(vectors - pooled).max()) <= MAX_ABS_DIFFERENCE


def test_metrics_count_both_protocols(pod: Pod) -> None:
    """After the two tests above: /metrics on its port counts the gRPC and the HTTP calls."""
    url = f"http://{pod.target('metrics')}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    served = {
        sample.labels["protocol"]
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "attnserve_requests_total" and sample.labels.get("code") == "OK"
    }
    assert {"attnserve.v1", "openai"} <= served


def test_termination_drains_then_kube_down_removes_the_pod(
    podman: Podman, pod: Pod, capsys: pytest.CaptureFixture[str]
) -> None:
    """The last test: the kubelet's termination, then `podman kube down` (see the docstring)."""
    grace_s = int(pod.pod_spec["terminationGracePeriodSeconds"])
    drain_delay_s = float(pod.config["ATTNSERVE_DRAIN_DELAY_S"])
    readiness, target = pod.probe("readinessProbe")
    started = time.monotonic()
    stopping = subprocess.Popen(
        [podman.executable, "stop", "--time", str(grace_s), pod.container_id],
        env=podman.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        # The readiness probe fails within the drain delay: the pod leaves the Service.
        seen: list[int | None] = []
        while time.monotonic() - started < drain_delay_s:
            seen.append(health_status(target, readiness.service, readiness.timeout_s))
            if seen[-1] == NOT_SERVING:
                break
            time.sleep(0.1)
        _, stop_errors = stopping.communicate(timeout=grace_s + 30)
    finally:
        if stopping.poll() is None:
            stopping.kill()
    stopped_s = time.monotonic() - started
    assert seen[-1] == NOT_SERVING, seen
    assert stopping.returncode == 0, stop_errors
    # SIGKILL after the grace would read 137: 0 means the server drained and exited in time.
    state = podman.run("inspect", "--format", "{{.State.ExitCode}}", pod.container_id)
    assert state.stdout.strip() == "0", stop_errors
    logs = podman.run("logs", pod.container_id)
    messages = [
        json.loads(line)["msg"] for line in (logs.stdout + logs.stderr).splitlines()
        if line.startswith("{")
    ]  # fmt: skip
    drained = f"draining: NOT_SERVING for {drain_delay_s:.1f} s"
    assert drained in messages
    assert "stopped" in messages[messages.index(drained) :]
    down = podman.run("kube", "down", str(pod.manifest), timeout=120)
    assert pod.pod_id in down.stdout
    assert podman.run("pod", "exists", pod.pod_id, check=False).returncode != 0
    report(
        capsys,
        f"[kube play] SIGTERM to exit 0 in {stopped_s:.1f} s (drain delay {drain_delay_s:.0f} s, "
        f"grace {grace_s} s)",
    )
