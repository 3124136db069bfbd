"""The reports' rollup: counters per day (the centre's calendar), queue and agent, and the
wait histogram beside them, so a report over months reads thousands of rows rather than
every call. Rebuilt for a day from the calls' own tables (``ivr.reports.repository.
refresh``); a day is listed in ``report_rolled_days`` once it has been rolled up, and a
report computes any day not listed (today, always) from the calls themselves."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, Index, Integer, String, Table
from sqlalchemy.orm import Mapped, mapped_column

from callbacks.models import callback_requests
from crm_sync.models import interactions
from ivr.agents.models import queue_entries
from ivr.core.db import Base, UTCDateTime


class ReportDay(Base):
    __tablename__ = "report_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    queue: Mapped[str] = mapped_column(String(64), primary_key=True)  # "" = the menu's row
    agent_id: Mapped[int] = mapped_column(Integer, primary_key=True)  # 0 = not answered
    inbound: Mapped[int] = mapped_column(Integer, default=0)
    abandoned_menu: Mapped[int] = mapped_column(Integer, default=0)
    offered: Mapped[int] = mapped_column(Integer, default=0)
    answered: Mapped[int] = mapped_column(Integer, default=0)
    abandoned_queue: Mapped[int] = mapped_column(Integer, default=0)
    callback_left: Mapped[int] = mapped_column(Integer, default=0)
    wait_sum: Mapped[int] = mapped_column(BigInteger, default=0)
    cb_met: Mapped[int] = mapped_column(Integer, default=0)
    cb_missed: Mapped[int] = mapped_column(Integer, default=0)
    fcr_calls: Mapped[int] = mapped_column(Integer, default=0)
    fcr_ok: Mapped[int] = mapped_column(Integer, default=0)
    identified: Mapped[int] = mapped_column(Integer, default=0)
    repeats: Mapped[int] = mapped_column(Integer, default=0)
    csat_n: Mapped[int] = mapped_column(Integer, default=0)
    csat_sum: Mapped[int] = mapped_column(Integer, default=0)
    fu_due: Mapped[int] = mapped_column(Integer, default=0)
    fu_on_time: Mapped[int] = mapped_column(Integer, default=0)
    pr_due: Mapped[int] = mapped_column(Integer, default=0)
    pr_kept: Mapped[int] = mapped_column(Integer, default=0)


class ReportWait(Base):
    """How many answered calls waited ``wait_s`` (a bucket: ``rollup.wait_bucket``)."""

    __tablename__ = "report_waits"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    queue: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    wait_s: Mapped[int] = mapped_column(Integer, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)


class ReportRolledDay(Base):
    """A day whose rollup rows are in place (a day without calls has none, but is listed)."""

    __tablename__ = "report_rolled_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    zone: Mapped[str] = mapped_column(String(64))  # the centre's zone it was cut in
    rolled_at: Mapped[datetime] = mapped_column(UTCDateTime())


report_days: Table = ReportDay.__table__  # type: ignore[assignment]
report_waits: Table = ReportWait.__table__  # type: ignore[assignment]
report_rolled_days: Table = ReportRolledDay.__table__  # type: ignore[assignment]


# The days a report computes from the calls themselves (today; days not rolled up yet)
# read the calls' own tables by time: these indexes make that a range scan.
Index("ix_queue_entries_entered_at", queue_entries.c.entered_at)
Index("ix_interactions_started_at", interactions.c.started_at)
Index("ix_callback_requests_requested_at", callback_requests.c.requested_at)
