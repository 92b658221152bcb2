"""membership_cards.finalize_outcome_unknown_since: InstantCard's cards carry no finalized state to read back.

Set just before the finalize call and cleared once InstantCard has shown the card finalized (its finalize answered,
or it accepted the card on a print job, which it does only for finalized cards). Existing rows get NULL.

Revision ID: f7a3c5e9b2d4
Revises: e5f2a9c4b7d1
"""
import sqlalchemy as sa
from alembic import op

revision = 'f7a3c5e9b2d4'
down_revision = 'e5f2a9c4b7d1'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('membership_cards') as batch:
        batch.add_column(sa.Column('finalize_outcome_unknown_since', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('membership_cards') as batch:
        batch.drop_column('finalize_outcome_unknown_since')
