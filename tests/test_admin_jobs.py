"""GET /v1/jobs and POST /v1/jobs/{id}/retry: the queue as the merchant sees it, and a manual retry."""

import pytest

from service.db import db
from service.jobs.models import Job, JobAttempt
from service.jobs.queue import enqueue
from service.jobs.registry import PermanentFailure, handler
from tests.support import ADMIN

# What the test handler did, per job id; the handler fails permanently while the job's id is in FAIL.
RUNS: dict[int, int] = {}
FAIL: set[int] = set()


@handler("test_admin_flaky")
def flaky(ctx):
    RUNS[ctx.job.id] = RUNS.get(ctx.job.id, 0) + 1
    if ctx.job.id in FAIL:
        raise PermanentFailure("the merchant's template is missing (token=sk_live_abcdefghijkl)")


@pytest.fixture(autouse=True)
def _clean():
    RUNS.clear()
    FAIL.clear()


def _enqueue(app, kind="test_admin_flaky", **kwargs) -> int:
    with app.app_context():
        enqueue(db.session, kind, {}, **kwargs)
        db.session.commit()
        return db.session.scalar(db.select(db.func.max(Job.id)))


def test_retrying_a_dead_job_runs_it_exactly_once(app, client, run_jobs):
    job_id = _enqueue(app)
    FAIL.add(job_id)
    run_jobs()
    dead = client.get("/v1/jobs?state=dead", headers=ADMIN).get_json()
    assert [j["id"] for j in dead["items"]] == [job_id]
    assert "template is missing" in dead["items"][0]["last_error"]
    assert "abcdefghijkl" not in str(dead)  # stored errors are masked

    FAIL.clear()
    response = client.post(f"/v1/jobs/{job_id}/retry", headers=ADMIN)
    assert response.status_code == 202
    assert response.get_json()["state"] == "queued"
    assert run_jobs() == 1
    assert run_jobs() == 0
    assert RUNS[job_id] == 2  # the failed run and exactly one more
    with app.app_context():
        job = db.session.get(Job, job_id)
        assert job.state == "succeeded"
        outcomes = db.session.scalars(db.select(JobAttempt.outcome).where(JobAttempt.job_id == job_id)
                                      .order_by(JobAttempt.id)).all()
        assert outcomes == ["failed", "succeeded"]

    again = client.post(f"/v1/jobs/{job_id}/retry", headers=ADMIN)
    assert again.status_code == 409
    assert again.get_json()["code"] == "job_not_retryable"
    assert run_jobs() == 0
    assert RUNS[job_id] == 2


def test_retrying_an_unknown_job_is_a_404_problem(client):
    response = client.post("/v1/jobs/999999/retry", headers=ADMIN)
    assert response.status_code == 404
    assert response.get_json()["code"] == "job_not_found"


def test_jobs_listing_filters_and_paginates(app, client, run_jobs):
    ids = [_enqueue(app) for _ in range(5)]
    FAIL.update(ids[:3])
    other = _enqueue(app, kind="test_admin_other_kind")
    run_jobs(kinds=("test_admin_flaky",))

    seen, page = [], 1
    while page:
        body = client.get(f"/v1/jobs?state=dead&kind=test_admin_flaky&per_page=2&page={page}",
                          headers=ADMIN).get_json()
        assert body["total"] == 3
        assert len(body["items"]) <= 2
        seen += [j["id"] for j in body["items"]]
        page = body["next_page"]
    assert seen == sorted(ids[:3], reverse=True)

    queued = client.get("/v1/jobs?state=queued", headers=ADMIN).get_json()
    assert [j["id"] for j in queued["items"]] == [other]
    assert queued["next_page"] is None
    succeeded = client.get("/v1/jobs?state=succeeded&kind=test_admin_flaky", headers=ADMIN).get_json()
    assert sorted(j["id"] for j in succeeded["items"]) == ids[3:]
    assert all(len(j["attempt_log"]) == 1 for j in succeeded["items"])


@pytest.mark.parametrize("query", ["state=exploded", "page=0", "per_page=100000", "page=x", "kind="])
def test_bad_job_filters_are_422_problems(client, query):
    response = client.get(f"/v1/jobs?{query}", headers=ADMIN)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"


def test_the_job_list_leaves_periodic_housekeeping_out_unless_asked(app, client):
    from service.jobs.queue import periodic_dedupe_key

    order_job = _enqueue(app)
    for bucket in range(5):
        _enqueue(app, kind="release_expired_holds", dedupe_key=periodic_dedupe_key("release_expired_holds", bucket))
    listed = client.get("/v1/jobs", headers=ADMIN).get_json()
    assert [j["id"] for j in listed["items"]] == [order_job] and listed["items"][0]["periodic"] is False
    everything = client.get("/v1/jobs?include_periodic=true", headers=ADMIN).get_json()
    assert everything["total"] == 6 and sum(j["periodic"] for j in everything["items"]) == 5
    assert client.get("/v1/jobs?kind=release_expired_holds", headers=ADMIN).get_json()["total"] == 5


def test_a_retried_jobs_answer_names_the_shops_order(app, client, run_jobs):
    from tests.support import order_completed, signed_webhook

    raw, headers = signed_webhook(order_completed("K1"))
    assert client.post("/v1/webhooks/orders", data=raw, headers=headers).status_code == 202
    with app.app_context():
        order_id = db.session.scalar(db.select(db.func.max(Job.order_id)))
    job_id = _enqueue(app, order_id=order_id)
    FAIL.add(job_id)
    run_jobs()
    FAIL.clear()
    answer = client.post(f"/v1/jobs/{job_id}/retry", headers=ADMIN).get_json()
    assert answer["shop_order_id"] == "K1" and "order_id" not in answer
