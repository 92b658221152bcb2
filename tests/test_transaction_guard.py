"""No provider call is made while a database transaction is open.

tests/conftest.py switches `transaction_guard` on for every test, so every flow of the suite enforces the rule; these
tests show that the guard really catches a call made inside a transaction (in a test's own thread and inside a job
whose handler swallows every exception), that `call_provider` ends the transaction first, and that the tracking is
per thread.
"""

from __future__ import annotations

import contextlib
import threading

import pytest
import sqlalchemy as sa

from service.db import TransactionHeldOpen, call_provider, db, transaction_guard
from service.jobs import enqueue
from service.jobs.models import Job
from service.jobs.registry import handler
from service.orders.models import Order


def _take_violations() -> list[str]:
    """What the guard recorded, cleared so the suite's own check does not fail this test for the violation it planted."""
    taken = list(transaction_guard.violations)
    transaction_guard.violations.clear()
    return taken


def test_a_provider_call_inside_a_transaction_is_refused_and_recorded(app):
    cardly = app.extensions["providers"].cardly
    with app.app_context():
        db.session.scalar(sa.select(sa.func.count()).select_from(Order))  # opens a transaction
        assert transaction_guard.open_in_this_thread() == 1
        with pytest.raises(TransactionHeldOpen, match="cardly GET account/balance"):
            cardly.account_balance()
        [violation] = _take_violations()
        assert "test_transaction_guard.py" in violation  # says where the call was made
        db.session.commit()
        assert transaction_guard.open_in_this_thread() == 0
        assert cardly.account_balance().credits >= 0  # the same call with the transaction ended goes through


def test_call_provider_commits_before_calling(app):
    cardly = app.extensions["providers"].cardly
    with app.app_context():
        db.session.add(Order(shop_order_id="guard-1", currency="USD", total_cents=100, gift_card_cents=0, payload={}))
        db.session.flush()
        balance = call_provider(db.session, cardly.account_balance)
        assert balance.credits >= 0
        assert transaction_guard.open_in_this_thread() == 0
    with app.app_context():  # what the step wrote before the call was committed, not thrown away
        assert db.session.scalar(sa.select(Order.shop_order_id)) == "guard-1"
        db.session.rollback()
    assert _take_violations() == []


@handler("test_holds_transaction_across_a_call")
def _holds_transaction_across_a_call(ctx) -> None:
    """A handler that breaks the rule and hides it: it reads, calls Cardly in the same transaction, swallows errors."""
    ctx.session.scalar(sa.select(sa.func.count()).select_from(Order))
    with contextlib.suppress(Exception):  # the point: the job itself would never show the failure
        ctx.providers.cardly.account_balance()


def test_a_violation_inside_a_job_fails_the_test_even_when_the_job_swallows_it(app, run_jobs):
    with app.app_context():
        enqueue(db.session, "test_holds_transaction_across_a_call")
        db.session.commit()
    assert run_jobs() == 1
    with app.app_context():
        assert db.session.scalar(sa.select(Job.state)) == "succeeded"  # the job saw nothing wrong
        db.session.rollback()
    [violation] = _take_violations()
    assert "cardly GET account/balance" in violation and "_holds_transaction_across_a_call" in violation


def test_another_threads_transaction_does_not_count_here(app):
    cardly = app.extensions["providers"].cardly
    began, release = threading.Event(), threading.Event()

    def hold_a_transaction() -> None:
        with app.app_context():
            db.session.scalar(sa.select(sa.func.count()).select_from(Order))
            began.set()
            release.wait(10)
            db.session.rollback()

    other = threading.Thread(target=hold_a_transaction)
    other.start()
    try:
        assert began.wait(10)
        assert transaction_guard.open_in_this_thread() == 0
        assert cardly.account_balance().credits >= 0
    finally:
        release.set()
        other.join()
    assert _take_violations() == []
