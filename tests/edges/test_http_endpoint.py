"""/metrics, /healthz and /readyz under floods: idle connections, connections that
reconnect as soon as they are closed, clients trickling a byte at a time. Each through a
real socket; the last through the real `license-sync run` process."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest

from sync.edges.http_endpoint import HealthServer
from sync.edges.metrics import Metrics
from sync.fakes.flood import Flood
from tests.support.paths import BIN, ROOT
from tests.support.process import free_port, memory_mib, wait_for

CAPTURE = ROOT / "tests/fixtures/flexlm/two_vendors.txt"


def ok() -> tuple[bool, str]:
    return True, "ok"


def closed_within(s: socket.socket, seconds: float) -> bool:
    """Whether the server closed `s` within `seconds`."""
    s.settimeout(seconds)
    try:
        return s.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True  # reset: closed too


def healthz_seconds(port: int) -> float:
    t0 = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
        assert answer.status == 200 and answer.read().startswith(b"ok")
    return time.monotonic() - t0


def cuts(metrics: Metrics, bound: str) -> float:
    value = metrics.registry.get_sample_value(
        "license_sync_http_connections_cut_total", {"bound": bound}
    )
    return value or 0


def test_idle_connections_past_the_bound_close_the_oldest_and_the_rest_time_out(caplog):
    before = threading.active_count()
    metrics = Metrics()
    assert [cuts(metrics, b) for b in ("deadline", "per_client", "total")] == [0, 0, 0]
    assert b'bound="total"} 0.0' in metrics.exposition()  # each bound's series at once
    server = HealthServer(metrics, "127.0.0.1:0", ok, max_connections=4, request_deadline=1)
    server.start()
    try:
        idle = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(50)]
        assert threading.active_count() == before + 1  # one loop, not a thread a connection
        # the 46 oldest closed as newer ones came; the 4 newest at their deadline
        assert all(closed_within(s, 5) for s in idle[:46])
        assert not any(closed_within(s, 0.05) for s in idle[46:])  # well inside the 1 s
        assert all(closed_within(s, 5) for s in idle[46:])
        assert (cuts(metrics, "per_client"), cuts(metrics, "deadline")) == (46, 4)
        said = [r.getMessage() for r in caplog.records if "cut at its bound" in r.getMessage()]
        assert len(said) == 2 and "LICENSE_SYNC_HTTP_PER_CLIENT" in said[0], said
        for s in idle:
            s.close()
        url = f"http://127.0.0.1:{server.port}/metrics"
        assert b"license_sync_cycles_total" in urllib.request.urlopen(url, timeout=10).read()
    finally:
        server.stop()


def test_a_flood_from_one_address_leaves_another_addresss_connections_alone():
    server = HealthServer(
        Metrics(), "127.0.0.1:0", ok, per_client=8, max_connections=100, request_deadline=30
    ).start()
    try:
        theirs = []
        for _ in range(8):
            s = socket.socket()
            s.bind(("127.0.0.2", 0))  # another client on the same loopback
            s.connect(("127.0.0.1", server.port))
            theirs.append(s)
        flood = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(200)]
        assert all(closed_within(s, 5) for s in flood[:192])  # it churns only its own
        assert not any(closed_within(s, 0.05) for s in theirs)
        theirs[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        theirs[0].settimeout(5)
        assert theirs[0].recv(100).startswith(b"HTTP/1.1 200 OK")
        for s in theirs + flood:
            s.close()
    finally:
        server.stop()


def test_clients_trickling_a_byte_at_a_time_do_not_hold_healthz_up():
    """Slowloris: 40 clients each sending a byte of their request every 0.1 s, past the
    bound of 4. The newest connection closes the longest-held, so /healthz answers at once
    (before: only once the 5 s request deadline cut the tricklers)."""
    server = HealthServer(Metrics(), "127.0.0.1:0", ok, max_connections=4).start()
    tricklers = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(40)]
    try:
        for _ in range(5):
            for s in tricklers:
                try:
                    s.send(b"G")
                except OSError:
                    pass  # closed by the server: the bound
            time.sleep(0.1)  # the clients' pace, not a wait for the server
            assert healthz_seconds(server.port) < 1
    finally:
        for s in tricklers:
            s.close()
        server.stop()


def test_what_is_not_a_scrape_gets_a_plain_answer_and_a_closed_connection():
    server = HealthServer(Metrics(), "127.0.0.1:0", ok, request_deadline=2).start()

    def ask(request: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            s.sendall(request)
            s.settimeout(5)
            answer = b""
            while chunk := s.recv(65536):
                answer += chunk
            return answer

    try:
        assert ask(b"HEAD /metrics HTTP/1.1\r\n\r\n").endswith(b"\r\n\r\n")  # no body
        assert ask(b"POST /metrics HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 405")
        assert ask(b"GET /admin HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 404")
        assert ask(b"nonsense\r\n\r\n").startswith(b"HTTP/1.1 400")
        assert ask(b"GET / HTTP/1.1\r\nX: " + b"a" * 100_000 + b"\r\n\r\n").startswith(
            b"HTTP/1.1 431"
        )
        assert ask(b"GET /readyz?verbose HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.1 200")
    finally:
        server.stop()


def test_healthz_answers_within_a_second_behind_ten_thousand_idle_sockets(tmp_path):
    """The real `license-sync run` (an exporter: no AWS needed) behind 10,000 idle
    connections and 3,000 more that reconnect as soon as they are closed: /healthz,
    `healthcheck` and /metrics answer within a second every time, in bounded memory
    (before: /healthz answered 0 of 12 times)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 14_000:
        pytest.skip(f"13,000 sockets need an open-file limit above 14,000 (hard: {hard})")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 14_000), hard))
    port = free_port()
    policy = tmp_path / "exporter.yaml"
    policy.write_text(f"""\
history: {{path: {tmp_path / "h.db"}}}
metrics: {{address: "127.0.0.1:{port}"}}
sources:
  lic: {{kind: flexlm, servers: ["27000@flex1"], executable: {BIN / "lmutil"}}}
""")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "FAKE_LM_OUTPUT": str(CAPTURE)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sync", "run", "--config", str(policy)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    floods: list[Flood] = []
    try:
        wait_for(lambda: _answers(port), 30, "the service's /healthz")
        floods.append(Flood(port, "127.0.0.2", 10_000, reconnect=False))
        floods.append(churn := Flood(port, "127.0.0.3", 3_000, reconnect=True))
        wait_for(lambda: churn.reopened > 1000, 60, "the flood to churn")
        times = [healthz_seconds(port) for _ in range(12)]
        check = subprocess.run(
            [sys.executable, "-m", "sync", "healthcheck", "--address", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
        )
        t0 = time.monotonic()
        url = f"http://127.0.0.1:{port}/metrics"
        assert b"license_sync_source_up" in urllib.request.urlopen(url, timeout=5).read()
        times.append(time.monotonic() - t0)
        assert max(times) < 1, times
        assert check.returncode == 0, check.stdout + check.stderr
        assert memory_mib(proc.pid) < 200
    finally:
        for flood in floods:
            flood.close()
        proc.terminate()
        out = proc.communicate(timeout=30)[0]
    assert "Traceback" not in out, out


def _answers(port: int) -> bool:
    try:
        return healthz_seconds(port) >= 0
    except (OSError, urllib.error.URLError):
        return False
