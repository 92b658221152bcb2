"""Provider bearer tokens kept in the database (`provider_tokens`), so every worker and web process shares one
login: the table and the token store that reads and writes it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from service.db import BigIntId, UTCDateTime, db, insert_ignoring_conflict, utcnow
from service.providers.instantcard import PROVIDER, CachedToken


class ProviderToken(db.Model):
    """A provider's bearer token shared by every worker and web process (one row per provider+account)."""

    __tablename__ = "provider_tokens"
    __table_args__ = (sa.UniqueConstraint("provider", "account"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True)
    provider: Mapped[str] = mapped_column(sa.String(40))
    account: Mapped[str] = mapped_column(sa.String(320))
    token: Mapped[str] = mapped_column(sa.Text)
    # None when the provider did not say; the token is then used until it is refused (401).
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    obtained_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DatabaseTokenStore:
    """The token in the `provider_tokens` table, shared by every worker and web process.

    Each operation is its own short transaction on its own session, so it never commits the caller's
    work; callers must not hold an open SQLite write transaction while calling the provider.
    """

    def __init__(self, account: str, engine_getter: Callable[[], sa.Engine] | None = None,
                 provider: str = PROVIDER):
        self.provider = provider
        self.account = account
        self._engine_getter = engine_getter or _flask_engine

    def _where(self):
        return ProviderToken, sa.and_(ProviderToken.provider == self.provider, ProviderToken.account == self.account)

    def load(self) -> CachedToken | None:
        model, where = self._where()
        with Session(self._engine_getter()) as session, session.begin():
            row = session.scalar(sa.select(model).where(where))
            return CachedToken(row.token, row.expires_at) if row else None

    def save(self, token: CachedToken) -> None:
        model, where = self._where()
        with Session(self._engine_getter()) as session, session.begin():
            values = dict(provider=self.provider, account=self.account, token=token.token,
                          expires_at=token.expires_at, obtained_at=utcnow())
            if not insert_ignoring_conflict(session, model, values, ["provider", "account"]):
                session.execute(sa.update(model).where(where).values(
                    token=token.token, expires_at=token.expires_at, obtained_at=values["obtained_at"]))

    def discard(self, token: str) -> None:
        # Only the token that was refused: another worker may already have stored a fresh one.
        model, where = self._where()
        with Session(self._engine_getter()) as session, session.begin():
            session.execute(sa.delete(model).where(where, model.token == token))


def _flask_engine() -> sa.Engine:
    return db.engine
