"""The OpenAPI document is the contract: schemathesis fuzzes every operation of a live server
and checks that no input gets a 5xx, that every status, content type and body is documented,
and that every error is problem+json. Bounded in time and seeded, so a run is repeatable."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import wait_until
from tests.integration.corpus import DOCS, post_all

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance"
CHECKS += ",response_schema_conformance"


def test_openapi_documents_every_error_as_problem_json(server: Any) -> None:
    with server.client() as c:
        spec = c.get("/openapi.json").json()
    missing = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                problem = "application/problem+json" in response.get("content", {})
                if status.startswith(("4", "5")) and not problem:
                    missing.append(f"{method.upper()} {path} {status}")
    assert missing == []
    batch = spec["paths"]["/v1/documents/batch"]["post"]["requestBody"]["content"]
    ref = batch["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    assert ref in spec["components"]["schemas"]
    assert "DocumentIn" in spec["components"]["schemas"]  # what BatchIn refers to


def test_head_on_health_routes(server: Any) -> None:
    with server.client() as c:
        assert c.head("/healthz").status_code == 200
        assert c.head("/readyz").status_code == 200


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/search", '{"query": "q", "filters": {"type": "eq", "key": "k", "value": NaN}}'),
        ("/v1/query", '{"question": "q", "filters": {"type": "gt", "key": "k", "value": 1e999}}'),
        ("/v1/documents", '{"text": "t", "metadata": {"score": NaN}}'),
        ("/v1/documents", '{"text": "t", "metadata": {"scores": [1, -Infinity]}}'),
        ("/v1/search", '{"query": "q", "filters": {"type": "eq", "key": "a..b", "value": 1}}'),
    ],
)
def test_non_finite_numbers_and_bad_keys_are_422(server: Any, path: str, body: str) -> None:
    with server.client() as c:
        r = c.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"


ADMIN_KEY = "contract-admin-key-0123456789"


@pytest.mark.timeout(400)
@pytest.mark.parametrize("mode", ["open", "keyed"])
def test_schemathesis_finds_no_server_error_and_no_undocumented_response(
    make_server: Any, tmp_path: Path, mode: str
) -> None:
    """In open mode, and with keys required (requests carry the admin key)."""
    st = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    if st is None:
        pytest.skip("schemathesis is not installed (it is in the dev extra)")
    keyed = mode == "keyed"
    server = make_server(**({"admin_api_key": ADMIN_KEY} if keyed else {}))
    if keyed:
        with server.client(headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as c:
            r = c.post("/v1/documents/batch", json={"documents": DOCS})
            jobs = [a["job_id"] for a in r.json()["documents"]]
            wait_until(
                lambda: all(c.get(f"/v1/jobs/{j}").json()["status"] == "completed" for j in jobs)
            )
    else:
        post_all(server)
    args = [st, "run", f"{server.url}/openapi.json", "--checks", CHECKS]
    if keyed:
        args += ["--header", f"Authorization: Bearer {ADMIN_KEY}"]
    # The coverage phase hits an internal error of schemathesis 4.32 (a KeyError in its own
    # strategy builder) on recursive filter schemas; fuzzing and stateful runs cover every route.
    max_time = "90" if mode == "open" else "60"
    args += ["--phases", "fuzzing,stateful", "--max-examples", "25", "--max-time", max_time]
    args += ["--seed", "20261201", "--generation-database", "none", "-w", "2", "--no-color"]
    # GET /v1/models/{model_id:path}: hypothesis sometimes rejects too many of its own path
    # strings and stops there ("Failed Health Check", seen once); that says nothing of the API.
    args += ["--suppress-health-check", "filter_too_much"]
    run = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    if _only_a_generator_crash(run.stdout):
        # Hypothesis's optimiser can crash inside itself (seen once here: an IndexError in
        # `optimise_targets` on GET /v1/models/{model_id}), a fault of the tool, which it
        # reports as a "Runtime Error" with no failed check: run once more, saying why.
        print("schemathesis crashed inside its generator (no check failed); running it again")
        run = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    summary = run.stdout[run.stdout.rfind("=== SUMMARY") :] if "SUMMARY" in run.stdout else ""
    assert run.returncode == 0, run.stdout[-12_000:] + run.stderr[-2000:]
    assert "passed" in summary and " 0 passed" not in summary, summary


def _only_a_generator_crash(stdout: str) -> bool:
    """The run's only problems are errors raised inside hypothesis itself, no failed check."""
    errors = stdout.count("Runtime Error")
    internal = stdout.count("hypothesis/internal/conjecture")
    return errors > 0 and internal >= errors and "=== FAILURES" not in stdout
