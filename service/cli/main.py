"""The `citeline` command: the service's API from a terminal.

`--url` / CITELINE_URL and `--api-key` / CITELINE_API_KEY say which service and as whom.
A problem the service answers is printed as one line (its title and detail) and the exit code
is 1. Modules are imported by the command that needs them, so `citeline --help` is quick.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from service.cli.errors import CliError

if TYPE_CHECKING:
    from service.cli.client import Api

DEFAULT_URL = "http://127.0.0.1:8000"

app = typer.Typer(
    name="citeline",
    help="Load documents into a running citeline, ask it questions, manage keys.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
documents_app = typer.Typer(help="List or delete documents.", no_args_is_help=True)
keys_app = typer.Typer(help="Create, list or revoke API keys (the admin scope).")
app.add_typer(documents_app, name="documents")
app.add_typer(keys_app, name="keys")
keys_app.info.no_args_is_help = True

Collection = Annotated[str, typer.Option("--collection", "-c", help="the collection")]
Json = Annotated[bool, typer.Option("--json", help="print JSON (for scripts)")]


class _Target:
    url: str = DEFAULT_URL
    api_key: str | None = None


TARGET = _Target()


@app.callback()
def main(
    url: Annotated[
        str, typer.Option(envvar="CITELINE_URL", help="the service's base URL")
    ] = DEFAULT_URL,
    api_key: Annotated[
        str | None,
        typer.Option(envvar="CITELINE_API_KEY", help="an API key (sent as a Bearer token)"),
    ] = None,
) -> None:
    TARGET.url, TARGET.api_key = url, api_key


def _api() -> Api:
    from service.cli.client import Api

    return Api(TARGET.url, TARGET.api_key)


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def _metadata(pairs: list[str]) -> dict[str, Any]:
    """`k=v` pairs; a value that reads as JSON (a number, true, null) is taken as such."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not key=value", param_hint="--metadata")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        out[key] = value if isinstance(value, (int, float, bool, type(None))) else raw
    return out


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="files and folders (recursive)")],
    collection: Collection = "default",
    glob: Annotated[
        str | None,
        typer.Option(help="only files matching this pattern (default: the types citeline reads)"),
    ] = None,
    metadata: Annotated[
        list[str] | None, typer.Option("--metadata", "-m", help="key=value, repeatable")
    ] = None,
    as_json: Json = False,
) -> None:
    """Upload files and folders as batches and follow them until every file is indexed."""
    from service.cli.ingest import Ingest, find_files
    from service.cli.output import IngestProgress, print_ingest

    meta = _metadata(metadata or [])
    with _api() as api, IngestProgress() as progress:
        files = find_files(paths, glob)
        report = Ingest(api, collection, meta, progress.update).run(files)
    if as_json:
        _print_json(report.summary())
    else:
        print_ingest(report)
    if report.failures:
        raise typer.Exit(1)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="the question")],
    collection: Collection = "default",
    max_results: Annotated[int | None, typer.Option(help="sources to use (1-20)")] = None,
    as_json: Json = False,
) -> None:
    """Stream a cited answer, then its sources as numbered footnotes."""
    from service.cli.output import print_footnotes, stream_answer

    body: dict[str, Any] = {"question": question, "collection": collection}
    if max_results is not None:
        body["max_results"] = max_results
    with _api() as api:
        if as_json:
            _print_json(api.post("/v1/query", json=body))
            return
        with api.events("/v1/query", {**body, "stream": True}) as events:
            sources, cited = stream_answer(events)
    print_footnotes(sources, cited)


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="what to look for")],
    collection: Collection = "default",
    max_results: Annotated[int, typer.Option(help="passages (1-100)")] = 10,
    as_json: Json = False,
) -> None:
    """Passages that match, best first (no generation)."""
    from service.cli.output import print_passages

    body = {"query": query, "collection": collection, "max_results": max_results}
    with _api() as api:
        results = api.post("/v1/search", json=body)["results"]
    if as_json:
        _print_json(results)
    else:
        print_passages(results)


@app.command()
def status(
    job_or_batch: Annotated[
        str | None, typer.Argument(metavar="[JOB|BATCH]", help="a job_... or bat_... id")
    ] = None,
) -> None:
    """A job's or a batch's status; without an id, whether the service is ready."""
    with _api() as api:
        if job_or_batch is None:
            _print_json(api.get("/readyz"))
        elif job_or_batch.startswith("bat_"):
            _print_json(api.get(f"/v1/batches/{job_or_batch}"))
        else:
            _print_json(api.get(f"/v1/jobs/{job_or_batch}"))


@app.command("eval")
def evaluate(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, help="JSON {cases: [...]} or JSON lines, a case each"
        ),
    ],
    collection: Collection = "default",
    min_relevance: Annotated[
        float | None, typer.Option(help="the abstention threshold to evaluate")
    ] = None,
    as_json: Json = False,
) -> None:
    """Run an evaluation (POST /v1/evaluations) and print its aggregates when it is done."""
    import time

    body: dict[str, Any] = {"collection": collection, "cases": _cases(file)}
    if min_relevance is not None:
        body["min_relevance"] = min_relevance
    with _api() as api:
        run = api.post("/v1/evaluations", json=body)
        while run["status"] in ("queued", "running"):
            sys.stderr.write(f"evaluation {run['id']}: {run['cases_done']}/{run['cases_total']}\n")
            time.sleep(1.0)
            run = api.get(f"/v1/evaluations/{run['id']}")
    if as_json:
        _print_json(run)
    elif run["status"] == "completed":
        for name, value in (run["aggregates"] or {}).items():
            sys.stdout.write(f"{name:<32} {value}\n")
    if run["status"] != "completed":
        raise CliError(f"evaluation {run['id']} failed: {run.get('error') or 'no reason given'}")


def _cases(file: Path) -> list[Any]:
    text = file.read_text(encoding="utf-8")
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict) and isinstance(whole.get("cases"), list):
        return list(whole["cases"])
    if isinstance(whole, list):
        return whole
    try:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise CliError(f"{file}: not JSON {{cases: [...]}} nor JSON lines ({exc})") from None


@documents_app.command("list")
def documents_list(
    collection: Collection = "default",
    limit: Annotated[int, typer.Option(help="at most this many (1-1000)")] = 100,
    as_json: Json = False,
) -> None:
    """The documents of a collection."""
    from service.cli.output import print_documents

    with _api() as api:
        page = api.get("/v1/documents", params={"collection": collection, "limit": limit})
    if as_json:
        _print_json(page)
    else:
        print_documents(page["documents"])


@documents_app.command("delete")
def documents_delete(
    document_ids: Annotated[list[str], typer.Argument(help="document ids")],
    collection: Collection = "default",
) -> None:
    """Delete documents by id."""
    with _api() as api:
        for document_id in document_ids:
            api.delete(f"/v1/documents/{document_id}", params={"collection": collection})
            sys.stdout.write(f"deleted {document_id}\n")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="what the key is for")],
    tenant: Annotated[str, typer.Option(help="the tenant it acts for")],
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="read, write or admin; repeatable")
    ] = None,
    collection: Annotated[
        list[str] | None, typer.Option("--collection", help="limit to these; repeatable")
    ] = None,
    expires_at: Annotated[str | None, typer.Option(help="ISO 8601 date and time")] = None,
) -> None:
    """A new key; its secret (`key`) is shown this once."""
    body: dict[str, Any] = {"name": name, "tenant": tenant, "scopes": scope or ["read"]}
    if collection:
        body["collections"] = collection
    if expires_at:
        body["expires_at"] = expires_at
    with _api() as api:
        _print_json(api.post("/v1/keys", json=body))


@keys_app.command("list")
def keys_list(
    tenant: Annotated[str | None, typer.Option(help="whose keys (the admin key: any)")] = None,
) -> None:
    """Keys, without their secrets."""
    with _api() as api:
        _print_json(api.get("/v1/keys", params={"tenant": tenant} if tenant else {})["keys"])


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the key's id")]) -> None:
    """Revoke a key: refused from its next request on."""
    with _api() as api:
        _print_json(api.delete(f"/v1/keys/{key_id}"))


@app.command("mcp")
def mcp_stdio(
    url: Annotated[str | None, typer.Option(help="the service's base URL")] = None,
    api_key: Annotated[str | None, typer.Option(help="an API key")] = None,
) -> None:
    """An MCP server on stdin/stdout that forwards to the service's /mcp, for desktop clients
    that launch a command."""
    from service.cli.mcp_stdio import serve

    serve(url or TARGET.url, api_key or TARGET.api_key)


def run() -> None:
    """The console script: problems from the service as one line on stderr, exit code 1."""
    try:
        app()
    except CliError as exc:
        sys.stderr.write(f"citeline: {exc}\n")
        sys.exit(1)
