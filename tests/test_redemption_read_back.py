"""Read-backs cost what happened, not the merchant's history: with 2,500 certificates and 1,200 redemptions in
the sandbox, a split finds its child and an uncertain redemption settles in at most 3 list calls each, through
the real redemption job, worker and database."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from service.db import db, utcnow
from service.redemption.models import GiftCardRedemption
from tests.support import order_paid_with_gift_card

CERTIFICATES, REDEMPTIONS = 2_500, 1_200
MAX_LIST_CALLS = 3


@pytest.fixture
def environ(environ):
    environ["LOOKUP_RATE_LIMIT"] = "10000/minute"
    environ["CART_CREATE_RATE_LIMIT"] = "10000/minute"
    return environ


@pytest.fixture(params=["oldest_first", "newest_first"])
def busy_merchant(request, app, instagift):
    """The sandbox with a long history, served in either order (the docs do not say which)."""
    instagift.seed_history(CERTIFICATES, REDEMPTIONS)
    instagift.list_order = request.param
    return instagift


def the_redemption(app) -> GiftCardRedemption:
    with app.app_context():
        row = db.session.scalar(sa.select(GiftCardRedemption))
        db.session.expunge_all()
        return row


def list_calls(instagift) -> tuple[int, int]:
    """(certificate list calls, redemption list calls) since the last look, and start counting again."""
    with instagift.lock:
        counted = (instagift.calls["list_certificates"], instagift.calls["list_redemptions"])
        instagift.calls.clear()
    return counted


def later():
    return utcnow() + timedelta(minutes=30)


def test_a_split_finds_its_child_in_at_most_three_list_calls(app, client, busy_merchant, run_jobs):
    instagift = busy_merchant
    cert_id, _ = order_paid_with_gift_card(client, instagift, "7001")
    list_calls(instagift)
    run_jobs()
    row = the_redemption(app)
    [child] = instagift.children_of(cert_id)
    assert (row.state, row.redeemed_cents) == ("succeeded", 3000)
    assert (row.child_certificate_id, row.child_balance_cents) == (child["id"], 7000)
    certificate_lists, redemption_lists = list_calls(instagift)
    assert 1 <= certificate_lists <= MAX_LIST_CALLS and redemption_lists == 0
    assert row.attempt_started_at is not None


def test_an_uncertain_redemption_settles_in_at_most_three_list_calls_each(app, client, busy_merchant, run_jobs):
    instagift = busy_merchant
    cert_id, _ = order_paid_with_gift_card(client, instagift, "7002")
    instagift.inject_fault("redeem_certificate", "apply_then_500")
    run_jobs()
    assert the_redemption(app).outcome_unknown
    list_calls(instagift)

    run_jobs(clock=later)  # reads the certificate back: redeemed as asked, so it finds what happened

    row = the_redemption(app)
    [redeemed] = instagift.redemptions_for(cert_id)
    [child] = instagift.children_of(cert_id)
    assert (row.state, row.redeemed_cents, row.attempts) == ("succeeded", 3000, 1)
    assert row.provider_redemption_id == redeemed["id"] and row.error is None
    assert (row.child_certificate_id, row.child_balance_cents) == (child["id"], 7000)
    certificate_lists, redemption_lists = list_calls(instagift)
    assert 1 <= certificate_lists <= MAX_LIST_CALLS and 1 <= redemption_lists <= MAX_LIST_CALLS


def test_a_row_from_before_attempt_times_were_recorded_still_settles(app, client, busy_merchant, run_jobs):
    instagift = busy_merchant
    cert_id, _ = order_paid_with_gift_card(client, instagift, "7003")
    instagift.inject_fault("redeem_certificate", "apply_then_500")
    run_jobs()
    with app.app_context():
        db.session.scalar(sa.select(GiftCardRedemption)).attempt_started_at = None  # as migrated rows are
        db.session.commit()
    list_calls(instagift)
    run_jobs(clock=later)
    row = the_redemption(app)
    assert row.provider_redemption_id == instagift.redemptions_for(cert_id)[0]["id"]
    assert row.child_certificate_id == instagift.children_of(cert_id)[0]["id"]
    assert all(calls <= MAX_LIST_CALLS for calls in list_calls(instagift))


def test_a_child_the_list_does_not_show_leaves_the_computed_balance(app, client, instagift, run_jobs):
    cert_id, _ = order_paid_with_gift_card(client, instagift, "7004")
    instagift.inject_fault("list_certificates", "error_500")
    run_jobs()
    row = the_redemption(app)
    assert instagift.children_of(cert_id)  # Instagift did split it; the list could not be read
    assert (row.state, row.child_certificate_id, row.child_balance_cents) == ("succeeded", None, 7000)
