"""deploy/kserve, checked offline: kustomize renders it, every field exists in KServe's API, and
the runtime and the InferenceService agree with each other and with attnserve's real CLI.

There is no cluster here and KServe publishes no JSON schema, so the API comes from KServe's own
Python SDK: its generated models list each kind's fields (`openapi_types`, `attribute_map`) and
the ones that may not be None. The SDK wheel is fetched from PyPI (`pip download --no-deps`) and
read as source, never imported (it pins a different protobuf). Kubernetes types inside KServe's
kinds (containers, probes, volumes, metadata) are checked against Kubernetes' own strict schemas,
as tests/deploy/test_deploy.py does for plain manifests.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from referencing import Registry, Resource

from attnserve.service.cli import build_parser
from attnserve.service.server.settings import Settings
from tests.support import ROOT
from tests.support.cli import unavailable
from tests.support.deploy import assert_locked_down, render_kustomization

KSERVE_VERSION = "0.21.0"
KUBERNETES_VERSION = "1.33.0"
KSERVE = ROOT / "deploy/kserve"

Object = dict[str, Any]


@dataclass(frozen=True)
class Kind:
    """One generated KServe model: its fields by JSON name, and the ones it requires."""

    fields: dict[str, str]  # JSON name -> SDK type ("str", "list[V1Container]", ...)
    required: frozenset[str]


def read_kserve_models(wheel: Path) -> dict[str, Kind]:
    kinds: dict[str, Kind] = {}
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if not (name.startswith("kserve/models/") and name.endswith(".py")):
                continue
            source = archive.read(name).decode()
            for node in ast.parse(source).body:
                if isinstance(node, ast.ClassDef):
                    kind = read_kind(node, source)
                    if kind is not None:
                        kinds[node.name] = kind
    return kinds


def read_kind(node: ast.ClassDef, source: str) -> Kind | None:
    tables: dict[str, dict[str, str]] = {}
    for statement in node.body:
        if not isinstance(statement, ast.Assign):
            continue
        target = statement.targets[0]
        if isinstance(target, ast.Name) and target.id in ("openapi_types", "attribute_map"):
            tables[target.id] = ast.literal_eval(statement.value)
    if set(tables) != {"openapi_types", "attribute_map"}:
        return None
    class_source = ast.get_source_segment(source, node) or ""
    not_none = set(re.findall(r"Invalid value for `(\w+)`, must not be `None`", class_source))
    names = tables["attribute_map"]
    return Kind(
        fields={names[attr]: kind for attr, kind in tables["openapi_types"].items()},
        required=frozenset(names[attr] for attr in not_none),
    )


@pytest.fixture(scope="session")
def kserve_api(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Kind]:
    directory = tmp_path_factory.mktemp("kserve-sdk")
    fetched = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
         f"kserve=={KSERVE_VERSION}", "--dest", str(directory)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    wheels = list(directory.glob("kserve-*.whl"))
    if fetched.returncode != 0 or not wheels:
        unavailable(f"cannot fetch kserve=={KSERVE_VERSION} from PyPI: {fetched.stderr[-300:]}")
    kinds = read_kserve_models(wheels[0])
    assert {"V1alpha1ServingRuntime", "V1beta1InferenceService", "V1beta1ModelSpec"} <= set(kinds)
    return kinds


class KubernetesTypes:
    """Kubernetes' strict schemas, found by the SDK's names for them (V1Container,
    K8sIoApiAppsV1DeploymentStrategy, ...)."""

    def __init__(self, version: str) -> None:
        package = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
        schemas = package / f"v{version}-local-strict"
        definitions = json.loads((schemas / "_definitions.json").read_text())
        self.registry: Registry[Any] = Resource.from_contents(definitions) @ Registry()
        self.base = definitions["$id"]
        self.by_alias: dict[str, str] = {}
        for key in sorted(definitions["$defs"], key=self.preference):
            *_, api_version, name = key.split(".")
            self.by_alias.setdefault(api_version.capitalize() + name, key)
            dotted = key.replace("io.k8s.", "k8s.io.", 1).split(".")
            self.by_alias.setdefault("".join(p[:1].upper() + p[1:] for p in dotted), key)

    @staticmethod
    def preference(key: str) -> tuple[int, str]:
        core = key.startswith(("io.k8s.api.core.", "io.k8s.apimachinery.pkg.apis.meta."))
        return (0 if core else 1, key)

    def errors(self, value: Any, sdk_type: str, path: str) -> list[str]:
        if sdk_type not in self.by_alias:
            return [f"{path}: no Kubernetes schema for {sdk_type}"]
        schema = {"$ref": f"{self.base}#/$defs/{self.by_alias[sdk_type]}"}
        validator = jsonschema.Draft202012Validator(schema, registry=self.registry)
        return [f"{path}{'.' if e.path else ''}{'.'.join(map(str, e.path))}: {e.message}"
                for e in validator.iter_errors(value)]  # fmt: skip


PRIMITIVES: dict[str, tuple[type, ...]] = {
    "str": (str,), "int": (int,), "bool": (bool,), "float": (int, float), "object": (object,),
}  # fmt: skip


def api_errors(value: Any, sdk_type: str, path: str, api: dict[str, Kind],
               kubernetes: KubernetesTypes) -> list[str]:  # fmt: skip
    """Every way VALUE breaks SDK_TYPE: unknown fields, missing required ones, wrong types."""
    if match := re.fullmatch(r"list\[(.+)\]", sdk_type):
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        return [e for i, item in enumerate(value)
                for e in api_errors(item, match[1], f"{path}[{i}]", api, kubernetes)]  # fmt: skip
    if match := re.fullmatch(r"dict\(str, (.+)\)", sdk_type):
        if not isinstance(value, dict):
            return [f"{path}: expected a mapping"]
        return [e for key, item in value.items()
                for e in api_errors(item, match[1], f"{path}.{key}", api, kubernetes)]  # fmt: skip
    if sdk_type in PRIMITIVES:
        wrong_bool = isinstance(value, bool) and sdk_type in ("int", "float")
        if wrong_bool or not isinstance(value, PRIMITIVES[sdk_type]):
            return [f"{path}: expected {sdk_type}, got {value!r}"]
        return []
    if sdk_type not in api:
        return kubernetes.errors(value, sdk_type, path)
    if not isinstance(value, dict):
        return [f"{path}: expected a {sdk_type} object"]
    kind = api[sdk_type]
    errors = [f"{path}.{key}: not a field of {sdk_type}" for key in value if key not in kind.fields]
    errors += [f"{path}.{key}: required by {sdk_type}" for key in kind.required - set(value)]
    for key, item in value.items():
        if key in kind.fields:
            errors += api_errors(item, kind.fields[key], f"{path}.{key}", api, kubernetes)
    return errors


SDK_TYPE = {
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "V1alpha1ServingRuntime",
    ("serving.kserve.io/v1beta1", "InferenceService"): "V1beta1InferenceService",
}


def check_against_kserve(obj: Object, api: dict[str, Kind], kubernetes: KubernetesTypes) -> None:
    sdk_type = SDK_TYPE[(obj["apiVersion"], obj["kind"])]
    errors = api_errors(obj, sdk_type, obj["kind"], api, kubernetes)
    assert not errors, "\n".join(errors)


@pytest.fixture(scope="module")
def rendered() -> list[Object]:
    return [doc for doc in yaml.safe_load_all(render_kustomization(KSERVE)) if doc]


@pytest.fixture(scope="module")
def kubernetes() -> KubernetesTypes:
    return KubernetesTypes(KUBERNETES_VERSION)


def one(objects: list[Object], kind: str) -> Object:
    (found,) = [o for o in objects if o["kind"] == kind]
    return found


def server(objects: list[Object]) -> Object:
    (container,) = one(objects, "ServingRuntime")["spec"]["containers"]
    return dict(container)


def environment(container: Object) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container["env"]}


def test_every_field_is_in_the_kserve_api(
    rendered: list[Object], kserve_api: dict[str, Kind], kubernetes: KubernetesTypes
) -> None:
    assert {o["kind"] for o in rendered} == {"ServingRuntime", "InferenceService"}
    for obj in rendered:
        check_against_kserve(obj, kserve_api, kubernetes)


@pytest.mark.parametrize(
    ("kind", "mistake"),
    [
        ("InferenceService", lambda o: o["spec"]["predictor"]["model"].update(protocolVersions=[])),
        ("InferenceService", lambda o: o["spec"]["predictor"].update(minReplicas="2")),
        ("ServingRuntime", lambda o: o["spec"]["containers"][0].update(imagePulPolicy="Always")),
        ("ServingRuntime", lambda o: o["spec"]["containers"][0]["startupProbe"]["grpc"].clear()),
        ("ServingRuntime", lambda o: o["spec"].pop("containers")),
    ],
    ids=["unknown-kserve-field", "wrong-type", "unknown-container-field", "probe-without-port",
         "required-containers"],
)  # fmt: skip
def test_the_check_catches_mistakes(
    kind: str, mistake: Any, kserve_api: dict[str, Kind], kubernetes: KubernetesTypes
) -> None:
    obj = one([doc for doc in yaml.safe_load_all(render_kustomization(KSERVE)) if doc], kind)
    mistake(obj)
    with pytest.raises(AssertionError):
        check_against_kserve(obj, kserve_api, kubernetes)


def test_the_service_selects_this_runtime_and_protocol(rendered: list[Object]) -> None:
    runtime = one(rendered, "ServingRuntime")
    model = one(rendered, "InferenceService")["spec"]["predictor"]["model"]
    assert model["runtime"] == runtime["metadata"]["name"]
    formats = {(f["name"], f.get("version")) for f in runtime["spec"]["supportedModelFormats"]}
    assert (model["modelFormat"]["name"], model["modelFormat"].get("version")) in formats
    assert model["protocolVersion"] == "grpc-v2"
    assert model["protocolVersion"] in runtime["spec"]["protocolVersions"]
    assert model["storageUri"]


def test_grpc_is_served_on_the_h2c_port_with_grpc_probes(rendered: list[Object]) -> None:
    container = server(rendered)
    assert container["name"] == "kserve-container"
    port = int(environment(container)["ATTNSERVE_PORT"])
    model = one(rendered, "InferenceService")["spec"]["predictor"]["model"]
    for ports in (container["ports"], model["ports"]):
        assert [(p["name"], p["containerPort"]) for p in ports] == [("h2c", port)]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == port, probe
    assert container["readinessProbe"]["grpc"]["service"] == "attnserve.v1.Embedder"


def test_the_runtime_runs_the_real_cli_on_kserves_model_directory(rendered: list[Object]) -> None:
    container = server(rendered)
    env = environment(container)
    assert env["ATTNSERVE_ARTIFACT"] == "/mnt/models"  # where KServe's storage initializer writes
    for key in env:
        assert key.removeprefix("ATTNSERVE_").lower() in Settings.model_fields, key
    named = {k.removeprefix("ATTNSERVE_").lower(): v for k, v in env.items()}
    settings = Settings.model_validate({k: v for k, v in named.items() if k != "artifact"})
    command = container["command"][1:] + container["args"]
    args = build_parser().parse_args([a.replace("{{.Name}}", "some-model") for a in command])
    assert args.command == "serve"
    assert "{{.Name}}" in container["args"]  # the OIP model name is the InferenceService's
    # KServe's metrics aggregation scrapes the port the server publishes on.
    annotations = one(rendered, "ServingRuntime")["spec"]["annotations"]
    assert int(annotations["prometheus.kserve.io/port"]) == settings.metrics_port
    # Kubernetes' default grace period (30 s; a ServingRuntime cannot set one) covers the drain.
    assert settings.drain_delay_s + settings.shutdown_grace_s < 30


def test_resources_security_and_threads(rendered: list[Object]) -> None:
    container = server(rendered)
    assert_locked_down(container)
    threads = int(environment(container)["ATTNSERVE_INTRA_OP_THREADS"])
    assert threads == int(container["resources"]["limits"]["cpu"])
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert "/tmp" in mounts  # the only writable place a read-only root leaves


def test_the_runtime_uses_the_same_image_as_the_deployment(rendered: list[Object]) -> None:
    deployment = yaml.safe_load((ROOT / "deploy/k8s/base/deployment.yaml").read_text())
    (plain,) = deployment["spec"]["template"]["spec"]["containers"]
    assert server(rendered)["image"] == plain["image"]
