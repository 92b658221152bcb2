"""Job handlers register themselves when service.features imports their modules: a jobs module the composition does
not name would leave its job kinds without a handler (their jobs would only die, one by one, in the worker), so the
composition is checked against the files on disk."""

from __future__ import annotations

from pathlib import Path

import service
from service import features
from service.jobs.registry import get_handler
from service.membership import rules as membership_rules
from service.orders import effects
from service.redemption import rules as redemption_rules
from service.thank_you import rules as thank_you_rules

PACKAGE = Path(service.__file__).parent


def test_every_jobs_module_on_disk_is_named_by_the_composition():
    on_disk = {f"service.{path.parent.name}.jobs" for path in PACKAGE.glob("*/jobs.py")}
    on_disk.add("service.jobs.maintenance")
    composed = {module.__name__ for module in features.JOB_MODULES}
    assert on_disk == composed, "a jobs module missing from service/features.py leaves its job kinds without a handler"


def test_every_kind_the_features_enqueue_has_a_handler():
    kinds = (effects.PLAN_JOB, redemption_rules.JOB_KIND, thank_you_rules.JOB_KIND, membership_rules.JOB_KIND,
             membership_rules.BATCH_JOB_KIND, membership_rules.BATCH_CHECK_KIND, membership_rules.FUNDS_CHECK_KIND,
             "release_expired_holds", "check_cardly_credit", "purge_periodic_jobs")
    assert [kind for kind in kinds if get_handler(kind) is None] == []
