"""What staff do to the queue and to orders, from the console or the API, each written to the audit trail with
who asked, from where and through what (`via`: "console" or "api")."""

from __future__ import annotations

from sqlalchemy.orm import Session

from service.audit.rules import record
from service.jobs.models import Job
from service.jobs.queue import retry_by_person
from service.logs import redact
from service.orders.attention import resolve_attention
from service.orders.models import OrderAttentionItem


def retry_for_staff(session: Session, job_id: int, *, staff: str, address: str, via: str) -> Job:
    """A person's retry of a dead or parked job (404/409 as retry_by_person), audited."""
    job = retry_by_person(session, job_id, by=staff)
    record(session, "retry", staff=staff, address=address, order_id=job.order_id,
           detail=f"job {job.id} ({job.kind}) queued again via the {via}")
    session.commit()
    return job


def resolve_for_staff(session: Session, shop_order_id: str, item_id: int, *, staff: str, address: str,
                      note: str | None, via: str) -> OrderAttentionItem:
    """A person marks an attention item resolved (404/409 as resolve_attention), audited with the note."""
    item = resolve_attention(session, shop_order_id, item_id, by=staff, note=note)
    detail = f"attention item {item.id} ({item.kind}) resolved via the {via}"
    if item.resolution_note:
        detail += f": {redact(item.resolution_note)}"
    record(session, "resolve", staff=staff, address=address, order_id=item.order_id, detail=detail)
    session.commit()
    return item
