"""The migrations build the schema from nothing, on SQLite and PostgreSQL, and match the models exactly."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def empty_database_url(database_url, is_postgres, tmp_path):
    """A database with nothing in it, of the same kind as the suite's."""
    if not is_postgres:
        yield f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
        return
    name = f"migrations_{uuid.uuid4().hex[:10]}"
    server = database_url.rsplit("/", 1)[0].replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"{server}/{name}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def flask_db(args: list[str], url: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, DATABASE_URL=url, SERVICE_ENV="development")
    return subprocess.run([sys.executable, "-m", "flask", "--app", "service", "db", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_upgrade_from_nothing_then_autogenerate_finds_no_changes(empty_database_url):
    upgraded = flask_db(["upgrade"], empty_database_url)
    assert upgraded.returncode == 0, upgraded.stderr
    check = flask_db(["check"], empty_database_url)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "No new upgrade operations detected" in check.stdout + check.stderr


def test_downgrade_to_base_and_up_again(empty_database_url):
    for step in (["upgrade"], ["downgrade", "base"], ["upgrade"]):
        result = flask_db(step, empty_database_url)
        assert result.returncode == 0, result.stderr


def sqlalchemy_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def write_rows(url: str, rows: list[tuple[str, dict]]) -> None:
    """Insert rows into the tables as the database has them now (an older revision's, not the models')."""
    engine = sa.create_engine(sqlalchemy_url(url))
    metadata = sa.MetaData()
    with engine.begin() as conn:
        for name, values in rows:
            table = metadata.tables[name] if name in metadata.tables else sa.Table(name, metadata, autoload_with=conn)
            conn.execute(table.insert().values(values))
    engine.dispose()


def read_rows(url: str, sql: str) -> list[tuple]:
    engine = sa.create_engine(sqlalchemy_url(url))
    with engine.connect() as conn:
        rows = [tuple(row) for row in conn.execute(sa.text(sql))]
    engine.dispose()
    return rows


WHEN = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def held_and_redeemed(n: int, *, splittable: bool, applied: int, taken: int, intended: int, redeemed: int,
                      forfeit: int, accept_forfeit: bool = False, hold_forfeit: int = 0,
                      hold_status: str = "redeemed") -> list[tuple[str, dict]]:
    """An order, its cart, one hold and (for a redeemed hold) its ledger row, with the initial schema's columns."""
    common = {"created_at": WHEN}
    rows = [
        ("orders", {"id": n, "shop_order_id": f"m{n}", "number": f"#m{n}", "currency": "USD", "total_cents": 10000,
                    "gift_card_cents": taken, "payload": {"id": f"m{n}"}, "completed_at": WHEN, **common}),
        ("carts", {"id": n, "token_hash": f"{n:064x}", "total_cents": 10000, "currency": "USD",
                   "expires_at": WHEN + timedelta(minutes=30), "failed_lookups": 0, "updated_at": WHEN, **common}),
        ("gift_card_holds", {"id": n, "cart_id": n, "certificate_id": f"cert-{n}", "claim_code_hash": f"{n:064x}",
                             "code_last4": "WXYZ", "currency": "USD", "balance_cents": redeemed,
                             "splittable": splittable, "applied_cents": applied, "covers_cents": applied,
                             "redeem_cents": redeemed, "forfeit_cents": hold_forfeit,
                             "accept_forfeit": accept_forfeit, "position": 1, "status": hold_status,
                             "expires_at": WHEN + timedelta(minutes=30), "updated_at": WHEN, **common}),
    ]
    if hold_status == "redeemed":
        rows.append(("redemptions", {
            "id": n, "order_id": n, "hold_id": n, "certificate_id": f"cert-{n}", "code_last4": "WXYZ",
            "currency": "USD", "splittable": splittable, "applied_cents": applied, "taken_cents": taken,
            "intended_cents": intended, "requested_cents": intended, "redeemed_cents": redeemed,
            "shortfall_cents": 0, "forfeit_cents": forfeit, "state": "succeeded", "outcome_unknown": False,
            "attempts": 1, "redeemed_at": WHEN, "updated_at": WHEN, **common}))
    return rows


def test_ledger_forfeits_written_before_the_fix_are_corrected(empty_database_url):
    """Rows from before b7c1e2f3a4d5 had forfeit = redeemed − taken; the migration makes it redeemed − applied."""
    assert flask_db(["upgrade", "672f4d2110a9"], empty_database_url).returncode == 0
    write_rows(empty_database_url, [
        *held_and_redeemed(1, splittable=False, applied=7500, taken=7450, intended=8000, redeemed=8000, forfeit=550),
        *held_and_redeemed(2, splittable=True, applied=5300, taken=5250, intended=5300, redeemed=5300, forfeit=0),
    ])
    upgraded = flask_db(["upgrade"], empty_database_url)
    assert upgraded.returncode == 0, upgraded.stderr
    rows = read_rows(empty_database_url, "SELECT splittable, forfeit_cents FROM redemptions ORDER BY id")
    assert [(bool(s), f) for s, f in rows] == [(False, 500), (True, 0)]


def test_holds_applied_with_accept_forfeit_keep_the_forfeit_they_have_as_accepted(empty_database_url):
    """c3d9a7e1f5b2 adds accepted_forfeit_cents: the hold's forfeit where accept_forfeit is true, else 0."""
    assert flask_db(["upgrade", "b7c1e2f3a4d5"], empty_database_url).returncode == 0
    open_hold = {"splittable": False, "applied": 7500, "taken": 0, "intended": 0, "redeemed": 8000, "forfeit": 0,
                 "hold_status": "active"}
    write_rows(empty_database_url, [
        *held_and_redeemed(1, **open_hold, accept_forfeit=True, hold_forfeit=550),
        *held_and_redeemed(2, **open_hold, accept_forfeit=False, hold_forfeit=1500),
    ])
    upgraded = flask_db(["upgrade"], empty_database_url)
    assert upgraded.returncode == 0, upgraded.stderr
    rows = read_rows(empty_database_url, "SELECT id, accepted_forfeit_cents FROM gift_card_holds ORDER BY id")
    assert rows == [(1, 550), (2, 0)]


def test_membership_cards_keep_their_rows_through_the_cancel_requested_state(empty_database_url):
    """d4e8f1a2b3c6 allows `cancel_requested` (SQLite rebuilds the table: the rows and their keys must survive);
    its downgrade turns such a card back into `queued`, so the job reads its print job back again."""
    assert flask_db(["upgrade", "c3d9a7e1f5b2"], empty_database_url).returncode == 0
    order = ("orders", {"id": 1, "shop_order_id": "m1", "number": "#m1", "currency": "USD", "total_cents": 5000,
                        "gift_card_cents": 0, "payload": {"id": "m1"}, "completed_at": WHEN, "created_at": WHEN})
    card = {"order_id": 1, "line_index": 0, "sku": "MEMBER-GOLD", "template_id": 101, "card_data": {},
            "created_at": WHEN, "updated_at": WHEN}
    write_rows(empty_database_url, [order, ("membership_cards", {
        **card, "id": 1, "unit_index": 0, "member_number": "M-00000001", "status": "queued"})])
    upgraded = flask_db(["upgrade"], empty_database_url)
    assert upgraded.returncode == 0, upgraded.stderr
    write_rows(empty_database_url, [("membership_cards", {
        **card, "id": 2, "unit_index": 1, "member_number": "M-00000002", "status": "cancel_requested"})])
    with pytest.raises(sa.exc.IntegrityError):  # the member number is still unique after the rebuild
        write_rows(empty_database_url, [("membership_cards", {
            **card, "id": 3, "unit_index": 2, "member_number": "M-00000001", "status": "queued"})])

    downgraded = flask_db(["downgrade", "c3d9a7e1f5b2"], empty_database_url)
    assert downgraded.returncode == 0, downgraded.stderr
    rows = read_rows(empty_database_url, "SELECT id, member_number, status FROM membership_cards ORDER BY id")
    assert rows == [(1, "M-00000001", "queued"), (2, "M-00000002", "queued")]


def test_the_outcome_unknown_renames_keep_every_value_both_ways(empty_database_url):
    """e5f2a9c4b7d1 renames thank_you_cards.outcome_uncertain and the membership intent times; values survive both
    ways, and a print job submitted after the upgrade gets a submit time back on the way down (the old code reads it
    for a failed card on a submitted print job)."""
    assert flask_db(["upgrade", "d4e8f1a2b3c6"], empty_database_url).returncode == 0
    sent = WHEN - timedelta(minutes=5)
    order = ("orders", {"id": 1, "shop_order_id": "m1", "number": "#m1", "currency": "USD", "total_cents": 5000,
                        "gift_card_cents": 0, "payload": {"id": "m1"}, "completed_at": WHEN, "created_at": WHEN})
    write_rows(empty_database_url, [
        order,
        ("thank_you_cards", {"id": 1, "order_id": 1, "status": "pending", "generation": 1, "outcome_uncertain": True,
                             "calls": 1, "created_at": WHEN, "updated_at": WHEN}),
        ("membership_print_jobs", {"id": 1, "mode": "store", "status": "closed", "create_attempted_at": sent,
                                   "submit_attempted_at": sent, "card_count": 1, "created_at": WHEN,
                                   "updated_at": WHEN}),
        ("membership_cards", {"id": 1, "order_id": 1, "line_index": 0, "unit_index": 0, "sku": "MEMBER-GOLD",
                              "member_number": "M-00000001", "template_id": 101, "card_data": {}, "status": "finalized",
                              "create_attempted_at": sent, "add_attempted_at": sent, "print_job_id": 1,
                              "created_at": WHEN, "updated_at": WHEN}),
    ])
    upgraded = flask_db(["upgrade"], empty_database_url)
    assert upgraded.returncode == 0, upgraded.stderr
    sent_text, submitted_text = str(sent.replace(tzinfo=None)), str(WHEN.replace(tzinfo=None))

    def times(rows):  # to the second, as text: PostgreSQL answers aware datetimes, SQLite naive UTC text
        return [tuple(None if v is None else str(v)[:19] for v in row) for row in rows]

    assert [tuple(bool(v) for v in row) for row in read_rows(
        empty_database_url, "SELECT outcome_unknown FROM thank_you_cards")] == [(True,)]
    assert times(read_rows(empty_database_url, "SELECT create_outcome_unknown_since, add_outcome_unknown_since "
                                               "FROM membership_cards")) == [(sent_text, sent_text)]
    assert times(read_rows(empty_database_url, "SELECT create_outcome_unknown_since, submit_outcome_unknown_since "
                                               "FROM membership_print_jobs")) == [(sent_text, sent_text)]

    # Submitted after the upgrade: the new code cleared the submit time.
    engine = sa.create_engine(sqlalchemy_url(empty_database_url))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE membership_print_jobs SET status = 'submitted', submitted_at = :at, "
                             "submit_outcome_unknown_since = NULL"), {"at": WHEN})
    engine.dispose()
    downgraded = flask_db(["downgrade", "d4e8f1a2b3c6"], empty_database_url)
    assert downgraded.returncode == 0, downgraded.stderr
    assert [tuple(bool(v) for v in row) for row in read_rows(
        empty_database_url, "SELECT outcome_uncertain FROM thank_you_cards")] == [(True,)]
    assert times(read_rows(empty_database_url, "SELECT create_attempted_at, add_attempted_at "
                                               "FROM membership_cards")) == [(sent_text, sent_text)]
    assert times(read_rows(empty_database_url, "SELECT create_attempted_at, submit_attempted_at "
                                               "FROM membership_print_jobs")) == [(sent_text, submitted_text)]


def test_attention_text_becomes_typed_items_and_comes_back_on_the_way_down(empty_database_url):
    """a8d4e6f1c3b7 turns each order's attention text into items: a bracketed kind starts an item of that kind,
    other text is one legacy_note; the column goes. The downgrade writes the text back."""
    assert flask_db(["upgrade", "f7a3c5e9b2d4"], empty_database_url).returncode == 0
    cancelled = WHEN + timedelta(hours=1)
    printed = ("[membership_card_printed_for_cancelled_order] Membership card M-00000001 was printed and charged by "
               "InstantCard although the order was cancelled (it had been submitted before the order was cancelled).")
    placed = ("[thank_you_card_placed_for_cancelled_order] The thank-you card was placed with Cardly (order c-1, "
              "1.00 credits) although the order was cancelled (it had been placed before the order was cancelled).")
    refund = "Cancelled after $30.00 was redeemed from gift cards; Instagift has no refund API — refund manually."

    def order(n: int, attention: str | None, **times) -> tuple[str, dict]:
        return ("orders", {"id": n, "shop_order_id": f"m{n}", "number": f"#m{n}", "currency": "USD",
                           "total_cents": 5000, "gift_card_cents": 0, "payload": {"id": f"m{n}"},
                           "completed_at": WHEN, "created_at": WHEN, "attention": attention, **times})

    write_rows(empty_database_url, [order(1, refund, cancelled_at=cancelled), order(2, f"{refund} {placed} {printed}"),
                                    order(3, None), order(4, printed)])
    upgraded = flask_db(["upgrade"], empty_database_url)
    assert upgraded.returncode == 0, upgraded.stderr

    rows = read_rows(empty_database_url, "SELECT order_id, kind, message, created_at, resolved_at "
                                         "FROM order_attention_items ORDER BY id")
    assert [(o, k, m) for o, k, m, _, _ in rows] == [
        (1, "legacy_note", refund),
        (2, "legacy_note", refund),
        (2, "thank_you_card_placed_for_cancelled_order", placed.split("] ", 1)[1]),
        (2, "membership_card_printed_for_cancelled_order", printed.split("] ", 1)[1]),
        (4, "membership_card_printed_for_cancelled_order", printed.split("] ", 1)[1]),
    ]
    assert [str(at)[:19] for _, _, _, at, _ in rows] == [
        str(cancelled.replace(tzinfo=None))[:19]] + [str(WHEN.replace(tzinfo=None))[:19]] * 4
    assert all(resolved is None for *_, resolved in rows)
    columns = {c["name"] for c in sa.inspect(sa.create_engine(sqlalchemy_url(empty_database_url))).get_columns("orders")}
    assert "attention" not in columns

    downgraded = flask_db(["downgrade", "f7a3c5e9b2d4"], empty_database_url)
    assert downgraded.returncode == 0, downgraded.stderr
    assert read_rows(empty_database_url, "SELECT id, attention FROM orders ORDER BY id") == [
        (1, refund), (2, f"{refund} {placed} {printed}"), (3, None), (4, printed)]


def test_cart_tokens_written_in_clear_are_hashed_in_the_column_and_the_payload(empty_database_url):
    import hashlib
    import json

    assert flask_db(["upgrade", "f7a3c5e9b2d4"], empty_database_url).returncode == 0
    token = "Zq8yQ2rP0sT4uV6wX8yZ0aB2cD4eF6gH"
    common = {"currency": "USD", "total_cents": 5000, "gift_card_cents": 0, "completed_at": WHEN, "created_at": WHEN}
    write_rows(empty_database_url, [
        ("orders", {"id": 1, "shop_order_id": "m1", "cart_token": token,
                    "payload": {"id": "m1", "cart_token": token, "currency": "USD"}, **common}),
        ("orders", {"id": 2, "shop_order_id": "m2", "cart_token": None,
                    "payload": {"id": "m2", "cart_token": None}, **common}),
        ("order_events", {"id": 1, "order_id": 1, "event_type": "order.completed", "webhook_id": "msg_1",
                          "received_at": WHEN}),
    ])
    upgraded = flask_db(["upgrade"], empty_database_url)
    assert upgraded.returncode == 0, upgraded.stderr
    rows = read_rows(empty_database_url, "SELECT id, cart_token_hash, payload FROM orders ORDER BY id")
    payloads = [json.loads(p) if isinstance(p, str) else p for _id, _hash, p in rows]
    digest = hashlib.sha256(token.encode()).hexdigest()
    assert [(row[0], row[1]) for row in rows] == [(1, digest), (2, None)]
    assert payloads == [{"id": "m1", "currency": "USD", "cart_token_hash": digest},
                        {"id": "m2", "cart_token_hash": None}]
    assert token not in json.dumps(payloads)
    assert read_rows(empty_database_url, "SELECT webhook_id, body_sha256 FROM order_events") == [("msg_1", None)]
    check = flask_db(["check"], empty_database_url)
    assert check.returncode == 0, check.stdout + check.stderr
    downgraded = flask_db(["downgrade", "f7a3c5e9b2d4"], empty_database_url)
    assert downgraded.returncode == 0, downgraded.stderr
    assert read_rows(empty_database_url, "SELECT id, cart_token FROM orders ORDER BY id") == [(1, None), (2, None)]


NEW_REVISIONS = ["b3e7f1a9c2d5", "a9c4e6b1d3f8", "a1c7e3d9f5b2", "a9c4e2f7b1d3", "a8d4e6f1c3b7"]  # head first, down to f7a3c5e9b2d4


def test_each_new_revision_goes_down_and_up_one_step_at_a_time_with_rows_in_its_tables(empty_database_url):
    """Each revision of issues 14–16 downgraded on its own with rows in the tables and columns it added (a resolved
    attention item, a staff retry, an audit entry, a failed look-up, a body hash), then the whole way up again."""
    assert flask_db(["upgrade"], empty_database_url).returncode == 0
    write_rows(empty_database_url, [
        *held_and_redeemed(1, splittable=True, applied=3000, taken=3000, intended=3000, redeemed=3000, forfeit=0),
        ("jobs", {"id": 1, "kind": "redeem_gift_card", "payload": {}, "state": "succeeded", "attempts": 2,
                  "failures": 1, "max_attempts": 8, "run_at": WHEN, "created_at": WHEN, "updated_at": WHEN,
                  "order_id": 1, "retried_by": "anna", "retried_at": WHEN}),
        ("order_attention_items", {"id": 1, "order_id": 1, "kind": "redemption_failed", "message": "Collect $30.00.",
                                   "created_at": WHEN, "job_id": 1, "job_attempt": 1, "resolved_at": WHEN,
                                   "resolved_by": "retry by anna", "resolution_note": "Job 1 succeeded."}),
        ("cart_failed_lookups", {"id": 1, "cart_id": 1, "failed_at": WHEN}),
        ("audit_entries", {"id": 1, "at": WHEN, "staff": "anna", "action": "retry", "address": "127.0.0.1",
                           "order_id": 1, "detail": "job 1 queued again via the console"}),
        ("order_events", {"id": 1, "order_id": 1, "event_type": "order.completed", "webhook_id": "msg_1",
                          "received_at": WHEN, "body_sha256": "0" * 64}),
    ])
    for revision, below in zip(NEW_REVISIONS, [*NEW_REVISIONS[1:], "f7a3c5e9b2d4"], strict=True):
        down = flask_db(["downgrade", below], empty_database_url)
        assert down.returncode == 0, (revision, down.stderr)
    assert read_rows(empty_database_url, "SELECT id, shop_order_id FROM orders") == [(1, "m1")]
    assert read_rows(empty_database_url, "SELECT id, attention FROM orders") == [(1, "[redemption_failed] Collect $30.00.")]
    upgraded = flask_db(["upgrade"], empty_database_url)
    assert upgraded.returncode == 0, upgraded.stderr
    check = flask_db(["check"], empty_database_url)
    assert check.returncode == 0, check.stdout + check.stderr
