"""Persistence: the database handle and every model, imported here so migrations see the whole schema."""

from service.persistence.checkout import Cart, GiftCardHold, Redemption  # noqa: F401
from service.persistence.db import db, utcnow  # noqa: F401
from service.persistence.jobs import Job, JobAttempt  # noqa: F401
from service.persistence.membership import MembershipCard, MembershipPrintJob, ProviderToken  # noqa: F401
from service.persistence.orders import Order, OrderEvent  # noqa: F401
from service.persistence.thank_you import ThankYouCard  # noqa: F401
