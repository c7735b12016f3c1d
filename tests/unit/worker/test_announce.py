from __future__ import annotations

import json
import time
import uuid

import redis

from toolchest_wes.worker.announce import WorkerAnnouncer


def test_recent_workers_are_listed_and_long_gone_ones_dropped(redis_server) -> None:  # type: ignore[no-untyped-def]
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    announcer = WorkerAnnouncer(client, f"ann-{uuid.uuid4().hex[:8]}", stale_after_s=30)
    try:
        announcer.announce("a@h", {"cwltool": "3.3.1"})
        announcer.announce("b@h", {"cwltool": "3.2.0"}, consuming=False)
        for name, age in [("stale@h", 99), ("gone@h", 999)]:
            entry = {"engines": {"cwltool": "1.0"}, "consuming": True, "seen": time.time() - age}
            client.hset(announcer.key, name, json.dumps(entry))
        client.hset(announcer.key, "junk@h", "not json")

        workers = announcer.workers()

        assert {w.name: w.consuming for w in workers} == {"a@h": True, "b@h": False}
        assert all(0 <= w.age_s < 30 and w.seen > 0 for w in workers)
        assert {w.name: w.engines for w in workers} == {
            "a@h": {"cwltool": "3.3.1"},
            "b@h": {"cwltool": "3.2.0"},
        }
        # Stale entries stay a while (not listed); long-gone and broken ones are deleted.
        assert set(client.hkeys(announcer.key)) == {"a@h", "b@h", "stale@h"}
    finally:
        client.delete(announcer.key)
        client.close()
