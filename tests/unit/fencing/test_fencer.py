"""fence(): the decision logic, with a scripted driver and a fake clock.

The drivers themselves are tested against real protocols in
tests/functional/fencing; here every path of the algorithm is driven
exactly: FENCED only after a read of "off", retries and back-off bounded,
timeouts respected, wrong credentials not retried, operator confirmation.
"""

import json
import logging
import random

import pytest

from nova_ha.fencing import base
from nova_ha.fencing import fencer as fencer_mod
from nova_ha.fencing import inventory
from nova_ha.fencing.base import Outcome

PW = 'Unit-Secret-42'


class Clock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, s):
        self.sleeps.append(round(s, 6))
        self.now += s


class Script:
    """What the fake BMC does; each attribute a list consumed per call
    (last value repeats) or a callable."""

    def __init__(self, off=None, state=None, latency=0.01):
        self.off = off or [None]
        self.state = state or ['off']
        self.latency = latency
        self.calls = []


class FakeDriver(base.FenceDriver):
    name = 'fake'
    capabilities = frozenset([base.CAP_POWER_STATE, base.CAP_POWER_OFF,
                              base.CAP_POWER_ON])
    fields = frozenset()
    script = None
    clock = None

    @classmethod
    def validate(cls, entry):
        pass

    def _step(self, what, seq, timeout):
        s = self.script
        s.calls.append((what, round(self.clock.now, 6), timeout))
        idx = sum(1 for c in s.calls if c[0] == what) - 1
        item = seq[min(idx, len(seq) - 1)]
        if isinstance(item, base.BMCUnreachable):
            self.clock.now += timeout
            raise type(item)(item.reason)
        self.clock.now += s.latency
        if isinstance(item, Exception):
            raise item
        return item

    def get_power_state(self, timeout):
        return self._step('state', self.script.state, timeout)

    def power_off(self, timeout):
        self._step('off', self.script.off, timeout)

    def power_on(self, timeout):
        self.script.state = ['on']


def make(script, clock=None, **params):
    clock = clock or Clock()
    FakeDriver.script = script
    FakeDriver.clock = clock
    inv = inventory.parse(
        {'hosts': {'compute-1.example.org': {
            'driver': 'fake', 'address': '10.0.0.1', 'username': 'u',
            'password': PW}}}, drivers={'fake': FakeDriver})
    p = dict(command_timeout=1.0, power_off_timeout=5.0, fence_timeout=30.0,
             poll_interval=0.1, retries=2, retry_backoff=0.5,
             retry_backoff_max=4.0)
    p.update(params)
    records = []
    f = fencer_mod.Fencer(inv, fencer_mod.FenceParams(**p),
                          recorder=records.append, clock=clock,
                          sleep=clock.sleep)
    return f, clock, records


def test_off_then_reads_off_is_fenced():
    s = Script(state=['off'])
    f, clock, records = make(s)
    r = f.fence('compute-1')
    assert r.outcome is Outcome.FENCED and r.fenced
    assert r.attempts == 1 and r.power_state == 'off'
    assert [c[0] for c in s.calls] == ['off', 'state']
    assert records == [r]
    assert r.driver == 'fake' and r.started_at


def test_slow_bmc_polls_until_off():
    s = Script(state=['on'] * 20 + ['off'])
    f, clock, _ = make(s)
    r = f.fence('compute-1')
    assert r.outcome is Outcome.FENCED
    assert r.attempts == 1
    assert sum(1 for c in s.calls if c[0] == 'state') == 21
    assert set(clock.sleeps) == {0.1}


def test_accepts_off_but_stays_on_is_failed_never_fenced():
    s = Script(state=['on'])
    f, clock, _ = make(s, power_off_timeout=1.0, retries=2)
    r = f.fence('compute-1')
    assert r.outcome is Outcome.FAILED
    assert 'still reads on' in r.reason
    assert r.attempts == 3
    assert sum(1 for c in s.calls if c[0] == 'off') == 3
    # back-off between attempts: 0.5 then 1.0
    assert [x for x in clock.sleeps if x != 0.1] == [0.5, 1.0]


def test_wrong_credentials_fail_at_once_without_retry():
    s = Script(off=[base.BMCAuthError('refused the credentials of user u')])
    f, clock, _ = make(s)
    r = f.fence('compute-1')
    assert r.outcome is Outcome.FAILED
    assert 'credentials' in r.reason
    assert r.attempts == 1 and len(s.calls) == 1
    assert clock.sleeps == []


def test_config_error_is_not_retried():
    s = Script(off=[base.BMCConfigError('TLS certificate verification '
                                        'failed')])
    f, _, _ = make(s)
    r = f.fence('compute-1')
    assert r.outcome is Outcome.FAILED and r.attempts == 1


def test_unreachable_within_fence_timeout():
    s = Script(off=[base.BMCUnreachable('no answer')])
    f, clock, _ = make(s, command_timeout=1.0, fence_timeout=3.0,
                       retries=5, retry_backoff=0.5)
    start = clock.now
    r = f.fence('compute-1')
    assert r.outcome is Outcome.UNREACHABLE
    assert clock.now - start <= 3.0
    assert r.elapsed <= 3.0
    # It did not waste time reading the state of a silent BMC.
    assert all(c[0] == 'off' for c in s.calls)
    # No call was given more time than was left.
    for what, at, timeout in s.calls:
        assert at + timeout <= start + 3.0 + 1e-9


def test_unreachable_retries_are_bounded():
    s = Script(off=[base.BMCUnreachable('no answer')])
    f, clock, _ = make(s, command_timeout=0.2, fence_timeout=60, retries=3,
                       retry_backoff=1.0, retry_backoff_max=1.5)
    r = f.fence('compute-1')
    assert r.outcome is Outcome.UNREACHABLE
    assert r.attempts == 4
    assert clock.sleeps == [1.0, 1.5, 1.5]     # doubling, capped


def test_transient_failure_then_fenced():
    s = Script(off=[base.BMCUnreachable('lost packet'), None],
               state=['off'])
    f, clock, _ = make(s)
    r = f.fence('compute-1')
    assert r.outcome is Outcome.FENCED and r.attempts == 2


def test_refused_off_but_already_off_is_fenced():
    s = Script(off=[base.BMCError('HTTP 409 already off')], state=['off'])
    f, _, _ = make(s)
    r = f.fence('compute-1')
    assert r.outcome is Outcome.FENCED and r.attempts == 1


def test_refused_off_and_on_is_failed_with_bmc_reason():
    s = Script(off=[base.BMCError('HTTP 500 the BMC is busy')],
               state=['on'])
    f, _, _ = make(s, retries=1)
    r = f.fence('compute-1')
    assert r.outcome is Outcome.FAILED
    assert 'busy' in r.reason and r.attempts == 2


def test_bmc_goes_silent_after_accepting_off_is_failed():
    s = Script(state=[base.BMCUnreachable('no answer')])
    f, _, _ = make(s, power_off_timeout=1.0, retries=0)
    r = f.fence('compute-1')
    assert r.outcome is Outcome.FAILED
    assert 'no answer' in r.reason


def test_unexpected_driver_exception_is_failed_and_redacted():
    s = Script(off=[RuntimeError('boom with password %s inside' % PW)],
               state=['on'])
    f, _, _ = make(s, retries=0)
    r = f.fence('compute-1')
    assert r.outcome is Outcome.FAILED
    assert 'RuntimeError' in r.reason and PW not in r.reason


def test_host_not_in_inventory_is_failed():
    f, _, records = make(Script())
    r = f.fence('compute-9')
    assert r.outcome is Outcome.FAILED
    assert 'compute-9' in r.reason and r.attempts == 0
    assert records == [r]


def test_recorder_failure_does_not_change_outcome(caplog):
    def broken(result):
        raise RuntimeError('journal down')
    f, _, _ = make(Script())
    f.recorder = broken
    assert f.fence('compute-1').outcome is Outcome.FENCED
    assert 'recorder failed' in caplog.text


@pytest.mark.parametrize('seed', range(40))
def test_never_fenced_without_reading_off(seed):
    """Random BMC misbehaviour: unless a read returned "off", the outcome
    is never FENCED; and fence() always ends within fence_timeout."""
    rnd = random.Random(seed)
    errors = [None, base.BMCError('refused'),
              base.BMCUnreachable('silent'), base.BMCError('garbled')]
    s = Script(off=[rnd.choice(errors) for _ in range(8)],
               state=[rnd.choice(['on', base.BMCError('x'),
                                  base.BMCUnreachable('y')])
                      for _ in range(50)],
               latency=rnd.choice([0.001, 0.05, 0.3]))
    f, clock, _ = make(s, command_timeout=rnd.choice([0.2, 1.0]),
                       power_off_timeout=rnd.choice([0.5, 2.0]),
                       fence_timeout=rnd.choice([2.0, 5.0]),
                       retries=rnd.randint(0, 4))
    start = clock.now
    r = f.fence('compute-1')
    assert r.outcome is not Outcome.FENCED
    assert clock.now - start <= f.params.fence_timeout + s.latency + 1e-6


def test_status_and_power_on():
    s = Script(state=['off'])
    f, _, _ = make(s)
    st = f.status('compute-1')
    assert st.power_state == 'off' and st.outcome is Outcome.FENCED
    st = f.power_on('compute-1')
    assert st.power_state == 'on' and st.outcome is Outcome.FENCED


def test_status_error():
    s = Script(state=[base.BMCAuthError('refused')])
    f, _, _ = make(s)
    st = f.status('compute-1')
    assert st.power_state is None and st.outcome is Outcome.FAILED


def test_missing_tool_reported_when_fencer_is_built():
    from nova_ha.fencing.drivers import ipmi
    inv = inventory.parse({'hosts': {'c1': {
        'driver': 'ipmi', 'address': '10.0.0.1', 'username': 'u',
        'password': PW}}})
    with pytest.raises(base.InventoryError) as ei:
        fencer_mod.Fencer(inv, fencer_mod.FenceParams(
            ipmitool_path='/nonexistent/ipmitool'))
    assert ei.value.host == 'c1' and ei.value.field == 'driver'
    assert 'ipmitool' in str(ei.value)
    assert ipmi.IPMIDriver.name == 'ipmi'


# -- operator confirmation ---------------------------------------------

def test_confirm_records_who_and_when(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    f, _, _ = make(Script())
    rec = fencer_mod.FileRecorder(str(tmp_path / 'sub' / 'confirm.jsonl'))
    r = fencer_mod.confirm('compute-1', 'alice', rec, inventory=f.inventory,
                           reason='BMC dead; PDU outlet 7 off')
    assert r.outcome is Outcome.FENCED and r.kind == 'confirm'
    assert r.host == 'compute-1'                   # as given (Nova's name)
    assert r.inventory_host == 'compute-1.example.org'
    assert r.confirmed_by == 'alice' and r.started_at
    lines = (tmp_path / 'sub' / 'confirm.jsonl').read_text().splitlines()
    got = json.loads(lines[0])
    assert got['confirmed_by'] == 'alice' and got['outcome'] == 'FENCED'
    assert got['started_at'] == r.started_at
    assert 'PDU outlet 7' in got['reason']
    assert rec.records(host='compute-1', kind='confirm')
    assert 'alice' in caplog.text


def test_confirm_refuses_without_operator_or_recorder():
    with pytest.raises(ValueError, match='operator'):
        fencer_mod.confirm('c1', ' ', lambda r: None)
    with pytest.raises(ValueError, match='recorder'):
        fencer_mod.confirm('c1', 'bob', None)


def test_confirm_unknown_host_and_failing_recorder():
    f, _, _ = make(Script())
    with pytest.raises(base.HostNotFound):
        fencer_mod.confirm('compute-9', 'bob', lambda r: None,
                           inventory=f.inventory)

    def broken(result):
        raise OSError('disk full')
    with pytest.raises(OSError):
        fencer_mod.confirm('compute-1', 'bob', broken)


def test_journal_recorder(tmp_path):
    journal_api = pytest.importorskip('nova_ha.journal.api')
    from nova_ha.journal import migrations
    j = journal_api.Journal('sqlite:///%s' % (tmp_path / 'j.sqlite'))
    migrations.upgrade(j.engine)
    rec = fencer_mod.JournalRecorder(j)
    fencer_mod.confirm('compute-1', 'alice', rec, reason='checked at rack')
    f, _, _ = make(Script())
    f.recorder = rec
    f.fence('compute-1')
    attempts = {a.outcome: a for a in
                j.list_fencing_attempts(host='compute-1')}
    assert attempts['CONFIRMED_BY_OPERATOR'].operator == 'alice'
    assert attempts['CONFIRMED_BY_OPERATOR'].driver == 'manual'
    assert 'checked at rack' in attempts['CONFIRMED_BY_OPERATOR'].reason
    assert attempts['FENCED'].driver == 'fake'
    assert attempts['FENCED'].finished_at is not None


def test_power_action_failed_ends_the_wait_and_is_the_reason():
    s = Script(state=['on', base.PowerActionFailed('power off failed: '
                                                   'IPMI call failed')])
    f, clock, _ = make(s, power_off_timeout=30.0, retries=0)
    start = clock.now
    r = f.fence('compute-1')
    assert r.outcome is Outcome.FAILED
    assert 'IPMI call failed' in r.reason
    assert clock.now - start < 1.0        # did not wait power_off_timeout


def test_still_on_reason_keeps_the_last_bmc_error():
    s = Script(state=[base.BMCError('sensor read glitch'), 'on'])
    f, _, _ = make(s, power_off_timeout=0.5, retries=0)
    r = f.fence('compute-1')
    assert r.outcome is Outcome.FAILED
    assert 'still reads on' in r.reason and 'sensor read glitch' in r.reason


def test_connection_kept_on_bmc_error_dropped_when_silent():
    s = Script(off=[base.BMCError('busy'), base.BMCUnreachable('silent'),
                    None], state=['on', 'on', 'off'])
    f, _, _ = make(s, retries=3, power_off_timeout=0.05)
    seen = []
    orig = FakeDriver.__init__

    def init(self, *a, **kw):
        seen.append(self)
        orig(self, *a, **kw)
    FakeDriver.__init__ = init
    try:
        r = f.fence('compute-1')
    finally:
        FakeDriver.__init__ = orig
    assert r.outcome is Outcome.FENCED
    assert len(seen) == 2      # first one dropped only after 'silent'


def test_journal_recorder_leaves_an_attempt_in_flight_alone(tmp_path):
    journal_api = pytest.importorskip('nova_ha.journal.api')
    from nova_ha.journal import migrations
    j = journal_api.Journal('sqlite:///%s' % (tmp_path / 'j.sqlite'))
    migrations.upgrade(j.engine)
    theirs = j.start_fencing('compute-1', 'ipmi')     # the evacuator's
    f, _, _ = make(Script())
    f.recorder = fencer_mod.JournalRecorder(j)
    assert f.fence('compute-1').fenced
    got = j.list_fencing_attempts(host='compute-1')
    assert [a.id for a in got] == [theirs.id]
    assert got[0].finished_at is None                 # still theirs
