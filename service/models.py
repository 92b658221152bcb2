"""Every table of the service, imported in one place so that migrations (and `create_all`) see the whole schema.

Each model lives with its feature (or shared room); this module only gathers them.
"""

from service.audit.models import AuditEntry  # noqa: F401
from service.checkout.models import Cart, GiftCardHold  # noqa: F401
from service.jobs.models import Job, JobAttempt  # noqa: F401
from service.membership.models import MembershipCard, MembershipPrintJob  # noqa: F401
from service.orders.models import Order, OrderEvent  # noqa: F401
from service.providers.tokens import ProviderToken  # noqa: F401
from service.redemption.models import GiftCardRedemption  # noqa: F401
from service.thank_you.models import ThankYouCard  # noqa: F401
