"""The client's promises: batches, retries with the same event ids, a bounded buffer whose drops are
counted, no blocking when Meterline is down, thread safety, a flush at exit, quota decisions."""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from meterline_client import Meterline, QuotaExceeded

USAGE = {"input_tokens": 10, "output_tokens": 2}


def client(url: str, **options) -> Meterline:  # type: ignore[no-untyped-def]
    options.setdefault("flush_interval", 0.05)
    options.setdefault("backoff_base", 0.01)
    options.setdefault("flush_at_exit", 0)
    return Meterline("mlk_test_secret", base_url=url, **options)


def test_events_go_in_batches_with_the_key(server) -> None:
    meterline = client(server.url, batch_size=200)
    ids = [meterline.record("gpt-4o", USAGE, feature="chat") for _ in range(450)]
    assert meterline.flush(5)
    assert sorted(server.events) == sorted(ids) and len(set(ids)) == 450
    assert all(len(batch) <= 200 for batch in server.batches())
    assert server.requests[0]["auth"] == "Bearer mlk_test_secret"
    event = server.events[ids[0]]
    assert (event["model"], event["usage"], event["feature"]) == ("gpt-4o", USAGE, "chat")
    assert event["timestamp"].endswith("+00:00")
    assert meterline.stats()["sent"] == 450 and meterline.stats()["pending"] == 0
    meterline.close()


def test_a_failed_batch_is_retried_with_the_same_event_ids(server) -> None:
    server.fail_next = 2
    meterline = client(server.url)
    ids = [meterline.record("gpt-4o", USAGE) for _ in range(5)]
    assert meterline.flush(5)
    attempts = server.batches()
    assert [[e["event_id"] for e in batch] for batch in attempts] == [ids, ids, ids]  # the third try got through
    assert len(server.requests) == 3 and meterline.stats()["retries"] == 2
    assert sorted(server.events) == sorted(ids)
    meterline.close()


def test_a_retry_of_a_batch_that_arrived_counts_as_duplicates(server) -> None:
    meterline = client(server.url)
    event_id = meterline.record("gpt-4o", USAGE, event_id="fixed-1")
    meterline.flush(5)
    meterline.record("gpt-4o", USAGE, event_id=event_id)
    meterline.flush(5)
    assert len(server.events) == 1 and meterline.stats()["duplicates"] == 1
    meterline.close()


def test_when_meterline_is_down_recording_never_blocks_and_drops_are_counted(closed_port) -> None:
    meterline = client(closed_port, max_buffer=100, batch_size=50)
    started = time.perf_counter()
    for _ in range(1000):
        meterline.record("gpt-4o", USAGE)
    assert time.perf_counter() - started < 0.5  # 1,000 calls recorded without waiting for the network
    stats = meterline.stats()
    assert stats["recorded"] + stats["dropped"] == 1000 and stats["dropped"] >= 850
    started = time.perf_counter()
    meterline.close(timeout=0.5)
    assert time.perf_counter() - started < 3
    assert meterline.stats()["pending"] == 0
    assert meterline.stats()["dropped"] == 1000  # nothing could be sent: every event is accounted for


def test_events_recorded_from_many_threads_arrive_once(server) -> None:
    meterline = client(server.url, batch_size=100)

    def send() -> None:
        for _ in range(250):
            meterline.record("gpt-4o-mini", USAGE)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert meterline.flush(10)
    assert len(server.events) == 2000 and sum(len(b) for b in server.batches()) == 2000
    meterline.close()


def test_too_large_batches_are_split(server) -> None:
    server.max_batch = 30
    meterline = client(server.url, batch_size=100)
    for _ in range(100):
        meterline.record("gpt-4o", USAGE)
    assert meterline.flush(5)
    assert len(server.events) == 100
    meterline.close()


def test_batches_stay_under_the_body_limit_without_a_refusal(server) -> None:
    """A full batch of events with large metadata would exceed Meterline's 4 MiB per body: it goes in parts small
    enough to be taken, none of them refused first."""
    meterline = client(server.url, batch_size=1000, flush_interval=5)
    ids = [meterline.record("gpt-4o", USAGE, metadata={"note": "x" * 4080}) for _ in range(1000)]
    assert meterline.flush(10)
    assert sorted(server.events) == sorted(ids)
    assert server.too_large == 0 and len(server.batches()) >= 2
    assert all(len(json.dumps({"events": batch}).encode()) <= server.max_body for batch in server.batches())
    meterline.close()


def test_rejections_are_counted_not_retried(server) -> None:
    server.reject_models = {"bad-model"}
    meterline = client(server.url)
    meterline.record("bad-model", USAGE)
    meterline.record("gpt-4o", USAGE)
    meterline.flush(5)
    assert meterline.stats()["rejected"] == 1 and meterline.stats()["sent"] == 1 and len(server.requests) == 1
    meterline.close()


def test_buffered_events_are_sent_when_the_program_exits(server) -> None:
    script = (
        "from meterline_client import Meterline\n"
        f"m = Meterline('mlk_x', base_url='{server.url}', flush_interval=60)\n"
        "for n in range(5): m.record('gpt-4o', {'input_tokens': 1, 'output_tokens': 1}, event_id=f'exit-{n}')\n"
    )
    source = Path(__file__).resolve().parent.parent / "src"
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30, env={"PYTHONPATH": str(source)})
    assert sorted(server.events) == [f"exit-{n}" for n in range(5)]


def test_quota_check_answers_the_model_to_use_or_raises(server, closed_port) -> None:
    meterline = client(server.url)
    assert meterline.quota_check("gpt-4o", estimated_tokens=1200) == "gpt-4o"
    assert server.requests[-1]["body"] == {"model": "gpt-4o", "estimated_tokens": 1200}
    server.quota_answer = {"decision": "downgrade", "model": "gpt-4o-mini", "reason": "80 %", "budgets": []}
    assert meterline.quota_check("gpt-4o") == "gpt-4o-mini"
    server.quota_answer = {
        "decision": "block",
        "model": "gpt-4o",
        "reason": "Monthly cap reached",
        "budgets": [{"id": 3}],
    }
    with pytest.raises(QuotaExceeded) as blocked:
        meterline.quota_check("gpt-4o")
    assert str(blocked.value) == "Monthly cap reached" and blocked.value.budgets == [{"id": 3}]
    down = client(closed_port)
    assert down.quota_check("gpt-4o") == "gpt-4o" and down.stats()["quota_errors"] == 1  # fails open
    with pytest.raises(QuotaExceeded):
        down.quota_check("gpt-4o", fail_open=False)
    meterline.close()
    down.close(timeout=0.1)
