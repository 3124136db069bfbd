"""Customer-store HTTP API.

* ``POST /crm/sources/{source}/records``: a CRM pushes a batch (a token of the
  integration role, e.g. ``IVR_CRM_TOKEN``, or of the admin role: ``ivr.api_tokens``). Same
  mapping, upsert, identity resolution and rejection report as ``ivr crm import``; the
  batch is one transaction.
* ``GET /crm/customers/{id}`` and ``GET /crm/customers?phone=&account=&name=``: the agent
  console's look-ups (admin role until agents sign in with their own credentials).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from crm_sync.config import Mappings, load_rules
from crm_sync.importer import import_batch
from crm_sync.mapping import MappingError
from crm_sync.profile import customer_document, merged_into, search
from ivr.auth.dependencies import require_admin, require_integration
from ivr.core.http import UNPROCESSABLE
from ivr.services import web

MAX_BATCH = 10_000


router = APIRouter(prefix="/crm", tags=["crm"])


class PushBody(BaseModel):
    kind: Literal["customers", "incidents", "interactions"] = "customers"
    records: list[Any] = Field(max_length=MAX_BATCH,
                               description="raw records in the source's own layout")


@router.post("/sources/{source}/records", dependencies=[Depends(require_integration)])
async def push_records(request: Request, source: str, body: PushBody) -> dict[str, Any]:
    """Upsert a batch from ``source``. Rejected records are listed with their position
    (0-based ``line``) and reason; they never stop the good ones."""
    settings = web(request).settings
    db = web(request).db
    try:
        rules = load_rules(settings.crm_dir / "rules.yaml")
        mapping = Mappings(settings.crm_dir / "mappings").get(source, body.kind)
    except MappingError as exc:
        raise HTTPException(500, f"customer-store configuration is broken: {exc}") from None
    now = web(request).clock.now()
    # A batch takes long enough that even on SQLite it runs off the event loop: webhooks
    # keep being answered meanwhile.
    report = await run_in_threadpool(import_batch, db.engine, body.records, mapping, rules,
                                     settings.default_region, now)
    return report.as_dict()


@router.get("/customers/{customer_id}", dependencies=[Depends(require_admin)],
            response_model=None)
async def get_customer(request: Request,
                       customer_id: Annotated[int, Path(ge=1, le=2**31 - 1)],  # INTEGER ids
                       ) -> dict[str, Any] | RedirectResponse:
    """The golden record, phones, e-mails, source records with lineage, incidents, recent
    interactions and merges. A customer merged into another redirects there (308)."""
    db = web(request).db

    def load() -> tuple[dict[str, Any] | None, int | None]:
        with db.engine.connect() as conn:
            doc = customer_document(conn, customer_id)
            return doc, (merged_into(conn, customer_id) if doc is None else None)

    doc, moved = await db.run(load)
    if doc is not None:
        return doc
    if moved is not None:
        return RedirectResponse(f"/crm/customers/{moved}", status_code=308)
    raise HTTPException(404, f"no customer {customer_id}")


@router.get("/customers", dependencies=[Depends(require_admin)], responses=UNPROCESSABLE)
async def find_customers(
        request: Request,
        phone: Annotated[str | None, Query(max_length=64)] = None,
        account: Annotated[str | None, Query(max_length=32)] = None,
        name: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    """Customers matching every given criterion: a phone in any format, an account number,
    part of a name. At least one is required."""
    if phone is None and account is None and not (name and name.strip()):
        raise HTTPException(422, "give phone, account or name")
    settings = web(request).settings
    db = web(request).db

    def load() -> list[dict[str, Any]]:
        with db.engine.connect() as conn:
            return search(conn, phone=phone, account=account, name=name,
                          region=settings.default_region)

    return {"customers": await db.run(load)}
