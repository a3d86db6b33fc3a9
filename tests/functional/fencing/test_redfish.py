"""Redfish driver against sushy-tools' emulator (fake driver), real HTTP(S)
on 127.0.0.1."""

import time

import pytest

from nova_ha.fencing.base import Outcome
from nova_ha.fencing import testing
from tests.functional.fencing.conftest import make_fencer
from tests.functional.fencing.conftest import PASSWORD
from tests.functional.fencing.conftest import USER


def test_off_confirmed_fast(sushy_fast):
    sid = sushy_fast.take()
    f = make_fencer({'compute-1.example.org': sushy_fast.entry(sid)})
    assert f.status('compute-1').power_state == 'on'
    r = f.fence('compute-1')
    assert r.outcome is Outcome.FENCED, r.reason
    assert r.elapsed < 5.0 and r.attempts == 1   # ~0.05 s idle; loaded CI
    assert f.status('compute-1').power_state == 'off'
    assert f.power_on('compute-1').power_state == 'on'


def test_system_id_forms(sushy_fast):
    sid = sushy_fast.take()
    f = make_fencer({'c1': sushy_fast.entry('/redfish/v1/Systems/%s' % sid),
                     'c2': sushy_fast.entry(sushy_fast.take(),
                                            address='127.0.0.1',
                                            port=sushy_fast.emu.port)})
    assert f.fence('c1').outcome is Outcome.FENCED
    # address + port without a scheme means https: this emulator is http
    r = f.fence('c2')
    assert r.outcome is not Outcome.FENCED


def test_unknown_system_is_failed_at_once(sushy_fast):
    r = make_fencer({'c1': sushy_fast.entry('no-such-system')}).fence('c1')
    assert r.outcome is Outcome.FAILED
    assert 'not found' in r.reason and 'system_id' in r.reason
    assert r.attempts == 1


def test_default_system_needs_exactly_one(sushy_fast):
    entry = sushy_fast.entry(None)
    del entry['system_id']
    r = make_fencer({'c1': entry}).fence('c1')     # 40 systems here
    assert r.outcome is Outcome.FAILED and 'system_id' in r.reason


def test_wrong_password_fails_fast(sushy_fast):
    sid = sushy_fast.take()
    f = make_fencer({'c1': sushy_fast.entry(sid, password='wrong-one')})
    start = time.monotonic()
    r = f.fence('c1')
    assert r.outcome is Outcome.FAILED
    assert time.monotonic() - start < 5.0 and r.attempts == 1
    assert 'refused the credentials' in r.reason and '401' in r.reason
    ok = make_fencer({'c1': sushy_fast.entry(sid)})
    assert ok.status('c1').power_state == 'on'


def test_session_auth(sushy_fast):
    sid = sushy_fast.take()
    r = make_fencer({'c1': sushy_fast.entry(sid, auth='session')}
                    ).fence('c1')
    # The emulator has no SessionService behind basic auth; whatever the
    # outcome, it is definite, and FENCED only if power reads off.
    if r.outcome is Outcome.FENCED:
        assert r.power_state == 'off'


def test_emulator_not_answering_is_unreachable():
    sid = testing.new_uuid()
    emu = testing.SushyEmulator([(sid, 's', 'On')], power_delay=0,
                                username=USER, password=PASSWORD).start()
    try:
        f = make_fencer({'c1': {
            'driver': 'redfish', 'address': emu.url, 'username': USER,
            'password': PASSWORD, 'system_id': sid}},
            command_timeout=0.5, fence_timeout=2.0, retries=5)
        emu.pause()
        start = time.monotonic()
        r = f.fence('c1')
        took = time.monotonic() - start
        emu.resume()
    finally:
        emu.stop()
    assert r.outcome is Outcome.UNREACHABLE, r.reason
    assert took <= 2.0 + 0.5


def test_nothing_listening_is_unreachable():
    port = testing.free_port()
    r = make_fencer({'c1': {
        'driver': 'redfish', 'address': 'http://127.0.0.1:%d' % port,
        'username': USER, 'password': PASSWORD}},
        command_timeout=0.5, fence_timeout=1.5).fence('c1')
    assert r.outcome is Outcome.UNREACHABLE


def test_slow_power_change_is_fenced(sushy_random_delay):
    """The emulator's own behaviour: ForceOff applies 1-11 s later."""
    sid = sushy_random_delay.take()
    f = make_fencer({'c1': sushy_random_delay.entry(sid)},
                    power_off_timeout=14.0, fence_timeout=15.0,
                    poll_interval=0.2)
    r = f.fence('c1')
    assert r.outcome is Outcome.FENCED, r.reason
    assert r.attempts == 1


def test_power_change_slower_than_timeout_is_never_fenced(
        sushy_fixed_delay):
    sid = sushy_fixed_delay.take()
    f = make_fencer({'c1': sushy_fixed_delay.entry(sid)},
                    power_off_timeout=0.8, retries=1, fence_timeout=3.0)
    r = f.fence('c1')
    assert r.outcome is Outcome.FAILED
    assert 'still reads on' in r.reason
    assert r.power_state == 'on'


def test_tls_verified_by_default(sushy_tls):
    sid = sushy_tls.take()
    entry = sushy_tls.entry(sid)
    del entry['verify_tls']
    f = make_fencer({'c1': entry})
    r = f.fence('c1')
    assert r.outcome is Outcome.FAILED
    assert r.attempts == 1          # not retried: a config problem
    assert 'TLS certificate verification failed' in r.reason
    assert 'verify_tls' in r.reason


def test_tls_with_ca_file_and_without_verification(sushy_tls):
    sid = sushy_tls.ids[0]
    with_ca = make_fencer({'c1': sushy_tls.entry(
        sid, verify_tls=sushy_tls.emu.cert)})
    assert with_ca.status('c1').power_state in ('on', 'off')
    r = with_ca.fence('c1')
    assert r.outcome is Outcome.FENCED, r.reason
    no_verify = make_fencer({'c1': sushy_tls.entry(sid, verify_tls=False)})
    assert no_verify.power_on('c1').power_state == 'on'
    assert no_verify.fence('c1').outcome is Outcome.FENCED


@pytest.mark.parametrize('n', [5])
def test_repeated_fences_reuse_connection(sushy_fast, n):
    sid = sushy_fast.take()
    f = make_fencer({'c1': sushy_fast.entry(sid)})
    for _ in range(n):
        assert f.power_on('c1').power_state == 'on'
        assert f.fence('c1').outcome is Outcome.FENCED
