"""The composition: every feature's routes, jobs and order effects, named in one place.

Importing this module registers every job handler (each jobs module registers its handlers when it is imported;
tests/test_job_registry.py fails when a jobs module on disk is not named here) and composes the order effects; `register(app)` adds the blueprints and the features' commands. Features never import this module.
"""

from __future__ import annotations

from flask import Flask

from service.api import health
from service.checkout import jobs as checkout_jobs
from service.checkout import routes as checkout_routes
from service.demo import routes as demo_routes
from service.jobs import maintenance
from service.membership import jobs as membership_jobs
from service.membership import routes as membership_routes
from service.membership import rules as membership_rules
from service.orders import effects
from service.orders import jobs as orders_jobs
from service.orders import routes as orders_routes
from service.redemption import jobs as redemption_jobs
from service.redemption import rules as redemption_rules
from service.reports import cli as reports_cli
from service.reports import routes as reports_routes
from service.thank_you import jobs as thank_you_jobs
from service.thank_you import routes as thank_you_routes
from service.thank_you import rules as thank_you_rules
from service.widget import routes as widget_routes

# The modules whose handlers the worker runs (registered by the imports above; listed so the set is visible).
JOB_MODULES = (orders_jobs, checkout_jobs, redemption_jobs, thank_you_jobs, membership_jobs, maintenance)

# Redemption is planned inside the intake transaction; the thank-you and membership cards by the order's
# planning job, in this order. A cancellation reaches them in the same order.
effects.compose(at_intake=(redemption_rules,), by_job=(thank_you_rules, membership_rules))

BLUEPRINTS = (health.bp, orders_routes.bp, reports_routes.bp, widget_routes.bp, demo_routes.bp, checkout_routes.bp,
              thank_you_routes.bp, membership_routes.bp)


def register(app: Flask) -> None:
    """Register every feature's blueprint (after service.api.init_api) and command."""
    for blueprint in BLUEPRINTS:
        app.register_blueprint(blueprint)
    app.cli.add_command(reports_cli.reconcile_command)
