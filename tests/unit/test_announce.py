from __future__ import annotations

import json
import time
import uuid

import redis

from toolchest_wes.worker.announce import WorkerAnnouncer


def test_recent_workers_versions_are_listed_and_stale_ones_dropped(redis_server) -> None:  # type: ignore[no-untyped-def]
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    announcer = WorkerAnnouncer(client, f"ann-{uuid.uuid4().hex[:8]}", stale_after_s=30)
    try:
        announcer.announce("a:1", {"cwltool": "3.3.1"})
        announcer.announce("b:2", {"cwltool": "3.2.0"})
        client.hset(
            announcer.key,
            "gone:3",
            json.dumps({"engines": {"cwltool": "1.0"}, "seen": time.time() - 99}),
        )
        client.hset(announcer.key, "junk:4", "not json")
        assert announcer.engine_versions() == {"cwltool": ["3.2.0", "3.3.1"]}
        assert set(client.hkeys(announcer.key)) == {"a:1", "b:2"}
    finally:
        client.delete(announcer.key)
        client.close()
