"""Cart tokens at rest only as their SHA-256; order events keep the SHA-256 of the delivered body.

`orders.cart_token` (the token in clear) becomes `orders.cart_token_hash`, as carts keep it; the stored completed
event (`orders.payload`) loses its `cart_token` and gets `cart_token_hash` instead. Old rows are converted here.
`order_events.body_sha256` tells a true redelivery (same webhook id, same body) from a webhook id reused for
another body (409 webhook_id_reused); events recorded before this revision get NULL and count as redeliveries.
A downgrade brings back an empty `cart_token` column: a hash cannot be turned back into the token.

Revision ID: a9c4e6b1d3f8
Revises: a1c7e3d9f5b2
"""
import hashlib
import json

import sqlalchemy as sa
from alembic import op

revision = 'a9c4e6b1d3f8'
down_revision = 'a1c7e3d9f5b2'
branch_labels = None
depends_on = None

BATCH = 500


def _hash(token):
    return hashlib.sha256(token.encode()).hexdigest() if token else None


def _payload_without_token(payload):
    if isinstance(payload, str):  # a JSON column read back as text by some drivers
        payload = json.loads(payload)
    if not isinstance(payload, dict):
        return payload
    converted = {key: value for key, value in payload.items() if key != 'cart_token'}
    if 'cart_token' in payload or 'cart_token_hash' not in payload:
        converted['cart_token_hash'] = _hash(payload.get('cart_token'))
    return converted


def upgrade():
    with op.batch_alter_table('orders') as batch:
        batch.add_column(sa.Column('cart_token_hash', sa.String(length=64), nullable=True))
        batch.create_index('ix_orders_cart_token_hash', ['cart_token_hash'], unique=False)
    with op.batch_alter_table('order_events') as batch:
        batch.add_column(sa.Column('body_sha256', sa.String(length=64), nullable=True))

    orders = sa.table('orders', sa.column('id', sa.BigInteger), sa.column('cart_token', sa.String),
                      sa.column('cart_token_hash', sa.String), sa.column('payload', sa.JSON))
    connection = op.get_bind()
    last_id = 0
    while True:
        rows = connection.execute(sa.select(orders.c.id, orders.c.cart_token, orders.c.payload)
                                  .where(orders.c.id > last_id).order_by(orders.c.id).limit(BATCH)).all()
        if not rows:
            break
        for row in rows:
            connection.execute(orders.update().where(orders.c.id == row.id).values(
                cart_token_hash=_hash(row.cart_token), payload=_payload_without_token(row.payload)))
        last_id = rows[-1].id

    # Plain ALTER TABLE (SQLite 3.35+ drops columns in place): a batch copy of `orders` would have to drop the
    # table every other table's foreign keys point at.
    op.drop_index('ix_orders_cart_token', table_name='orders')
    op.drop_column('orders', 'cart_token')


def downgrade():
    with op.batch_alter_table('order_events') as batch:
        batch.drop_column('body_sha256')
    op.add_column('orders', sa.Column('cart_token', sa.String(length=100), nullable=True))
    op.create_index('ix_orders_cart_token', 'orders', ['cart_token'], unique=False)
    op.drop_index('ix_orders_cart_token_hash', table_name='orders')
    op.drop_column('orders', 'cart_token_hash')
