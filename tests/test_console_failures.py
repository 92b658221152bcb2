"""The console's failures page (issue 16 › Failures): dead and parked jobs with their reason and their order, and a
Retry whose outcome, good or refused, the next page shows."""

from __future__ import annotations

import re

import pytest

from service.db import db, utcnow
from service.jobs.models import Job
from tests.test_console_auth import ANNA, csrf_token, sign_in
from tests.test_reconciliation_support import job, order


@pytest.fixture
def environ(environ):
    environ["ADMIN_API_TOKENS"] = f"anna:{ANNA}"
    return environ


@pytest.fixture
def jobs(app) -> dict[str, int]:
    now = utcnow()
    with app.app_context():
        shop_order = order("fail-1", completed_at=now)
        dead = job("test_console_failures", state="dead", created_at=now, failures=8, of=shop_order)
        parked = job("test_console_failures", state="parked", created_at=now)
        parked.parked_reason = "Cardly account without credit"
        done = job("test_console_failures", state="succeeded", created_at=now)
        db.session.commit()
        return {"dead": dead.id, "parked": parked.id, "succeeded": done.id}


def section(text: str, heading_id: str) -> str:
    return text.split(f'<h2 id="{heading_id}">', 1)[1].split("</section>", 1)[0]


def test_dead_and_parked_jobs_are_listed_with_their_reason_and_order(client, jobs):
    sign_in(client)
    text = client.get("/admin/failures").text
    dead, parked = section(text, "dead"), section(text, "parked")
    assert dead.startswith("Dead jobs (1)") and parked.startswith("Parked jobs (1)")
    assert re.search(rf'<td>{jobs["dead"]} <span class="kind">test_console_failures</span></td>\s*'
                     r'<td><a href="/admin/orders/fail-1">fail-1</a></td>\s*<td>boom</td><td class="num">8</td>', dead)
    assert f'<td>{jobs["parked"]} <span' in parked
    assert "<td>Cardly account without credit</td>" in parked
    assert f"Retry job {jobs['succeeded']}" not in text  # a job that succeeded is not a failure


def test_a_refused_retry_says_why_on_the_next_page_and_changes_nothing(app, client, jobs):
    sign_in(client)
    token = csrf_token(client, "/admin/failures")
    refused = client.post(f"/admin/jobs/{jobs['succeeded']}/retry", data={"csrf_token": token})
    assert refused.status_code == 302 and refused.headers["Location"] == "/admin/failures"
    text = client.get("/admin/failures").text
    assert f"Job {jobs['succeeded']} is succeeded; only dead or parked jobs can be retried." in text
    with app.app_context():
        assert db.session.get(Job, jobs["succeeded"]).state == "succeeded"
    # A parked job is retried like a dead one.
    assert client.post(f"/admin/jobs/{jobs['parked']}/retry", data={"csrf_token": token}).status_code == 302
    assert f"Job {jobs['parked']} (test_console_failures) is queued again" in client.get("/admin/failures").text
    with app.app_context():
        assert db.session.get(Job, jobs["parked"]).state == "queued"
