"""Shapes of HTTP answers shared by the JSON APIs (documented in their OpenAPI schema)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Unprocessable(BaseModel):
    """A 422: FastAPI's validation errors (a list), or a handler's own reason (a text)."""

    detail: str | list[dict[str, Any]]


#: ``responses=`` of a route whose handler also answers 422 with a text reason.
UNPROCESSABLE: dict[int | str, dict[str, Any]] = {
    422: {"model": Unprocessable, "description": "The request cannot be processed"}}
