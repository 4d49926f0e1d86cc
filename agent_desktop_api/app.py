"""The desktop/admin HTTP application. Services are passed in (not built here) so that the gateway, a separate
API process and the tests each decide what runs behind the routes."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from agent_desktop_api import auth, catalogue_admin, flows_admin
from agent_desktop_api.auth import AuthService, DatabaseUnavailable
from agent_desktop_api.body_limit import BodyLimit
from ivr_flows.service import FlowService


def create_app(
    *,
    auth_service: AuthService,
    flow_service: FlowService | None = None,
    catalogue: catalogue_admin.CatalogueAdmin | None = None,
) -> FastAPI:
    app = FastAPI(title="hotline agent desktop API", docs_url="/api/docs", openapi_url="/api/openapi.json")
    app.state.auth = auth_service
    app.add_middleware(BodyLimit)

    @app.exception_handler(DatabaseUnavailable)
    async def _database_down(_request: Request, exc: DatabaseUnavailable) -> JSONResponse:
        # The operator's page says "service unavailable, retrying" instead of a server error.
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": "2"})

    app.include_router(auth.router)
    if flow_service is not None:
        app.state.flows = flow_service
        app.include_router(flows_admin.router)
    if catalogue is not None:
        app.state.catalogue = catalogue
        app.include_router(catalogue_admin.router)
    return app
