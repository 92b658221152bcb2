"""Redemptions record when their last redeem call started, so read-backs of Instagift's lists can stop there.

Existing rows keep it null; the read-backs then start from the row's creation time.

Revision ID: d182f65567ba
Revises: c3d9a7e1f5b2
"""
import sqlalchemy as sa
from alembic import op

revision = 'd182f65567ba'
down_revision = 'c3d9a7e1f5b2'
branch_labels = None
depends_on = None


def upgrade():
    op.add_column('redemptions', sa.Column('attempt_started_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    # A plain DROP COLUMN (SQLite 3.35+ and PostgreSQL), as in c3d9a7e1f5b2: no batch rebuild of the table.
    op.drop_column('redemptions', 'attempt_started_at')
