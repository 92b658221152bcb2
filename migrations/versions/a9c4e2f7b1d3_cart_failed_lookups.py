"""cart_failed_lookups: the failed claim-code lookups of each cart within the lock's window (issue 15).

A cart locks after CART_FAILURE_LIMIT failed lookups within CART_FAILURE_WINDOW_MINUTES, a moving window, so each
failure's time is kept until it leaves the window (docs/checkout.md › Abuse limits). carts.failed_lookups stays as
the count at the last failure. Existing carts start with no failures on record.

Revision ID: a9c4e2f7b1d3
Revises: f7a3c5e9b2d4
"""
import sqlalchemy as sa
from alembic import op

revision = 'a9c4e2f7b1d3'
down_revision = 'f7a3c5e9b2d4'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'cart_failed_lookups',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('cart_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('failed_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['cart_id'], ['carts.id'], name=op.f('fk_cart_failed_lookups_cart_id_carts')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_cart_failed_lookups')),
    )
    op.create_index('ix_cart_failed_lookups_cart_failed_at', 'cart_failed_lookups', ['cart_id', 'failed_at'])


def downgrade():
    op.drop_index('ix_cart_failed_lookups_cart_failed_at', table_name='cart_failed_lookups')
    op.drop_table('cart_failed_lookups')
