"""Operations endpoints for the people on call: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

ReadinessProbe = Callable[[], dict[str, bool]]


def create_ops_app(registry: CollectorRegistry, readiness: ReadinessProbe) -> FastAPI:
    app = FastAPI(title="hotline gateway operations", docs_url=None, redoc_url=None)
    app.include_router(ops_router(registry, readiness))
    return app


def ops_router(registry: CollectorRegistry, readiness: ReadinessProbe) -> APIRouter:
    """Unauthenticated on purpose: load balancers and Prometheus scrape them (bind the server to loopback).

    `async` and free of I/O: they answer on the event loop at once, never queued behind the thread pool that
    the application's routes (logins, database reads) share. `readiness` must only read state that others keep
    up to date."""
    app = APIRouter(tags=["operations"])

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz")
    async def readyz(response: Response) -> dict[str, object]:
        checks = readiness()
        ready = all(checks.values())
        response.status_code = 200 if ready else 503
        return {"ready": ready, "checks": checks}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
