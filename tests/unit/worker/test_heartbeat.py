"""Consumer liveness: consuming only while started and while the event loop ticks."""

from __future__ import annotations

from toolchest_wes.worker.heartbeat import ConsumerLiveness


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_consuming_while_started_and_ticking() -> None:
    clock = Clock()
    liveness = ConsumerLiveness(clock)
    assert not liveness.consuming()

    liveness.start()
    assert liveness.consuming() and liveness.changed.is_set()
    clock.now += 9
    liveness.tick()
    clock.now += 9
    assert liveness.consuming()


def test_a_loop_that_stops_ticking_is_stuck() -> None:
    clock = Clock()
    liveness = ConsumerLiveness(clock)
    liveness.start()
    clock.now += 11
    assert not liveness.consuming()


def test_a_stopped_consumer_stays_stopped_until_started() -> None:
    clock = Clock()
    liveness = ConsumerLiveness(clock)
    liveness.start()
    liveness.changed.clear()

    liveness.stop()
    liveness.tick()  # a tick already scheduled when the connection was lost

    assert not liveness.consuming() and liveness.changed.is_set()
    liveness.start()
    assert liveness.consuming()
