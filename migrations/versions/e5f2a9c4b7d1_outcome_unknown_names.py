"""One name for "the outcome of a call is not known": `outcome_unknown` (a flag) and `<call>_outcome_unknown_since`.

thank_you_cards.outcome_uncertain becomes outcome_unknown (as on redemptions); the membership intent times
(`create_attempted_at`, `add_attempted_at`, `submit_attempted_at`) become `*_outcome_unknown_since`, which the code
now clears when the call's answer is recorded. The rename keeps every value: a row answered before this revision
keeps its time (the code reads it only in the states before the answer, and a submitted print job counts as
submitted whatever its time says).

Revision ID: e5f2a9c4b7d1
Revises: d4e8f1a2b3c6
"""
from alembic import op

revision = 'e5f2a9c4b7d1'
down_revision = 'd4e8f1a2b3c6'
branch_labels = None
depends_on = None

RENAMES = (
    ('thank_you_cards', 'outcome_uncertain', 'outcome_unknown'),
    ('membership_cards', 'create_attempted_at', 'create_outcome_unknown_since'),
    ('membership_cards', 'add_attempted_at', 'add_outcome_unknown_since'),
    ('membership_print_jobs', 'create_attempted_at', 'create_outcome_unknown_since'),
    ('membership_print_jobs', 'submit_attempted_at', 'submit_outcome_unknown_since'),
)


def _rename(table: str, old: str, new: str) -> None:
    # RENAME COLUMN exists on PostgreSQL and on SQLite ≥ 3.25: no table rebuild, indexes and constraints kept.
    op.execute(f'ALTER TABLE {table} RENAME COLUMN {old} TO {new}')


def upgrade():
    for table, old, new in RENAMES:
        _rename(table, old, new)


def downgrade():
    # The old code tells a failed card on a submitted print job by the submit time alone: print jobs submitted since
    # the upgrade (whose time was cleared) get one back.
    op.execute("UPDATE membership_print_jobs SET submit_outcome_unknown_since = COALESCE(submitted_at, updated_at) "
               "WHERE status = 'submitted' AND submit_outcome_unknown_since IS NULL")
    for table, old, new in reversed(RENAMES):
        _rename(table, new, old)
