"""Flow administration over HTTP (admin role only): list, get, validate, publish, roll back, history.

The same service as `hotline flows` runs behind it, so both refuse the same flows with the same
file/line/step list (HTTP 422, `detail.errors`). Handlers are sync `def`s: FastAPI runs them in its thread pool,
keeping validation and database work off the event loop.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, Field

from agent_desktop_api.auth import User, require_role
from ivr_flows.errors import FlowError, FlowInvalid
from ivr_flows.loader import MAX_FLOW_BYTES
from ivr_flows.service import FlowNotFound, FlowService, RollbackRefused
from ivr_flows.store import FlowVersion

admin = require_role("admin")
MAX_VERSION = 2**63 - 1


def get_flow_service(request: Request) -> FlowService:
    service = getattr(request.app.state, "flows", None)
    if not isinstance(service, FlowService):
        raise RuntimeError("app.state.flows is not set: build the app with agent_desktop_api.app.create_app")
    return service


class FlowText(BaseModel):
    content: str = Field(min_length=1, max_length=MAX_FLOW_BYTES, description="The flow file (YAML text).")
    file: str = Field("api.yaml", max_length=255, description="Name used in error locations.")


class PublishRequest(FlowText):
    comment: str = Field("", max_length=2000)


class RollbackRequest(BaseModel):
    to: int | None = Field(
        None, ge=1, le=MAX_VERSION, description="Version to restore (default: the one before the active)."
    )
    comment: str = Field("", max_length=2000)


def _invalid(errors: list[FlowError]) -> HTTPException:
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        {
            "message": "flow refused",
            "errors": [e.to_dict() for e in errors if e.severity == "error"],
            "warnings": [e.to_dict() for e in errors if e.severity == "warning"],
        },
    )


def _with_content(version: FlowVersion) -> dict[str, Any]:
    return {**version.summary(), "content": version.content}


router = APIRouter(prefix="/api/flows", tags=["flows"], dependencies=[Depends(admin)])


@router.get("")
def list_flows(service: FlowService = Depends(get_flow_service)) -> list[dict[str, Any]]:  # noqa: B008
    return [v.summary() for v in service.store.active_all()]


@router.get("/{number}")
def get_flow(
    number: str,
    version: int | None = Query(None, ge=1, le=MAX_VERSION),  # SQLite integers are 64-bit
    service: FlowService = Depends(get_flow_service),  # noqa: B008
) -> dict[str, Any]:
    found = service.store.active(number) if version is None else service.store.get(number, version)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no such flow version for {number}")
    return _with_content(found)


@router.get("/{number}/history")
def history(number: str, service: FlowService = Depends(get_flow_service)) -> list[dict[str, Any]]:  # noqa: B008
    versions = service.store.history(number)
    if not versions:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no flow published for {number}")
    return [v.summary() for v in versions]


@router.post("/validate")
def validate(body: FlowText, service: FlowService = Depends(get_flow_service)) -> dict[str, Any]:  # noqa: B008
    report = service.validate(body.content, body.file)
    if not report.ok:
        raise _invalid(report.errors + report.warnings)
    assert report.flow is not None
    return {"ok": True, "number": report.flow.number, "warnings": [w.to_dict() for w in report.warnings]}


@router.post("/publish", status_code=status.HTTP_201_CREATED)
def publish(
    body: PublishRequest,
    user: User = Depends(admin),  # noqa: B008
    service: FlowService = Depends(get_flow_service),  # noqa: B008
) -> dict[str, Any]:
    try:
        result = service.publish(body.content, body.file, author=user.name, comment=body.comment)
    except FlowInvalid as exc:
        raise _invalid(exc.errors) from exc
    return {
        **result.version.summary(),
        "created": result.created,
        "warnings": [w.to_dict() for w in result.warnings],
    }


@router.post("/{number}/rollback")
def rollback(
    number: str,
    body: RollbackRequest,
    user: User = Depends(admin),  # noqa: B008
    service: FlowService = Depends(get_flow_service),  # noqa: B008
) -> dict[str, Any]:
    try:
        result = service.rollback(number, to=body.to, author=user.name, comment=body.comment)
    except FlowNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except RollbackRefused as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    except FlowInvalid as exc:
        raise _invalid(exc.errors) from exc
    return {**result.version.summary(), "warnings": [w.to_dict() for w in result.warnings]}
