"""nova_ha.evacuator.detection: classify, the stall monitor, heard_since
(pure logic on a clock the test moves)."""

import types

import pytest

from nova_ha.evacuator import detection
from nova_ha.heartbeat import receiver as hb


@pytest.mark.parametrize('state,silent,recovery,judging,expected', [
    (hb.ALIVE, [], False, True, detection.OK),
    (hb.SERVICE_DOWN, [], False, True, detection.SERVICE_DOWN),
    (hb.SILENT, ['management', 'storage'], False, True, detection.HOST_DOWN),
    (hb.UNKNOWN, None, False, True, detection.HOST_DOWN),
    (hb.PARTITION, ['storage'], False, True, detection.PARTITION),
    (hb.PARTITION, ['management', 'storage'], True, True,
     detection.HOST_DOWN),
    (hb.PARTITION, ['management', 'storage'], False, True,
     detection.PARTITION),
    # Not judging (start-up grace, fresh window after a stall).
    (hb.SILENT, ['management', 'storage'], False, False, detection.SUSPECT),
    (hb.PARTITION, ['storage'], False, False, detection.SUSPECT),
    (hb.ALIVE, [], False, False, detection.OK),
])
def test_classify(state, silent, recovery, judging, expected):
    assert detection.classify(state, silent, recovery, judging) == expected


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def monitor(threshold=0.5):
    clock = Clock()
    return detection.StallMonitor(threshold=threshold, interval=0.05,
                                  clock=clock, boottime=lambda: None), clock


def test_no_stall_no_suspension():
    m, clock = monitor()
    for _ in range(10):
        clock.t += 0.05
        m.tick()
    assert m.last is None and m.count == 0
    assert m.fresh(clock.t, 0.45)
    assert m.suspended(clock.t, 8.0) is None


def test_ticker_gap_is_a_stall_then_a_fresh_window():
    m, clock = monitor()
    m.tick()
    clock.t += 6.5                      # SIGSTOP 6.5 s
    m.tick()
    assert m.count == 1 and 'did not run for 6.50 s' in m.last.cause
    assert not m.fresh(clock.t, 0.45)
    assert 'fencing suspended' in m.suspended(clock.t, 4.0)
    clock.t += 0.45
    assert m.fresh(clock.t, 0.45)       # a SAL1 host is judged again...
    assert m.suspended(clock.t, 4.0)    # ... fencing waits for the SAL2 one
    clock.t += 3.6
    assert m.suspended(clock.t, 4.0) is None


def test_short_gap_is_not_a_stall():
    m, clock = monitor(threshold=0.5)
    m.tick()
    clock.t += 0.5                      # interval + 0.45 s late
    m.tick()
    assert m.count == 0


def test_loop_falling_behind_is_a_stall():
    m, clock = monitor()
    m.pass_started(clock.t, expected=0.1)
    m.pass_ended(clock.t + 0.01)
    clock.t += 0.7
    m.pass_started(clock.t, expected=0.1)
    assert m.count == 1 and 'fell behind' in m.last.cause
    # A standby has no passes: its first pass as leader is no stall.
    m2, clock2 = monitor()
    m2.pass_ended(None)
    clock2.t += 60
    m2.pass_started(clock2.t, expected=0.1)
    assert m2.count == 0


def test_everyone_silent_renews_the_suspension():
    m, clock = monitor()
    m.everyone_silent(clock.t, 6)
    assert 'every one of 6' in m.last.cause
    assert not m.fresh(clock.t + 0.4, 0.45)
    assert m.fresh(clock.t + 0.45, 0.45)


def test_suspend_of_the_machine_is_a_stall():
    boot = [50.0]
    clock = Clock()
    m = detection.StallMonitor(threshold=0.5, clock=clock,
                               boottime=lambda: boot[0])
    m.tick()
    clock.t += 0.05
    boot[0] += 0.05 + 30.0              # 30 s asleep (not on monotonic)
    m.tick()
    assert m.count == 1 and 'suspended for 30.00 s' in m.last.cause


def test_ticker_thread_starts_and_stops():
    m = detection.StallMonitor(threshold=0.5, interval=0.01).start()
    m.stop()
    assert m._thread is None


def test_heard_since():
    seen = {('c1', 'management'): 10.0, ('c1', 'storage'): 12.0}
    recv = types.SimpleNamespace(
        planes=('management', 'storage'),
        last_seen=lambda host, plane: seen.get((host, plane)))
    assert detection.heard_since(recv, 'c1', 11.0) == ['storage']
    assert detection.heard_since(recv, 'c1', 9.0) == ['management',
                                                      'storage']
    assert detection.heard_since(recv, 'c1', 12.0) == []
    assert detection.heard_since(recv, 'c1', 9.0, ['storage']) == [
        'storage']
    assert detection.heard_since(recv, 'c2', 0.0) == []
