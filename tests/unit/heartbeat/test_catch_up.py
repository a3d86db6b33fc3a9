"""HeartbeatReceiver.catch_up(): the heartbeats queued in the kernel are
taken in the caller's thread (the evacuator, before judging silence and
right before a power-off), in order, with the receiver thread stalled or
running. Real UDP on 127.0.0.1."""

import os
import time

from nova_ha.heartbeat import agent as hb_agent
from nova_ha.heartbeat import protocol
from nova_ha.heartbeat import receiver as hb_receiver

KEY = os.urandom(32)
PLANES = ('management', 'storage')


def receiver(clock):
    return hb_receiver.HeartbeatReceiver(
        {p: [('127.0.0.1', 0)] for p in PLANES}, protocol.Keyring(KEY),
        max_clock_skew=2.0, default_window=0.6, clock=clock)


def test_queued_heartbeats_are_taken_by_the_caller():
    now = [100.0]
    r = receiver(lambda: now[0])
    r.bind()                    # no receiver thread: it is "stalled"
    agent = hb_agent.Agent('cmp1', r.addresses, KEY)
    try:
        for _ in range(3):
            agent.beat()
        time.sleep(0.05)
        now[0] = 101.0
        assert r.silent_planes('cmp1', now=now[0]) == list(PLANES)
        assert r.catch_up() == 6
        assert r.silent_planes('cmp1', now=now[0]) == []
        assert r.last_seen('cmp1', 'storage') == 101.0
        assert r.counters()['accepted'] == 6
        assert r.counters()['rejected']['replay'] == 0
        assert r.catch_up() == 0            # nothing left
    finally:
        agent.close()
        r.stop()


def test_catch_up_alongside_the_receiver_thread_sees_no_replays():
    r = receiver(time.monotonic).start()
    agent = hb_agent.Agent('cmp2', r.addresses, KEY)
    try:
        for _ in range(200):
            agent.beat()
            r.catch_up()
        deadline = time.monotonic() + 5
        while r.counters()['accepted'] < 400 and \
                time.monotonic() < deadline:
            r.catch_up()
            time.sleep(0.01)
        counters = r.counters()
        assert counters['accepted'] == 400, counters
        assert counters['rejected']['replay'] == 0, counters
    finally:
        agent.close()
        r.stop()
