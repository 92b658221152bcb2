"""End to end: order webhook → membership card jobs → the InstantCard sandbox over real HTTP, real database."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from service.db import db, utcnow
from service.jobs.models import Job
from service.jobs.queue import enqueue
from service.membership.models import MembershipCard, MembershipPrintJob
from service.membership.rules import FUNDS_CHECK_KIND, JOB_KIND, PRINTED_FOR_CANCELLED_ORDER
from tests.support import ADMIN, DiesOnceAt, cancel_order, order_attention, order_completed, signed_webhook

GOLD = {"sku": "MEMBER-GOLD", "title": "Gold membership", "quantity": 1, "unit_price_cents": 5000}
GIFT = {"sku": "MEMBER-GOLD", "title": "Gold membership (gift)", "quantity": 1, "unit_price_cents": 5000}
TEE = {"sku": "TEE-1", "title": "T-shirt", "quantity": 2, "unit_price_cents": 1000}




def post_order(client, order_id="1001", lines=(GOLD, GIFT, TEE), **overrides):
    raw, headers = signed_webhook(order_completed(order_id, line_items=list(lines), **overrides))
    response = client.post("/v1/webhooks/orders", data=raw, headers=headers)
    assert response.status_code == 202, response.get_json()


def cards(app) -> list[MembershipCard]:
    with app.app_context():
        rows = list(db.session.scalars(sa.select(MembershipCard).order_by(MembershipCard.id)))
        db.session.expunge_all()
        return rows


def outcome_unknown_since(app) -> dict[str, object]:
    """Every `*_outcome_unknown_since` of the (one) card and its print job, by column."""
    with app.app_context():
        card = db.session.scalar(sa.select(MembershipCard))
        job = db.session.get(MembershipPrintJob, card.print_job_id) if card.print_job_id else None
        times = {"card.create": card.create_outcome_unknown_since,
                 "card.finalize": card.finalize_outcome_unknown_since, "card.add": card.add_outcome_unknown_since,
                 "print_job.create": job and job.create_outcome_unknown_since,
                 "print_job.submit": job and job.submit_outcome_unknown_since}
        db.session.rollback()
        return times


def print_jobs(app) -> list[MembershipPrintJob]:
    with app.app_context():
        rows = list(db.session.scalars(sa.select(MembershipPrintJob).order_by(MembershipPrintJob.id)))
        db.session.expunge_all()
        return rows


def job_states(app, kind=JOB_KIND) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(sa.select(Job.state).where(Job.kind == kind).order_by(Job.id)))


def later(hours=2):
    """A clock far enough ahead that every backoff delay has passed."""
    moment = utcnow() + timedelta(hours=hours)
    return lambda: moment


def test_two_membership_lines_make_two_submitted_cards_shipped_to_the_order_address(app, client, run_jobs,
                                                                                   instantcard):
    post_order(client)
    run_jobs(kinds=("plan_order_effects",))  # the cards are planned by the order's planning job
    planned = cards(app)
    assert [(c.line_index, c.unit_index, c.status) for c in planned] == [(0, 0, "pending"), (1, 0, "pending")]
    assert len({c.member_number for c in planned}) == 2
    assert all(c.member_number.startswith("M-") for c in planned)

    run_jobs()

    done = cards(app)
    assert [c.status for c in done] == ["submitted", "submitted"]
    assert job_states(app) == ["succeeded", "succeeded"]
    assert instantcard.counts()["cards"] == 2
    assert instantcard.counts()["submitted_print_jobs"] == 2
    for card in done:
        remote = instantcard.cards[int(card.instantcard_card_id)]
        assert remote["status"] == "finalized"
        assert remote["card_template_id"] == 101
        assert remote["data"]["Name"] == "Ada Lovelace"
        assert remote["data"]["Member Number"] == card.member_number
        assert remote["data"]["Expires"] == "2027-11-21"  # placed 2026-11-21, 12-month term
        with app.app_context():
            print_job = db.session.get(MembershipPrintJob, card.print_job_id)
            remote_job = instantcard.print_jobs[int(print_job.instantcard_print_job_id)]
            assert print_job.status == "submitted" and print_job.cost_cents == 350
        assert remote_job["card_ids"] == [int(card.instantcard_card_id)]
        assert remote_job["number_of_copies"] == 1
        assert remote_job["shipping_provider_id"] == 1
        assert remote_job["address"] == {"full_name": "Ada Lovelace", "address_1": "10 Main St",
                                         "city": "Springfield", "state": "IL", "zip_code": "62701",
                                         "country": "US"}
        assert card.job_cost_cents == 350
    assert instantcard.counts()["balance_cents"] == 100_00 - 2 * 350


def test_an_order_without_membership_products_makes_no_cards(app, client, run_jobs, instantcard):
    post_order(client, lines=(TEE,))
    run_jobs()
    assert cards(app) == []
    assert instantcard.counts()["cards"] == 0


def test_quantity_n_makes_n_cards_with_distinct_member_numbers(app, client, run_jobs, instantcard):
    post_order(client, lines=({**GOLD, "quantity": 3},))
    run_jobs()
    done = cards(app)
    assert [(c.line_index, c.unit_index, c.status) for c in done] == [(0, i, "submitted") for i in range(3)]
    assert len({c.member_number for c in done}) == 3
    assert instantcard.counts()["submitted_print_jobs"] == 3


@pytest.mark.parametrize("step", ["create_card", "finalize_card", "create_print_job", "check_balance", "charge_details",
                                  "submit_print_job"])
def test_token_expiring_mid_flow_is_refreshed_without_duplicates(app, client, run_jobs, instantcard, step):
    post_order(client, lines=(GOLD,))
    instantcard.expire_tokens_before(step)
    run_jobs()
    assert [c.status for c in cards(app)] == ["submitted"]
    assert job_states(app) == ["succeeded"]  # the 401 was absorbed inside the one attempt
    assert instantcard.counts()["cards"] == 1
    assert instantcard.counts()["print_jobs"] == 1
    assert instantcard.counts()["authentications"] == 2


def test_the_token_is_cached_in_the_database_and_shared(app, client, run_jobs, instantcard):
    post_order(client, lines=(GOLD,))
    run_jobs()
    post_order(client, order_id="1002", lines=(GOLD,))
    run_jobs()
    assert instantcard.counts()["authentications"] == 1
    with app.app_context():
        from service.providers.tokens import ProviderToken
        row = db.session.scalars(sa.select(ProviderToken)).one()
        assert row.provider == "instantcard" and row.account == "sandbox@example.com"
        assert row.expires_at is not None and row.expires_at > utcnow()


def printed_once(instantcard, card: MembershipCard) -> None:
    """InstantCard has the one card, on exactly one submitted print job, once, charged once; any other print job
    (an empty one left by a create whose answer was lost) holds nothing and was never submitted."""
    assert instantcard.counts()["cards"] == 1
    submitted = [j for j in instantcard.print_jobs.values() if j["status"] == 1]
    assert [j["card_ids"] for j in submitted] == [[int(card.instantcard_card_id)]]
    assert all(j["card_ids"] == [] for j in instantcard.print_jobs.values() if j["status"] != 1)
    assert instantcard.counts()["balance_cents"] == 100_00 - 350


LOST_ANSWER_STEPS = ["create_card", "finalize_card", "create_print_job", "add_cards", "submit_print_job"]


@pytest.mark.parametrize("step", LOST_ANSWER_STEPS)
@pytest.mark.parametrize("mode", ["apply_then_500", "error_500"])
def test_a_crash_after_each_step_resumes_without_duplicates(app, client, run_jobs, instantcard, step, mode):
    post_order(client, lines=(GOLD,))
    instantcard.inject_fault(step, mode)
    run_jobs()
    first = cards(app)[0]
    assert first.status != "submitted"
    assert job_states(app) == ["queued"]  # retry scheduled with backoff
    in_doubt = {"create_card": "card.create", "finalize_card": "card.finalize", "create_print_job": "print_job.create",
                "add_cards": "card.add", "submit_print_job": "print_job.submit"}[step]
    assert {name for name, since in outcome_unknown_since(app).items() if since is not None} == {in_doubt}

    run_jobs(clock=later())

    card = cards(app)[0]
    assert card.status == "submitted", card.last_error
    assert set(outcome_unknown_since(app).values()) == {None}  # every answer is on record
    printed_once(instantcard, card)


@pytest.mark.parametrize("step", LOST_ANSWER_STEPS)
def test_a_timeout_after_instantcard_acted_never_duplicates_a_card_or_a_print(app, client, run_jobs, instantcard,
                                                                               step):
    app.extensions["providers"].instantcard.http.timeout = (3.05, 0.3)
    instantcard.timeout_delay_seconds = 1.0
    post_order(client, lines=(GOLD,))
    instantcard.inject_fault(step, "timeout")
    run_jobs()
    assert job_states(app) == ["queued"]
    run_jobs(clock=later())
    [card] = cards(app)
    assert card.status == "submitted" and card.last_error is None
    printed_once(instantcard, card)


@pytest.mark.parametrize("accepted", [True, False])
def test_a_finalize_whose_answer_was_lost_is_repeated_and_a_refused_repeat_is_settled_by_the_print_job(
        app, client, run_jobs, instantcard, accepted):
    instantcard.repeat_finalize_accepted = accepted  # InstantCard's document does not say which it does
    post_order(client, lines=(GOLD,))
    instantcard.inject_fault("finalize_card", "apply_then_500")  # finalized at InstantCard, the answer lost
    instantcard.inject_fault("create_print_job", "error_500")  # the retry stops right after finalizing
    run_jobs()
    run_jobs(clock=later())

    [card] = cards(app)
    assert card.status == "finalized" and instantcard.calls["finalize_card"] == 2
    if accepted:  # the repeat's 2xx settles it
        assert outcome_unknown_since(app)["card.finalize"] is None
    else:  # refused: maybe because the first worked; still unknown until InstantCard takes it onto a print job
        assert outcome_unknown_since(app)["card.finalize"] is not None
    run_jobs(clock=later(4))
    [card] = cards(app)
    assert card.status == "submitted" and card.last_error is None
    assert set(outcome_unknown_since(app).values()) == {None}
    printed_once(instantcard, card)


def test_a_card_still_a_draft_after_a_refused_repeat_finalize_stops_for_a_person_and_prints_nothing(
        app, client, run_jobs, instantcard):
    post_order(client, lines=(GOLD,))
    instantcard.inject_fault("finalize_card", "error_500")  # never reached InstantCard…
    instantcard.inject_fault("finalize_card", "refuse_400")  # …and the repeat is refused: the card is a draft
    run_jobs()
    run_jobs(clock=later())

    [card] = cards(app)
    assert card.status == "failed" and job_states(app) == ["dead"]
    assert "check the card at InstantCard" in card.last_error
    assert instantcard.cards[int(card.instantcard_card_id)]["status"] == "draft"
    assert instantcard.counts()["submitted_print_jobs"] == 0 and instantcard.counts()["balance_cents"] == 100_00

    # A person finalizes it at InstantCard, then retries the job: it goes on from the print job on record.
    instantcard.cards[int(card.instantcard_card_id)]["status"] = "finalized"
    with app.app_context():
        job_id = db.session.scalar(sa.select(Job.id).where(Job.kind == JOB_KIND))
    assert client.post(f"/v1/jobs/{job_id}/retry", headers=ADMIN).status_code == 202
    run_jobs(clock=later(4))
    [card] = cards(app)
    assert card.status == "submitted"
    assert instantcard.counts()["print_jobs"] == 1
    printed_once(instantcard, card)


def test_insufficient_funds_parks_then_submits_after_funds_are_added(app, client, run_jobs, instantcard):
    instantcard.set_balance(100)  # $1.00; a card with shipping costs $3.50
    post_order(client, lines=(GOLD,))
    run_jobs()
    card = cards(app)[0]
    assert card.status == "waiting_for_funds"
    assert "balance" in card.last_error
    assert job_states(app) == ["parked"]
    assert instantcard.counts()["submitted_print_jobs"] == 0

    checks = instantcard.calls.get("check_balance", 0)
    with app.app_context():  # the cost is unknown before the submit: a positive balance wakes the job to ask again
        enqueue(db.session, FUNDS_CHECK_KIND, dedupe_key="funds-1")
        db.session.commit()
    run_jobs()
    assert job_states(app) == ["parked"] and cards(app)[0].status == "waiting_for_funds"
    assert instantcard.calls["check_balance"] == checks + 1  # Check Balance still said false
    assert "charge_details" not in instantcard.calls  # never asked of a print job not submitted

    instantcard.add_funds(10_00)
    with app.app_context():
        enqueue(db.session, FUNDS_CHECK_KIND, dedupe_key="funds-2")
        db.session.commit()
    run_jobs()

    card = cards(app)[0]
    assert card.status == "submitted" and card.last_error is None
    assert job_states(app) == ["succeeded"]
    assert instantcard.counts()["print_jobs"] == 1
    assert instantcard.counts()["balance_cents"] == 11_00 - 350
    [job] = print_jobs(app)
    assert (job.cost_cents, job.shipping_cost_cents) == (350, 100)  # from charge details, after the submit


@pytest.mark.parametrize("mode", ["error_500", "refuse_400"])
def test_charge_details_unread_after_the_submit_leave_the_card_printed_and_say_so(app, client, run_jobs,
                                                                                  instantcard, mode):
    """Charge details come after the submit (the documented order): the cards are printed whatever they say."""
    post_order(client, lines=(GOLD,))
    instantcard.inject_fault("charge_details", mode)
    run_jobs()
    assert [c.status for c in cards(app)] == ["submitted"] and job_states(app) == ["succeeded"]
    [job] = print_jobs(app)
    assert job.status == "submitted" and job.cost_cents is None
    assert job.last_error.startswith("submitted; InstantCard's charge details could not be read")
    assert instantcard.counts()["submitted_print_jobs"] == 1


def test_a_run_after_the_submit_reads_the_charge_details_it_missed_and_submits_nothing_again(app, client, run_jobs,
                                                                                              instantcard):
    post_order(client, lines=(GOLD,))
    providers = app.extensions["providers"]
    providers.instantcard = DiesOnceAt(providers.instantcard, "charge_details")  # between the submit and its costs
    run_jobs()
    [job] = print_jobs(app)
    assert job.status == "submitted" and job.cost_cents is None and job_states(app) == ["queued"]
    run_jobs(clock=later())
    [job] = print_jobs(app)
    assert (job.cost_cents, job.shipping_cost_cents) == (350, 100) and job_states(app) == ["succeeded"]
    assert instantcard.counts()["submitted_print_jobs"] == 1 and instantcard.calls["submit_print_job"] == 1


def test_submit_refused_for_funds_after_a_passing_check_also_parks(app, client, run_jobs, instantcard):
    post_order(client, lines=(GOLD,))
    # The balance drops between Check Balance and the submit (another job spent it).
    instantcard.set_balance(100_00)
    original = instantcard.take_fault

    def drain_balance(step):
        if step == "submit_print_job":
            instantcard.set_balance(0)
        return original(step)

    instantcard.take_fault = drain_balance
    try:
        run_jobs()
    finally:
        instantcard.take_fault = original
    assert cards(app)[0].status == "waiting_for_funds"
    assert job_states(app) == ["parked"]


def test_a_cancelled_order_creates_no_cards(app, client, run_jobs, instantcard):
    post_order(client, lines=(GOLD,))
    cancel_order(client)
    run_jobs()
    assert [c.status for c in cards(app)] == ["cancelled"]
    assert instantcard.counts()["cards"] == 0


def test_a_cancellation_between_steps_stops_before_printing(app, client, run_jobs, instantcard):
    post_order(client, lines=(GOLD,))
    instantcard.inject_fault("create_print_job", "error_500")
    run_jobs()
    assert cards(app)[0].status == "finalized"
    cancel_order(client)
    run_jobs(clock=later())
    assert cards(app)[0].status == "cancelled"
    assert instantcard.counts()["print_jobs"] == 0


def test_an_order_without_a_shipping_address_fails_with_the_reason(app, client, run_jobs, instantcard):
    post_order(client, lines=(GOLD,), shipping_address=None)
    run_jobs()
    card = cards(app)[0]
    assert card.status == "failed"
    assert "shipping address" in card.last_error
    assert job_states(app) == ["dead"]
    assert instantcard.counts()["print_jobs"] == 0


class _CancelsDuring:
    """The InstantCard client, except that the shop cancels the order while `method` is being called."""

    def __init__(self, real, client, method: str, order_id: str, before_call: bool = True):
        self._real, self._client, self._method, self._order_id = real, client, method, order_id
        self._before = before_call

    def __getattr__(self, name):
        attribute = getattr(self._real, name)
        if name != self._method:
            return attribute

        def call(*args, **kwargs):
            if self._before:
                cancel_order(self._client, self._order_id)
            result = attribute(*args, **kwargs)
            if not self._before:
                cancel_order(self._client, self._order_id)
            return result

        return call


def test_an_order_cancelled_while_funds_are_checked_is_not_printed_or_charged(app, client, run_jobs, instantcard):
    post_order(client, lines=(GOLD,))
    providers = app.extensions["providers"]
    providers.instantcard = _CancelsDuring(providers.instantcard, client, "check_balance", "1001")
    run_jobs()
    assert [c.status for c in cards(app)] == ["cancelled"]
    assert instantcard.counts()["submitted_print_jobs"] == 0
    assert instantcard.counts()["balance_cents"] == 100_00


def test_a_cancellation_racing_the_submit_is_recorded_as_printed(app, client, run_jobs, instantcard):
    post_order(client, lines=(GOLD,))
    providers = app.extensions["providers"]
    providers.instantcard = _CancelsDuring(providers.instantcard, client, "submit_print_job", "1001",
                                           before_call=False)
    run_jobs()
    [card] = cards(app)
    assert card.status == "submitted" and "cancelled" in card.last_error
    assert instantcard.counts()["submitted_print_jobs"] == 1
    # The order's attention items also tell of its thank-you card, placed before the cancellation.
    assert (f"[{PRINTED_FOR_CANCELLED_ORDER}] Membership card {card.member_number} was printed and charged"
            in order_attention(app))


def test_card_jobs_get_the_configured_number_of_attempts(app, client, run_jobs):
    import dataclasses

    app.extensions["settings"] = dataclasses.replace(app.extensions["settings"], job_max_attempts=3)
    post_order(client, lines=(GOLD,))
    run_jobs()  # the planning job writes the card jobs
    with app.app_context():
        assert db.session.scalars(sa.select(Job.max_attempts).where(Job.kind == JOB_KIND)).all() == [3]
