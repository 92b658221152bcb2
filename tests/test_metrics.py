"""GET /metrics after real flows (single-process mode: the test process's own registry): a full order through the
sandbox providers (webhook → jobs → redemption, thank-you card), retries counted once, jobs in each state read from
the table, rate-limit rejections, the admin token, and the documented alert rules naming real metrics.

Counters live as long as the process, so each test compares a scrape after its flow with one before it.
"""

from __future__ import annotations

import re
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from service import create_app
from service import metrics as service_metrics
from service.db import db, utcnow
from service.errors import ProviderAuthError, ProviderUnavailable
from service.jobs import enqueue
from service.jobs.models import Job
from service.jobs.registry import Park, handler
from service.providers.cardly import CardlyClient
from service.providers.instagift import normalise_claim_code
from service.redemption.models import GiftCardRedemption
from service.redemption.rules import redeem
from service.thank_you.models import ThankYouCard
from tests.support import ADMIN, SHOP, order_completed, signed_webhook

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "instagift_checkout_"


@pytest.fixture
def environ(environ):
    environ["LOOKUP_RATE_LIMIT"] = "1000/minute"
    environ["CART_CREATE_RATE_LIMIT"] = "1000/minute"
    return environ


def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of one scrape: (sample name, sorted labels) → value."""
    answer = client.get("/metrics", headers=ADMIN)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.get_data(as_text=True))
            for sample in family.samples}


class Counted:
    """What a flow added to the metrics: a scrape after it minus the scrape before it."""

    def __init__(self, client):
        self.client = client
        self.before = scrape(client)
        self.after: dict = {}

    def again(self) -> Counted:
        self.after = scrape(self.client)
        return self

    def __call__(self, name: str, **labels: str) -> float:
        key = (PREFIX + name, tuple(sorted(labels.items())))
        if key not in self.after and key not in self.before:
            # No series yet is a count of 0 only for labels the metric has: a misspelt label must not read as 0.
            assert set(labels) == declared_labels(name), f"{name} is not labelled by {sorted(labels)}"
        return self.after.get(key, 0) - self.before.get(key, 0)


def declared_labels(sample_name: str) -> set[str]:
    """The label names of the service's metric a sample name belongs to (a histogram's buckets add `le`)."""
    family = re.sub(r"_(total|count|sum|bucket|created)$", "", sample_name)
    declared = {metric._name: metric for metric in vars(service_metrics).values() if isinstance(metric, MetricWrapperBase)}
    assert PREFIX + family in declared, f"{sample_name} is no metric of the service"
    return set(declared[PREFIX + family]._labelnames) | ({"le"} if sample_name.endswith("_bucket") else set())


def completed_order(client, instagift, order_id: str, *, balance: int, total: int, splittable: bool = True,
                    accept_forfeit: bool = False) -> tuple[str, str, bytes, dict[str, str]]:
    """A cart with one certificate applied and verified, completed by a signed webhook; returns the certificate id,
    its claim code and the webhook (to deliver it again)."""
    certificate_id, code = instagift.add_certificate(balance, splittable=splittable)
    token = client.post("/v1/carts", json={"total_cents": total}).get_json()["cart_token"]
    applied = client.post(f"/v1/carts/{token}/gift-cards", json={"claim_code": code, "accept_forfeit": accept_forfeit})
    assert applied.status_code == 200, applied.get_json()
    assert client.post(f"/v1/carts/{token}/verify", headers=SHOP).status_code == 200
    raw, headers = signed_webhook(order_completed(order_id, cart_token=token, total_cents=total,
                                                  gift_card_cents=applied.get_json()["covered_cents"]))
    assert client.post("/v1/webhooks/orders", data=raw, headers=headers).status_code == 202
    return certificate_id, code, raw, headers


def test_a_full_order_through_the_sandbox_is_counted_once_in_every_metric(app, client, instagift, run_jobs):
    counted = Counted(client)
    split_id, split_code, raw, headers = completed_order(client, instagift, "8001", balance=10000, total=5250)
    whole_id, whole_code, *_ = completed_order(client, instagift, "8002", balance=8000, total=5250,
                                               splittable=False, accept_forfeit=True)
    short_id, short_code, *_ = completed_order(client, instagift, "8003", balance=10000, total=3000)
    instagift.spend_elsewhere(short_id, 8000, split=False)  # a cashier took most of it before the redemption
    assert client.post("/v1/webhooks/orders", data=raw, headers=headers).status_code == 200  # a redelivery
    forged = {**headers, "webhook-signature": "v1,bm90IGEgc2lnbmF0dXJl"}
    assert client.post("/v1/webhooks/orders", data=raw, headers=forged).status_code == 401

    run_jobs()
    with app.app_context():  # the redemption job run again on settled rows: nothing more happens or is counted
        for row_id in db.session.scalars(sa.select(GiftCardRedemption.id)).all():
            redeem(db.session, app.extensions["settings"], app.extensions["providers"].instagift, row_id, utcnow)
        rows = {row.certificate_id: row for row in db.session.scalars(sa.select(GiftCardRedemption))}
        cards_placed = db.session.scalar(sa.select(sa.func.count()).where(ThankYouCard.status == "placed"))
        db.session.expunge_all()
    counted.again()

    assert (rows[split_id].state, rows[whole_id].state, rows[short_id].state) == ("succeeded", "succeeded",
                                                                                  "shortfall")
    assert counted("webhooks_received_total", result="accepted") == 3
    assert counted("webhooks_received_total", result="duplicate") == 1
    assert counted("webhooks_received_total", result="webhook_signature_invalid") == 1

    # Money: $52 of the $100 card; the $80 non-splittable card whole ($52.50 due: 50 ¢ rounding, $27 forfeit);
    # $20 of the $30 intended from the card a cashier had spent down to $20.
    assert counted("gift_card_applied_cents_total") == 5200 + 5300 + 3000
    assert counted("gift_card_redeemed_cents_total") == 5200 + 8000 + 2000
    assert counted("gift_card_rounding_cents_total", direction="up") == 50
    assert counted("gift_card_rounding_cents_total", direction="down") == 0
    assert counted("gift_card_forfeit_cents_total") == 2700
    assert counted("gift_card_shortfall_cents_total") == 1000
    today = datetime.now(UTC).date().isoformat()
    totals = client.get(f"/v1/reconciliation?from={today}", headers=ADMIN).get_json()["overall"]["gift_cards"]
    for figure in ("applied", "redeemed", "forfeit", "shortfall"):  # the same figures as the merchant's report
        assert counted(f"gift_card_{figure}_cents_total") == totals[f"{figure}_cents"]

    assert counted("job_run_seconds_count", kind="plan_order_effects", outcome="succeeded") == 3
    assert counted("job_run_seconds_count", kind="redeem_gift_card", outcome="succeeded") == 3
    assert counted("job_run_seconds_count", kind="send_thank_you_card", outcome="succeeded") == cards_placed == 3
    assert counted("provider_calls_total", provider="instagift", operation="redeem_certificate", outcome="ok") == 3
    assert counted("provider_calls_total", provider="instagift", operation="fetch_by_claim_code", outcome="ok") >= 3
    assert counted("provider_calls_total", provider="cardly", operation="place_order", outcome="ok") == 3
    assert counted("provider_call_seconds_count", provider="instagift", operation="redeem_certificate") == 3
    assert counted("provider_call_seconds_bucket", provider="instagift", operation="redeem_certificate",
                   le="+Inf") == 3
    for state in ("queued", "running", "parked", "dead"):
        assert counted.after[(PREFIX + "jobs", (("kind", "redeem_gift_card"), ("state", state)))] == 0

    text = client.get("/metrics", headers=ADMIN).get_data(as_text=True)
    for secret in (split_code, whole_code, short_code, normalise_claim_code(split_code), split_id, whole_id,
                   short_id, "dev-admin-token"):
        assert secret not in text


def test_a_redemption_retried_after_an_unknown_outcome_counts_its_cents_once(app, client, instagift, run_jobs):
    counted = Counted(client)
    certificate_id, *_ = completed_order(client, instagift, "8101", balance=10000, total=3000)
    instagift.inject_fault("redeem_certificate", "apply_then_500")  # Instagift redeemed, then answered 500
    run_jobs()
    run_jobs(clock=lambda: utcnow() + timedelta(minutes=30))  # the retry reads the certificate back
    counted.again()

    assert [r["amount_cents"] for r in instagift.redemptions_for(certificate_id)] == [3000]
    assert counted("provider_calls_total", provider="instagift", operation="redeem_certificate",
                   outcome="server_error") == 1
    assert counted("provider_calls_total", provider="instagift", operation="redeem_certificate", outcome="ok") == 0
    assert counted("job_run_seconds_count", kind="redeem_gift_card", outcome="retry") == 1
    assert counted("job_run_seconds_count", kind="redeem_gift_card", outcome="succeeded") == 1
    assert counted("gift_card_applied_cents_total") == 3000
    assert counted("gift_card_redeemed_cents_total") == 3000


def test_a_persons_retry_of_a_failed_redemption_counts_the_redemption_it_makes(app, client, instagift, run_jobs):
    counted = Counted(client)
    completed_order(client, instagift, "8151", balance=10000, total=3000)
    instagift.inject_fault("redeem_certificate", "reject_400")  # a definite refusal: failed, nothing redeemed
    run_jobs()
    with app.app_context():
        job_id = db.session.scalar(sa.select(Job.id).where(Job.kind == "redeem_gift_card"))
    failed = Counted(client)
    assert client.post(f"/v1/jobs/{job_id}/retry", headers=ADMIN).status_code == 202
    run_jobs()
    counted.again()
    failed.again()

    assert counted("provider_calls_total", provider="instagift", operation="redeem_certificate", outcome="refused") == 1
    assert counted("job_run_seconds_count", kind="redeem_gift_card", outcome="dead") == 1
    assert counted("gift_card_shortfall_cents_total") == 3000  # the failure, as it was recorded then
    assert (failed("gift_card_shortfall_cents_total"), failed("gift_card_redeemed_cents_total")) == (0, 3000)
    assert counted("gift_card_applied_cents_total") == 3000


def test_a_transaction_rolled_back_or_closed_uncommitted_counts_nothing(app, client, instagift):
    counted = Counted(client)
    completed_order(client, instagift, "8201", balance=10000, total=3000)
    with app.app_context():
        row = db.session.scalar(sa.select(GiftCardRedemption))
        row.state, row.redeemed_cents = "succeeded", 3000
        db.session.flush()  # written, then thrown away: the redemption never happened
        db.session.rollback()
        row = db.session.scalar(sa.select(GiftCardRedemption))
        row.state, row.redeemed_cents = "succeeded", 3000
        db.session.flush()
        db.session.close()  # the same, closed without a commit
        enqueue(db.session, "purge_periodic_jobs", {})
        db.session.commit()  # the session's next commit carries nothing of it
    counted.again()

    assert counted("gift_card_applied_cents_total") == 3000  # the order's planning, committed
    assert counted("gift_card_redeemed_cents_total") == 0


def test_jobs_in_each_state_are_read_from_the_table(app, client):
    now = utcnow()
    with app.app_context():
        for n in range(5):
            enqueue(db.session, "purge_periodic_jobs", {"n": n}, run_at=now + timedelta(hours=1))
        db.session.flush()
        ids = db.session.scalars(sa.select(Job.id).order_by(Job.id)).all()
        db.session.execute(sa.update(Job).where(Job.id.in_(ids[:2])).values(state="dead"))
        db.session.execute(sa.update(Job).where(Job.id == ids[2]).values(state="parked", parked_reason="credit"))
        enqueue(db.session, "a_kind_no_longer_handled", {})
        db.session.commit()

    samples = scrape(client)

    def jobs(kind: str, state: str) -> float:
        return samples[(PREFIX + "jobs", (("kind", kind), ("state", state)))]

    assert (jobs("purge_periodic_jobs", "dead"), jobs("purge_periodic_jobs", "parked"),
            jobs("purge_periodic_jobs", "queued"), jobs("purge_periodic_jobs", "running")) == (2, 1, 2, 0)
    assert jobs("a_kind_no_longer_handled", "queued") == 1
    assert jobs("send_thank_you_card", "dead") == 0  # every registered kind has its series, at 0
    assert samples[(PREFIX + "jobs_read_ok", ())] == 1


@handler("metrics_run_outcome")
def _taken_over_or_parked(ctx) -> None:
    """Parks, or lets another worker take the job over while it runs (its lease ran out), then succeeds."""
    if ctx.payload["do"] == "park":
        raise Park("waiting for credit", recheck_seconds=3600)
    ctx.session.execute(sa.update(Job).where(Job.id == ctx.job.id).values(locked_by="the-worker-that-took-over"))
    ctx.session.commit()


def test_a_run_is_counted_by_the_outcome_it_recorded_and_a_taken_over_run_as_lost(app, client, run_jobs):
    with app.app_context():
        enqueue(db.session, "metrics_run_outcome", {"do": "park"})
        enqueue(db.session, "metrics_run_outcome", {"do": "take_over"})
        db.session.commit()
    counted = Counted(client)
    assert run_jobs() == 2
    counted.again()

    assert counted("job_run_seconds_count", kind="metrics_run_outcome", outcome="parked") == 1
    # Its success was not recorded (the job is the other worker's): not a success.
    assert counted("job_run_seconds_count", kind="metrics_run_outcome", outcome="lost") == 1
    assert counted("job_run_seconds_count", kind="metrics_run_outcome", outcome="succeeded") == 0


def test_rate_limit_rejections_are_counted_by_route(app, environ, client):
    limited = create_app({**environ, "LOOKUP_RATE_LIMIT": "2/minute"}).test_client()
    counted = Counted(client)
    token = limited.post("/v1/carts", json={"total_cents": 5000}).get_json()["cart_token"]
    statuses = [limited.post(f"/v1/carts/{token}/gift-cards", json={"claim_code": f"NOPE-0000-000{n}"}).status_code
                for n in range(4)]
    counted.again()

    assert statuses.count(429) == 2
    assert counted("rate_limit_rejections_total", route="/v1/carts/<cart_token>/gift-cards") == 2


def test_provider_calls_are_counted_by_outcome_in_the_shared_helper(app, client, sandbox):
    counted = Counted(client)
    refused = CardlyClient(f"{sandbox.url}/cardly/v2", "not-a-cardly-key")  # no test_/live_ prefix: 401
    with pytest.raises(ProviderAuthError):
        refused.account_balance()
    with socket.socket() as s:  # a port nobody listens on any more
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    with pytest.raises(ProviderUnavailable):
        CardlyClient(f"http://127.0.0.1:{closed}", "test_key").account_balance()
    counted.again()

    assert counted("provider_calls_total", provider="cardly", operation="account_balance", outcome="auth_refused") == 1
    assert counted("provider_calls_total", provider="cardly", operation="account_balance",
                   outcome="connection_failed") == 1
    assert counted("provider_call_seconds_count", provider="cardly", operation="account_balance") == 2


def test_without_the_database_the_scrape_still_answers_and_says_so(environ):
    down = create_app({**environ, "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nowhere"}).test_client()
    samples = scrape(down)
    assert samples[(PREFIX + "jobs_read_ok", ())] == 0
    assert not any(name == PREFIX + "jobs" for name, _ in samples)
    assert (PREFIX + "webhooks_received_total", (("result", "accepted"),)) in samples


def test_metrics_need_the_admin_token(client):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=SHOP).status_code == 401
    refused = client.get("/metrics", headers={"Authorization": "Bearer not-the-admin-token"})
    assert refused.status_code == 401
    assert refused.headers["Content-Type"] == "application/problem+json"


def test_a_staff_members_own_token_reads_the_metrics(environ):
    """ADMIN_API_TOKENS may be the only admin tokens a merchant has: each one scrapes, as it reads the ledger."""
    environ["ADMIN_API_TOKENS"] = "ops:ops-token-0123456789abcdef"
    staff = create_app(environ).test_client()
    answer = staff.get("/metrics", headers={"Authorization": "Bearer ops-token-0123456789abcdef"})
    assert answer.status_code == 200
    assert PREFIX + "webhooks_received_total" in answer.get_data(as_text=True)


def _families(client) -> dict[str, str]:
    """Every metric family the service exports (name → type), from a scrape."""
    text = client.get("/metrics", headers=ADMIN).get_data(as_text=True)
    return {family.name: family.type for family in text_string_to_metric_families(text)}


def _sample_names(families: dict[str, str]) -> set[str]:
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    return {name + suffix for name, kind in families.items() for suffix in suffixes[kind]}


def test_the_alert_rules_file_is_valid_and_names_only_real_metrics(client):
    rules_file = yaml.safe_load((ROOT / "docs" / "alerts.yml").read_text())
    exported = _sample_names(_families(client))
    [group] = rules_file["groups"]
    assert group["name"] and group["rules"]
    alerts = {rule["alert"]: rule for rule in group["rules"]}
    assert {"InstagiftCheckoutJobDead", "InstagiftCheckoutParkedBacklog",
            "InstagiftCheckoutProviderErrorRate"} <= set(alerts)
    for rule in group["rules"]:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in ("page", "ticket")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        named = set(re.findall(r"\b" + PREFIX + r"\w+", rule["expr"]))
        assert named, rule["expr"]
        assert named <= exported, f"{rule['alert']} names metrics the service does not export: {named - exported}"


def test_every_exported_metric_is_documented(client):
    documented = (ROOT / "docs" / "metrics.md").read_text()
    for name, kind in _families(client).items():
        shown = name + "_total" if kind == "counter" else name
        assert f"`{shown}`" in documented, f"{shown} ({kind}) is not in docs/metrics.md"
