"""The problem catalogue over HTTP (admin role only): the version in force and its history, the text of any
version, validate, publish, roll back. The catalogue itself is the assistants' (`assist/ticket`); the composition
root hands its versions in through `CatalogueAdmin`. A publication is in force in every process within seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from agent_desktop_api.auth import User, require_role

admin = require_role("admin")
MAX_CATALOGUE_CHARS = 512 * 1024


class VersionSummary(Protocol):
    def summary(self) -> dict[str, object]: ...


class CatalogueAdmin(Protocol):
    def history(self) -> Sequence[VersionSummary]: ...

    def content(self, version: int | None = None) -> str: ...

    def check(self, content: str) -> int: ...

    def publish(self, content: str, *, author: str, comment: str = "") -> VersionSummary: ...

    def rollback(self, *, author: str, to: int | None = None, comment: str = "") -> VersionSummary: ...


def get_catalogue(request: Request) -> CatalogueAdmin:
    found: CatalogueAdmin | None = getattr(request.app.state, "catalogue", None)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "this server has no ticket catalogue")
    return found


class CatalogueText(BaseModel):
    content: str = Field(min_length=1, max_length=MAX_CATALOGUE_CHARS, description="The catalogue (YAML text).")


class PublishRequest(CatalogueText):
    comment: str = Field("", max_length=2000)


class RollbackRequest(BaseModel):
    to: int | None = Field(None, ge=1, le=2**31 - 1, description="Version to restore (default: the one before).")
    comment: str = Field("", max_length=2000)


def _refused(exc: ValueError) -> HTTPException:
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        {"message": "catalogue refused", "errors": [part.strip() for part in str(exc).split(";")]},
    )


router = APIRouter(prefix="/api/admin/catalogue", tags=["catalogue"], dependencies=[Depends(admin)])
Catalogue = Depends(get_catalogue)


@router.get("")
async def in_force(catalogue: CatalogueAdmin = Catalogue) -> dict[str, Any]:
    """The version in force (null: the shipped file, nothing published) and every version, newest first."""
    history = [v.summary() for v in await run_in_threadpool(catalogue.history)]
    return {"version": history[0]["version"] if history else None, "history": history}


@router.get("/content")
async def content(
    version: int | None = Query(None, ge=1, le=2**31 - 1), catalogue: CatalogueAdmin = Catalogue
) -> dict[str, Any]:
    try:
        text = await run_in_threadpool(catalogue.content, version)
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    return {"version": version, "content": text}


@router.post("/validate")
async def validate(body: CatalogueText, catalogue: CatalogueAdmin = Catalogue) -> dict[str, Any]:
    try:
        leaves = await run_in_threadpool(catalogue.check, body.content)
    except ValueError as exc:
        raise _refused(exc) from exc
    return {"ok": True, "leaves": leaves}


@router.post("", status_code=status.HTTP_201_CREATED)
async def publish(
    body: PublishRequest,
    user: User = Depends(admin),  # noqa: B008
    catalogue: CatalogueAdmin = Catalogue,
) -> dict[str, object]:
    try:
        version = await run_in_threadpool(
            lambda: catalogue.publish(body.content, author=user.name, comment=body.comment)
        )
    except ValueError as exc:
        raise _refused(exc) from exc
    return version.summary()


@router.post("/rollback")
async def rollback(
    body: RollbackRequest,
    user: User = Depends(admin),  # noqa: B008
    catalogue: CatalogueAdmin = Catalogue,
) -> dict[str, object]:
    try:
        version = await run_in_threadpool(
            lambda: catalogue.rollback(author=user.name, to=body.to, comment=body.comment)
        )
    except LookupError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except ValueError as exc:
        raise _refused(exc) from exc
    return version.summary()
