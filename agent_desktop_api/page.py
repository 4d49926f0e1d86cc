"""The operator desktop page: static files (no build step), Leaflet from the project's node_modules, and the
district boundaries the page's map draws.

``mount_page(app, leaflet_dir, geojson)`` adds, on an app built by ``create_app``:
- ``GET /``: the page (public; everything it shows comes from the authenticated API);
- ``/static/...``: ``agent_desktop_api/static``;
- ``/static/vendor/leaflet/...``: ``node_modules/leaflet/dist`` (npm ``leaflet``, installed by ``npm ci``);
- ``GET /api/gazetteer/districts.geojson``: the GeoJSON of ``hotline-tools gazetteer build`` (any logged-in user).
"""

from __future__ import annotations

from pathlib import Path

import structlog
from fastapi import Depends, FastAPI, HTTPException, status
from fastapi.responses import FileResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles

from agent_desktop_api.auth import User, current_user

log = structlog.get_logger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
LEAFLET_DIST = Path("node_modules/leaflet/dist")
NO_CACHE = {"Cache-Control": "no-cache"}  # revalidate: a new release must reach open desks on reload


def mount_page(app: FastAPI, leaflet: Path, geojson: Path) -> None:
    """`leaflet`: npm leaflet's dist folder (LEAFLET_DIST under the project root); `geojson`: the districts."""

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8", headers=NO_CACHE)

    @app.get("/api/gazetteer/districts.geojson", tags=["gazetteer"], response_class=FileResponse)
    def districts_geojson(_user: User = Depends(current_user)) -> FileResponse:  # noqa: B008
        """Beijing's 16 district boundaries (WGS-84, simplified) for the desktop map."""
        if not geojson.is_file():
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, "district boundaries not built: run `hotline-tools gazetteer build`"
            )
        return FileResponse(geojson, media_type="application/geo+json", headers=NO_CACHE)

    # Starlette matches mounts in order: the vendor folder before /static.
    if (leaflet / "leaflet.js").is_file():
        app.mount("/static/vendor/leaflet", StaticFiles(directory=leaflet), name="leaflet")
    else:
        log.warning("desktop.leaflet_missing", path=str(leaflet), fix="run `npm ci` in the project root")

        @app.get("/static/vendor/leaflet/{path:path}", include_in_schema=False)
        def leaflet_missing(path: str) -> PlainTextResponse:
            return PlainTextResponse(f"Leaflet is not installed ({leaflet}): run `npm ci`", status.HTTP_404_NOT_FOUND)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="desktop-static")
