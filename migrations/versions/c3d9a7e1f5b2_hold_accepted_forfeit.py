"""Holds remember the forfeit the shopper accepted, so a later total change can't make them lose more.

Holds applied with accept_forfeit get the forfeit they have now (the closest record of what was agreed);
all others 0.

Revision ID: c3d9a7e1f5b2
Revises: b7c1e2f3a4d5
"""
import sqlalchemy as sa
from alembic import op

revision = 'c3d9a7e1f5b2'
down_revision = 'b7c1e2f3a4d5'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('gift_card_holds',
                  sa.Column('accepted_forfeit_cents', sa.BigInteger(), server_default='0', nullable=False))
    op.execute(
        "UPDATE gift_card_holds SET accepted_forfeit_cents = forfeit_cents WHERE accept_forfeit = true"
    )


def downgrade():
    # A plain DROP COLUMN (SQLite 3.35+ and PostgreSQL): batch mode would rebuild the table on SQLite and could
    # lose the partial unique index's WHERE clause.
    op.drop_column('gift_card_holds', 'accepted_forfeit_cents')
