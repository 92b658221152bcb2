"""order_attention_items replace orders.attention; jobs remember the last person's retry; the orders list's
indexes (issue 16).

Each order's `attention` text becomes items: a note that starts with a bracketed kind (`[membership_card_printed_
for_cancelled_order] …`, `[thank_you_card_placed_for_cancelled_order] …`, written so since issue 17) becomes an item
of that kind, from its bracket to the next one; any other text becomes one `legacy_note` item. An item's time is the
order's cancellation, else its completion, else its creation (the text kept no times). Then the column goes.
The downgrade writes every item's message back into `attention`, in order, kinds in brackets as before.

Revision ID: a8d4e6f1c3b7
Revises: f7a3c5e9b2d4
"""
import re

import sqlalchemy as sa
from alembic import op

revision = 'a8d4e6f1c3b7'
down_revision = 'f7a3c5e9b2d4'
branch_labels = None
depends_on = None

# The kinds that notes carried in brackets before this revision.
BRACKETED_KINDS = ("membership_card_printed_for_cancelled_order", "thank_you_card_placed_for_cancelled_order")
_BRACKET = re.compile(r"\[(" + "|".join(BRACKETED_KINDS) + r")\]\s*")

BigIntId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def split_attention(text: str) -> list[tuple[str, str]]:
    """(kind, message) for each note in an order's old attention text."""
    items: list[tuple[str, str]] = []
    marks = list(_BRACKET.finditer(text))
    head = text[:marks[0].start()] if marks else text
    if head.strip():
        items.append(("legacy_note", head.strip()))
    for index, mark in enumerate(marks):
        end = marks[index + 1].start() if index + 1 < len(marks) else len(text)
        message = text[mark.end():end].strip()
        items.append((mark.group(1), message or mark.group(0).strip()))
    return items


def drop_column(table: str, column: str) -> None:
    """In place on both databases (SQLite 3.35+ too): a batch rebuild would drop a table others' keys point at."""
    op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")


def upgrade():
    items = op.create_table(
        'order_attention_items',
        sa.Column('id', BigIntId, nullable=False),
        sa.Column('order_id', BigIntId, nullable=False),
        sa.Column('kind', sa.String(length=64), nullable=False),
        sa.Column('message', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('job_id', BigIntId, nullable=True),
        sa.Column('job_attempt', sa.Integer(), nullable=True),
        sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('resolved_by', sa.String(length=200), nullable=True),
        sa.Column('resolution_note', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_order_attention_items_job_id_jobs')),
        sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_order_attention_items_order_id_orders')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_order_attention_items')),
    )
    op.create_index(op.f('ix_order_attention_items_order_id'), 'order_attention_items', ['order_id'])
    op.create_index(op.f('ix_order_attention_items_job_id'), 'order_attention_items', ['job_id'])
    # The orders list (issue 16; bench/console_queries.py): open items, an order id's beginning, a code's last 4.
    op.create_index('ix_order_attention_items_open', 'order_attention_items', ['order_id'],
                    postgresql_where=sa.text('resolved_at IS NULL'), sqlite_where=sa.text('resolved_at IS NULL'))
    op.create_index('ix_orders_shop_order_id_prefix', 'orders', ['shop_order_id'],
                    postgresql_ops={'shop_order_id': 'varchar_pattern_ops'})
    op.create_index(op.f('ix_redemptions_code_last4'), 'redemptions', ['code_last4'])
    op.add_column('jobs', sa.Column('retried_by', sa.String(length=200), nullable=True))
    op.add_column('jobs', sa.Column('retried_at', sa.DateTime(timezone=True), nullable=True))

    conn = op.get_bind()
    orders = sa.table('orders', sa.column('id'), sa.column('attention', sa.Text()),
                      sa.column('created_at', sa.DateTime(timezone=True)),
                      sa.column('completed_at', sa.DateTime(timezone=True)),
                      sa.column('cancelled_at', sa.DateTime(timezone=True)))
    rows = conn.execute(sa.select(orders.c.id, orders.c.attention,
                                  sa.func.coalesce(orders.c.cancelled_at, orders.c.completed_at, orders.c.created_at))
                        .where(orders.c.attention.is_not(None)).order_by(orders.c.id)).all()
    converted = [{"order_id": order_id, "kind": kind, "message": message, "created_at": when}
                 for order_id, text, when in rows for kind, message in split_attention(text)]
    if converted:
        op.bulk_insert(items, converted)
    drop_column('orders', 'attention')


def downgrade():
    op.add_column('orders', sa.Column('attention', sa.Text(), nullable=True))
    conn = op.get_bind()
    items = sa.table('order_attention_items', sa.column('id'), sa.column('order_id'), sa.column('kind'),
                     sa.column('message'))
    texts: dict[int, list[str]] = {}
    for order_id, kind, message in conn.execute(
            sa.select(items.c.order_id, items.c.kind, items.c.message).order_by(items.c.order_id, items.c.id)):
        texts.setdefault(order_id, []).append(message if kind == "legacy_note" else f"[{kind}] {message}")
    orders = sa.table('orders', sa.column('id'), sa.column('attention', sa.Text()))
    for order_id, notes in texts.items():
        conn.execute(orders.update().where(orders.c.id == order_id).values(attention=" ".join(notes)))
    drop_column('jobs', 'retried_at')
    drop_column('jobs', 'retried_by')
    op.drop_index(op.f('ix_redemptions_code_last4'), table_name='redemptions')
    op.drop_index('ix_orders_shop_order_id_prefix', table_name='orders')
    op.drop_index('ix_order_attention_items_open', table_name='order_attention_items')
    op.drop_index(op.f('ix_order_attention_items_job_id'), table_name='order_attention_items')
    op.drop_index(op.f('ix_order_attention_items_order_id'), table_name='order_attention_items')
    op.drop_table('order_attention_items')
