"""What the overview page shows: the gift-card totals of today and the last 30 days (the reconciliation rules),
redeemed dollars per day as chart bars, the counts a person should look at, and the last providers check."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from service.jobs.models import Job
from service.jobs.queue import not_periodic
from service.orders.models import OrderAttentionItem
from service.providers.preflight import Report
from service.reports.listing import DateRange
from service.reports.reconciliation import reconciliation_report

CHART_DAYS = 30
# The overview's figures, in the order the page lists them (keys of the report's gift_cards section).
GIFT_CARD_FIGURES = (("applied_cents", "Applied"), ("redeemed_cents", "Redeemed"), ("rounding_cents", "Rounding"),
                     ("forfeit_cents", "Forfeit"), ("shortfall_cents", "Shortfall"))
CHART_WIDTH, CHART_HEIGHT, CHART_TOP = 720, 200, 10


@dataclass(frozen=True)
class Bar:
    """One day's bar of the chart: its place in the SVG and what it stands for."""

    day: date
    cents: int
    x: float
    y: float
    width: float
    height: float


def chart_bars(days: list[tuple[date, int]]) -> list[Bar]:
    """Bars scaled to the chart's height (the highest day fills it); a day with nothing has no height."""
    highest = max((cents for _, cents in days), default=0) or 1
    slot = CHART_WIDTH / max(len(days), 1)
    bars = []
    for index, (day, cents) in enumerate(days):
        height = (CHART_HEIGHT - CHART_TOP) * max(cents, 0) / highest
        bars.append(Bar(day, cents, round(index * slot + slot * 0.15, 1), round(CHART_HEIGHT - height, 1),
                        round(slot * 0.7, 1), round(height, 1)))
    return bars


def overview(session: Session, now: datetime) -> dict[str, Any]:
    """Totals for today and the last 30 days, the chart's days, and the counts of what needs a person."""
    today = now.date()
    month = reconciliation_report(session, DateRange.for_days(today - timedelta(days=CHART_DAYS - 1), today), now)
    today_totals = month["days"][-1]["gift_cards"]
    days = [(date.fromisoformat(day["date"]), day["gift_cards"]["redeemed_cents"]) for day in month["days"]]
    jobs = dict(session.execute(sa.select(Job.state, sa.func.count()).where(
        Job.state.in_(("dead", "parked")), not_periodic()).group_by(Job.state)).all())
    return {
        "figures": [(label, today_totals[key], month["overall"]["gift_cards"][key]) for key, label in GIFT_CARD_FIGURES],
        "days": days,
        "bars": chart_bars(days),
        "dead_jobs": jobs.get("dead", 0),
        "parked_jobs": jobs.get("parked", 0),
        "attention_orders": session.scalar(
            sa.select(sa.func.count(sa.distinct(OrderAttentionItem.order_id)))
            .where(OrderAttentionItem.resolved_at.is_(None))) or 0,
    }


@dataclass(frozen=True)
class CheckRun:
    """A providers check and when it ran."""

    report: Report
    at: datetime


class LastCheck:
    """The last providers check this web process ran: the overview shows it rather than calling the providers on
    every view (a person runs it again with the page's button)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._run: CheckRun | None = None

    def get(self) -> CheckRun | None:
        """The last run, or None before the first."""
        with self._lock:
            return self._run

    def put(self, report: Report, at: datetime) -> CheckRun:
        """Keep `report` as the last run."""
        with self._lock:
            self._run = CheckRun(report, at)
            return self._run
