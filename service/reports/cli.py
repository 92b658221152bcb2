"""`flask --app service reconcile --date YYYY-MM-DD [--csv] [--ledger] [--instagift]`: the day's reconciliation
for cron jobs, as a readable table or as CSV (the same figures as GET /v1/reconciliation)."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, timedelta

import click
from flask import current_app
from flask.cli import with_appcontext

from service.db import db
from service.errors import ProviderError
from service.providers.settings import provider_address
from service.reports.ledger import LEDGER_CSV_COLUMNS, iter_ledger, ledger_csv_record
from service.reports.listing import DateRange, csv_lines, dollars
from service.reports.reconciliation import (
    compare_with_instagift,
    flatten_totals,
    reconciliation_report,
    totals_csv_header,
    totals_csv_records,
)


def _yesterday() -> str:
    return (datetime.now(UTC).date() - timedelta(days=1)).isoformat()


@click.command("reconcile")
@click.option("--date", "day", default=_yesterday, show_default="yesterday (UTC)", metavar="YYYY-MM-DD",
              help="The UTC day to reconcile.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV instead of a table (amounts in dollars and in cents).")
@click.option("--ledger", is_flag=True, help="The day's redemption ledger rows instead of the totals.")
@click.option("--instagift", is_flag=True, help="Also compare with Instagift's redemption list (table only).")
@with_appcontext
def reconcile_command(day: str, as_csv: bool, ledger: bool, instagift: bool) -> None:
    """Print one UTC day's reconciliation totals (or its ledger) as a table or CSV."""
    try:
        window = DateRange.for_day(date.fromisoformat(day))
    except ValueError:
        raise click.BadParameter(f"{day!r} is not a date (YYYY-MM-DD).", param_hint="--date") from None
    session = db.session
    out = sys.stdout
    if ledger:
        rows = iter_ledger(session, window)
        if as_csv:
            out.writelines(csv_lines(LEDGER_CSV_COLUMNS, (ledger_csv_record(r) for r in rows)))
        else:
            click.echo(ledger_table(list(rows)))
        return
    report = reconciliation_report(session, window, now=datetime.now(UTC))
    if as_csv:
        out.writelines(csv_lines(totals_csv_header(report), totals_csv_records(report)))
        return
    click.echo(totals_table(report))
    if instagift:
        client = current_app.extensions["providers"].instagift
        try:
            comparison = compare_with_instagift(session, client.iter_redemptions(), window)
        except ProviderError as exc:
            instagift_settings = current_app.extensions["settings"].instagift
            address = provider_address(instagift_settings.api_url, instagift_settings.sandbox)
            raise click.ClickException(f"Instagift could not be read at {address}: {exc}") from None
        click.echo("")
        click.echo(comparison_table(comparison))


def totals_table(report: dict) -> str:
    """The day's figures, one per line, labelled in words: amounts as dollars with their cents alongside."""
    overall = report["overall"]
    lines = [f"Reconciliation {report['range']['from']} – {report['range']['to']} (UTC, {report['currency']})"]
    rows = [(*key.split(".", 1), value) for key, value in flatten_totals(overall).items()]
    labels = [_figure_label(figure) for _name, figure, _value in rows]
    width = max(len(label) for label in labels)
    section = None
    for (name, figure, value), label in zip(rows, labels, strict=True):
        if name != section:
            section = name
            lines.append("")
            lines.append(name.replace("_", " ").upper())
        shown = f"{dollars(value):>12}  ({value} cents)" if figure.endswith("_cents") else f"{value!s:>12}"
        lines.append(f"  {label:<{width}} {shown}")
    now = report["open_holds_now"]
    lines += ["", f"Open holds right now: {now['count']} ({dollars(now['applied_cents'])})"]
    return "\n".join(lines)


def _figure_label(figure: str) -> str:
    """A figure's name in words for the table: "gift_card_cents" (shown in dollars) is "gift card (dollars)"."""
    if figure.endswith("_cents"):
        return figure.removesuffix("_cents").replace("_", " ") + " (dollars)"
    return figure.replace("_", " ")


def ledger_table(rows: list[dict]) -> str:
    """The ledger rows as fixed-width columns."""
    header = f"{'time (UTC)':<20} {'order':<12} {'code':<8} {'state':<10} {'applied':>9} {'redeemed':>9} " \
             f"{'rounding':>9} {'shortfall':>9} {'forfeit':>9}"
    lines = [header, "-" * len(header)]
    for r in rows:
        second = (r["created_at"] or "")[:19] + "Z"  # to the second, so the column stays 20 wide
        lines.append(f"{second:<20} {str(r['order_id'])[:12]:<12} {r['code']:<8} {r['state']:<10} "
                     f"{dollars(r['applied_cents']):>9} {dollars(r['redeemed_cents']):>9} "
                     f"{dollars(r['rounding_cents']):>9} {dollars(r['shortfall_cents']):>9} "
                     f"{dollars(r['forfeit_cents']):>9}")
    lines.append(f"{len(rows)} row(s)")
    return "\n".join(lines)


def comparison_table(comparison: dict) -> str:
    """The Instagift comparison's counts and the items that need a look."""
    summary = comparison["summary"]
    lines = [f"Instagift comparison ({comparison['instagift_redemptions_read']} redemptions read at Instagift)"]
    lines += [f"  {key.replace('_', ' '):<24} {value}" for key, value in summary.items()]
    for item in comparison["amount_mismatches"]:
        lines.append(f"  MISMATCH order {item['local']['order_id']}: Instagift {dollars(item['instagift']['amount_cents'])}"
                     f", here {dollars(item['local']['redeemed_cents'])}")
    for item in comparison["unknown_here"]:
        kind = "in store (expected)" if item["expected"] else f"via {item['source']} (NOT recorded here)"
        lines.append(f"  UNKNOWN HERE {item['id']} {dollars(item['amount_cents'])} {kind}")
    for row in comparison["missing_at_instagift"]:
        lines.append(f"  MISSING AT INSTAGIFT order {row['order_id']} {dollars(row['redeemed_cents'])}")
    for item in comparison["unsettled_here"]:
        lines.append(f"  UNSETTLED HERE order {item['local']['order_id']} ({item['local']['state']}): "
                     f"Instagift redeemed {dollars(item['instagift']['amount_cents'])}")
    return "\n".join(lines)
