"""Membership cards: `cancel_requested`, a cancellation waiting to learn whether InstantCard printed the card.

A card on a print job whose submit may be in flight is no longer cancelled on the order's word alone; the job
that submits the print job reads it back from InstantCard and records `cancelled` or `submitted`.

Revision ID: d4e8f1a2b3c6
Revises: d182f65567ba
"""
from alembic import op

revision = 'd4e8f1a2b3c6'
down_revision = 'd182f65567ba'
branch_labels = None
depends_on = None

BEFORE = "'pending','drafted','finalized','queued','submitted','waiting_for_funds','failed','cancelled'"
AFTER = "'pending','drafted','finalized','queued','submitted','waiting_for_funds','failed','cancel_requested','cancelled'"


def _status_check(states: str) -> None:
    # SQLite cannot alter a CHECK constraint: batch mode rebuilds the table (it has no partial index to lose).
    with op.batch_alter_table('membership_cards', recreate='auto') as batch_op:
        batch_op.drop_constraint(op.f('ck_membership_cards_status'), type_='check')
        batch_op.create_check_constraint('status', f"status IN ({states})")


def upgrade():
    _status_check(AFTER)


def downgrade():
    # A card still waiting to learn the truth was not known to be printed: it goes back to the state it
    # came from as far as the old states can say (on a print job, so `queued`), and the job reads it back.
    op.execute("UPDATE membership_cards SET status = 'queued' WHERE status = 'cancel_requested'")
    _status_check(BEFORE)
