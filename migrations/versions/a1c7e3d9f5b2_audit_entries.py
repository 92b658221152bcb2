"""audit_entries: the staff actions of the console and the admin API (sign-in, sign-out, retry, resolve).

Revision ID: a1c7e3d9f5b2
Revises: a9c4e2f7b1d3
"""
import sqlalchemy as sa
from alembic import op

revision = 'a1c7e3d9f5b2'
down_revision = 'a9c4e2f7b1d3'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'audit_entries',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('staff', sa.String(length=64), nullable=True),
        sa.Column('action', sa.String(length=32), nullable=False),
        sa.Column('address', sa.String(length=64), nullable=False),
        sa.Column('order_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
        sa.Column('detail', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_audit_entries_order_id_orders')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_entries')),
    )
    op.create_index('ix_audit_entries_order_at', 'audit_entries', ['order_id', 'at'], unique=False)
    op.create_index(op.f('ix_audit_entries_at'), 'audit_entries', ['at'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_audit_entries_at'), table_name='audit_entries')
    op.drop_index('ix_audit_entries_order_at', table_name='audit_entries')
    op.drop_table('audit_entries')
