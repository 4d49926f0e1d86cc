"""Address by typing: the address card's search over the gazetteer (names, pinyin, initials)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from agent_desktop_api.desktop_models import ERRORS
from agent_desktop_api.desktop_routes import Anyone, Desk
from events.address import PlaceHit

router = APIRouter(prefix="/api", tags=["gazetteer"])


class PlaceHits(BaseModel):
    places: list[PlaceHit]


@router.get("/gazetteer/search", responses={**ERRORS, 503: {"description": "No gazetteer loaded."}})
async def search_places(
    user: Anyone,
    desktop: Desk,
    q: Annotated[str, Query(min_length=1, max_length=40, description="Part of a name, its pinyin or initials.")],
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> PlaceHits:
    """Streets/towns first, then communities/villages, whose name starts with or contains `q`, or whose pinyin or
    pinyin initials start with it."""
    search = desktop.place_search
    if search is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no gazetteer: run `hotline-tools gazetteer build`")
    return PlaceHits(places=await run_in_threadpool(search, q, limit))
