"""The API docs page at `/docs`: Swagger UI served from an installed package (fastapi-offline
ships its files), so the page loads nothing from a CDN and works offline; its scripts come
from this origin only (see `http_guard.DOCS_CSP`)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from service.http_guard import DOCS_CSP

router = APIRouter(include_in_schema=False)

ASSETS = Path(str(files("fastapi_offline") / "static"))
ASSETS_URL = "/docs/assets"
PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>citeline API</title>
  <link rel="stylesheet" href="{ASSETS_URL}/swagger-ui.css">
  <script src="{ASSETS_URL}/swagger-ui-bundle.js" defer></script>
  <script src="/static/docs.js" defer></script>
</head>
<body><div id="swagger-ui"></div></body>
</html>
"""


@router.get("/docs")
async def docs() -> HTMLResponse:
    return HTMLResponse(PAGE, headers={"Content-Security-Policy": DOCS_CSP})
