"""redemptions: an index on (created_at, id) for the ledger's date ranges and order (the console's ledger page and
its totals read a month of a large merchant's redemptions: docs/operations.md › Benchmarks).

Revision ID: b3e7f1a9c2d5
Revises: a9c4e6b1d3f8
"""
from alembic import op

revision = 'b3e7f1a9c2d5'
down_revision = 'a9c4e6b1d3f8'
branch_labels = None
depends_on = None


def upgrade():
    op.create_index('ix_redemptions_created_at_id', 'redemptions', ['created_at', 'id'])


def downgrade():
    op.drop_index('ix_redemptions_created_at_id', table_name='redemptions')
