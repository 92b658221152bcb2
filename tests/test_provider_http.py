"""The shared provider HTTP helper: one requests.Session per thread, the environment's proxy and CA settings read
once per provider."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import requests

from service.providers.cardly import CardlyClient
from service.providers.http import ProviderHttp

THREADS, CALLS_PER_THREAD = 4, 3


class RecordingSession(requests.Session):
    """A real Session that remembers which threads sent requests through it."""

    made: list[RecordingSession] = []

    def __init__(self) -> None:
        super().__init__()
        self.threads: list[int] = []
        RecordingSession.made.append(self)

    def request(self, *args, **kwargs):
        self.threads.append(threading.get_ident())
        return super().request(*args, **kwargs)


def test_each_thread_has_its_own_session_and_keeps_it(app):
    settings = app.extensions["settings"].cardly
    RecordingSession.made = []
    client = CardlyClient(settings.api_url, settings.api_key, session_factory=RecordingSession)
    start = threading.Barrier(THREADS)

    def calls() -> int:
        start.wait(10)  # all threads at once, so a shared session would be shared concurrently
        for _ in range(CALLS_PER_THREAD):
            client.account_balance()
        return threading.get_ident()

    with ThreadPoolExecutor(THREADS) as pool:
        idents = set(pool.map(lambda _: calls(), range(THREADS)))

    used = [s for s in RecordingSession.made if s.threads]
    assert len(idents) == THREADS
    assert len(used) == THREADS  # one session per thread …
    assert all(len(set(s.threads)) == 1 and len(s.threads) == CALLS_PER_THREAD for s in used)  # … kept by it
    assert {s.threads[0] for s in used} == idents
    assert len(RecordingSession.made) == THREADS + 1  # plus the constructing thread's, made when the client was


def test_proxy_and_ca_settings_are_read_once_for_every_threads_session(monkeypatch, tmp_path):
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    http = ProviderHttp("example", "https://provider.example/api")
    monkeypatch.setenv("HTTPS_PROXY", "http://changed.internal:3128")  # read once: later changes are not seen
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")

    seen: list[requests.Session] = []
    worker = threading.Thread(target=lambda: seen.append(http.session))
    worker.start()
    worker.join()

    for session in (http.session, seen[0]):
        assert session.proxies["https"] == "http://proxy.internal:3128"
        assert session.verify == str(bundle)
        assert session.trust_env is False  # requests does not scan the environment again on each call
    assert seen[0] is not http.session
