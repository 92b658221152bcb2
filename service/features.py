"""The composition: every feature's settings, routes, jobs and order effects, named in one place.

`load_settings` reads the service-wide settings and every provider's and feature's section into one
`AppSettings`. Importing this module registers every job handler (each jobs module registers its handlers when
it is imported; tests/test_job_registry.py fails when a jobs module on disk is not named here) and
composes the order effects; `register(app)` adds the blueprints and the features' commands. Features never
import this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Flask

from service.api import API_KEY, health
from service.api import metrics as metrics_routes
from service.checkout import jobs as checkout_jobs
from service.checkout import routes as checkout_routes
from service.config import Environment, Settings, read_settings
from service.console import routes as console_routes
from service.demo import routes as demo_routes
from service.jobs import maintenance
from service.membership import jobs as membership_jobs
from service.membership import routes as membership_routes
from service.membership import rules as membership_rules
from service.membership import settings as membership_settings
from service.membership.settings import MembershipSettings
from service.orders import attention as orders_attention
from service.orders import effects
from service.orders import jobs as orders_jobs
from service.orders import routes as orders_routes
from service.providers import settings as provider_settings
from service.providers.settings import CardlySettings, InstagiftSettings, InstantCardSettings
from service.redemption import jobs as redemption_jobs
from service.redemption import metrics as redemption_metrics
from service.redemption import rules as redemption_rules
from service.reports import cli as reports_cli
from service.reports import routes as reports_routes
from service.thank_you import jobs as thank_you_jobs
from service.thank_you import routes as thank_you_routes
from service.thank_you import rules as thank_you_rules
from service.thank_you import settings as thank_you_settings
from service.thank_you.settings import ThankYouSettings
from service.widget import routes as widget_routes


@dataclass(frozen=True, kw_only=True)
class AppSettings(Settings):
    """The settings the app runs with: the service-wide ones, each provider's connection and each feature's
    rules (rules read `settings.thank_you.message`, `settings.membership.products`, `settings.cardly.artwork`)."""

    instagift: InstagiftSettings
    cardly: CardlySettings
    instantcard: InstantCardSettings
    thank_you: ThankYouSettings
    membership: MembershipSettings

    @property
    def uses_sandbox(self) -> bool:
        return self.instagift.sandbox or self.cardly.sandbox or self.instantcard.sandbox


def _read_sections(env: Environment) -> Mapping[str, Any]:
    membership = membership_settings.read(env)
    return {
        "instagift": provider_settings.read_instagift(env),
        "cardly": provider_settings.read_cardly(env),
        "instantcard": provider_settings.read_instantcard(env, needed=bool(membership.products)),
        "thank_you": thank_you_settings.read(env),
        "membership": membership,
    }


def load_settings(environ: Mapping[str, str] | None = None, instance_path: str = "instance") -> AppSettings:
    """Every setting from `environ` (os.environ when None), checked; ConfigurationError lists every problem."""
    return read_settings(environ, instance_path, AppSettings, _read_sections)


# The modules whose handlers the worker runs (registered by the imports above; listed so the set is visible).
JOB_MODULES = (orders_jobs, checkout_jobs, redemption_jobs, thank_you_jobs, membership_jobs, maintenance)
# What a job's success settles besides the job (registered by the import above): a successful retry resolves the
# attention items its job's failures raised.
JOB_SUCCESS_LISTENERS = (orders_attention.resolve_after_successful_retry,)

# Modules that count their feature's metrics as they are imported (docs/metrics.md).
METRICS_MODULES = (redemption_metrics,)

# Redemption is planned inside the intake transaction; the thank-you and membership cards by the order's
# planning job, in this order. A cancellation reaches them in the same order.
effects.compose(at_intake=(redemption_rules,), by_job=(thank_you_rules, membership_rules))

# Every route of these is in the OpenAPI document. The demo pages (HTML for development, refused in production)
# and the console's pages are not part of the JSON contract, so they are registered with the app alone.
API_BLUEPRINTS = (health.bp, metrics_routes.bp, orders_routes.bp, reports_routes.bp, widget_routes.bp,
                  checkout_routes.bp, thank_you_routes.bp, membership_routes.bp)
PAGE_BLUEPRINTS = (demo_routes.bp,)


def register(app: Flask) -> None:
    """Register every feature's blueprint (after service.api.init_api) and command."""
    api = app.extensions[API_KEY]
    for blueprint in API_BLUEPRINTS:
        api.register_blueprint(blueprint)
    for blueprint in PAGE_BLUEPRINTS:
        app.register_blueprint(blueprint)
    # The console's pages (HTML, outside the OpenAPI document), with its sessions and CSRF protection.
    console_routes.init_app(app)
    app.cli.add_command(reports_cli.reconcile_command)
