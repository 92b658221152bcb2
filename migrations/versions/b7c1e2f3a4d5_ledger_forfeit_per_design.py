"""Ledger: a non-splittable card's forfeit is redeemed − applied (docs/money.md), not redeemed − taken.

Rows written before this fix counted the cents between taken and applied twice (as rounding and as forfeit).

Revision ID: b7c1e2f3a4d5
Revises: 672f4d2110a9
"""
from alembic import op

revision = 'b7c1e2f3a4d5'
down_revision = '672f4d2110a9'
branch_labels = None
depends_on = None


def upgrade():
    op.execute(
        "UPDATE redemptions SET forfeit_cents = CASE WHEN redeemed_cents > applied_cents "
        "THEN redeemed_cents - applied_cents ELSE 0 END WHERE splittable = false"
    )


def downgrade():
    op.execute(
        "UPDATE redemptions SET forfeit_cents = CASE WHEN redeemed_cents > taken_cents "
        "THEN redeemed_cents - taken_cents ELSE 0 END WHERE splittable = false"
    )
