"""Tables of the retention feature (registered on ``Base.metadata`` by importing this module).

``exit_interviews``: each time a customer said why they may leave — in the wrap-up of a call
(any queue; the retention queue's count in its saved rate) — with the reason code of the
admin's list, the free text, whether they stayed, and the profile at that moment (tier,
segment, branch, customer since) that the leaving report groups by.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from crm_sync.models import Customer, Interaction
from ivr.agents.models import QueueEntry
from ivr.core.db import Base, UTCDateTime
from ivr.surveys.models import SurveyResponse


class ExitInterview(Base):
    """A customer's leaving reason, recorded once per call and source."""

    __tablename__ = "exit_interviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    call_sid: Mapped[str | None] = mapped_column(String(64))
    interaction_id: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16))  # wrapup / ivr
    queue: Mapped[str | None] = mapped_column(String(64))
    agent: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(String(64))  # a code of wrapup.yaml's list
    reason_text: Mapped[str | None] = mapped_column(Text)  # the customer's words
    # True: the customer stayed (saved); False: leaves; None: not known yet.
    stayed: Mapped[bool | None] = mapped_column(Boolean)
    # The profile when they said it: what the leaving report groups by.
    tier: Mapped[str | None] = mapped_column(String(32))
    segment: Mapped[str | None] = mapped_column(String(32))
    branch: Mapped[str | None] = mapped_column(String(64))
    customer_since: Mapped[datetime | None] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        UniqueConstraint("call_sid", "source", name="uq_exit_interviews_call_sid_source"),
        Index("ix_exit_interviews_customer_recorded", "customer_id", "recorded_at"),
        Index("ix_exit_interviews_recorded", "recorded_at"),
    )


exit_interviews: Table = ExitInterview.__table__  # type: ignore[assignment]

# The leaving-risk signal reads a customer's abandoned calls on every identified call (the
# pop, the IVR's "leaving-risk customer goes first"): by customer on an index, not a scan of
# every queue entry. The table is the agents feature's; the index is this feature's need.
Index("ix_queue_entries_customer_entered", QueueEntry.customer_id, QueueEntry.entered_at)

# Everyone at risk now (the leaving report's list) reads each signal over the window for all
# customers: these partial indexes hold only the rows that are signals, so the report reads
# those instead of scanning every call, interaction and survey (bench/retention.py). Promises
# due: the follow-ups feature's ix_interactions_promised_due serves both.
_ONLY_LEAVING = "status IN ('leaving', 'left')"
Index("ix_customers_leaving", Customer.id,
      postgresql_where=text(_ONLY_LEAVING), sqlite_where=text(_ONLY_LEAVING))
Index("ix_queue_entries_abandoned_entered", QueueEntry.entered_at,
      postgresql_where=text("status = 'abandoned'"),
      sqlite_where=text("status = 'abandoned'"))
Index("ix_interactions_leaving_started", Interaction.started_at,
      postgresql_where=text("leaving_reason IS NOT NULL"),
      sqlite_where=text("leaving_reason IS NOT NULL"))
Index("ix_survey_responses_low_started", SurveyResponse.started_at,
      postgresql_where=text("low IS true"), sqlite_where=text("low IS 1"))
