"""Secrets never appear in logs, errors, reprs, CLI output or --help.

Every log record of every logger, at DEBUG, is captured while fences fail
(wrong password, BMC that ignores off, silent BMC, TLS refused, Ironic
behind HTTP basic auth) and searched for the password -- and for its
base64 form inside ``user:password``, as an Authorization header would
carry it. The CLI's output and --help are checked in test_cli.py.
"""

import base64
import io
import logging

import pytest

from nova_ha.fencing.base import Outcome
from tests.functional.fencing.conftest import ipmi_entry
from tests.functional.fencing.conftest import make_fencer
from tests.functional.fencing.conftest import PASSWORD
from tests.functional.fencing.conftest import USER


def forms(password, user=USER):
    return [password, base64.b64encode(
        ('%s:%s' % (user, password)).encode()).decode()]


@pytest.fixture
def all_logs():
    """Every record of every logger at DEBUG (and warnings) as text."""
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter(
        '%(name)s %(levelname)s %(message)s'))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    logging.captureWarnings(True)
    disabled = {}
    for name, lg in logging.root.manager.loggerDict.items():
        if isinstance(lg, logging.Logger):
            disabled[name] = (lg.disabled, lg.level)
            lg.disabled = False
            lg.setLevel(logging.NOTSET)
    try:
        yield buf
    finally:
        logging.captureWarnings(False)
        root.removeHandler(handler)
        root.setLevel(old_level)
        for name, (dis, lvl) in disabled.items():
            lg = logging.getLogger(name)
            lg.disabled, lg.level = dis, lvl


def assert_clean(text, *secrets):
    for s in secrets:
        for form in forms(s):
            assert form not in text, 'secret leaked: ...%s...' % text[
                max(0, text.find(form) - 200):text.find(form) + 50]


def test_failing_ipmi_fences_log_no_password(vbmc, all_logs):
    wrong = 'Wr0ng-Pa55-Qq77'
    good = vbmc()
    deaf = vbmc(ignore_off=True)
    silent = vbmc()
    f = make_fencer({'c-wrong': ipmi_entry(good, password=wrong),
                     'c-deaf': ipmi_entry(deaf),
                     'c-silent': ipmi_entry(silent)},
                    command_timeout=3.0, power_off_timeout=0.3,
                    fence_timeout=4.0, retries=0)
    silent.pause()
    try:
        results = [f.fence(h) for h in ('c-wrong', 'c-deaf', 'c-silent')]
        statuses = [f.status(h) for h in ('c-wrong', 'c-silent')]
    finally:
        silent.resume()
    assert [r.outcome for r in results] == [
        Outcome.FAILED, Outcome.FAILED, Outcome.UNREACHABLE]
    logs = all_logs.getvalue()
    assert 'c-wrong' in logs and 'FAILED' in logs    # it did log
    everything = (logs + repr(results) + repr(statuses)
                  + repr(f.inventory.ironic))
    everything += ''.join(repr(e) + str(e.__dict__) for e in f.inventory)
    everything += ''.join(repr(d) for d in f._drivers.values())
    assert_clean(everything, PASSWORD, wrong)


def test_failing_redfish_fences_log_no_password(sushy_fast, sushy_tls,
                                                all_logs):
    wrong = 'Wr0ng-Redfish-Zz11'
    sid = sushy_fast.take()
    tls_entry = sushy_tls.entry(sushy_tls.ids[0])
    del tls_entry['verify_tls']
    f = make_fencer({'c-wrong': sushy_fast.entry(sid, password=wrong),
                     'c-tls': tls_entry,
                     'c-404': sushy_fast.entry('nope')}, retries=1)
    results = [f.fence(h) for h in ('c-wrong', 'c-tls', 'c-404')]
    assert [r.outcome for r in results] == [Outcome.FAILED] * 3
    logs = all_logs.getvalue()
    assert 'HTTP request' in logs or 'urllib3' in logs   # DEBUG captured
    assert_clean(logs + repr(results), PASSWORD, wrong)


def test_failing_ironic_fence_logs_no_password(ironic_service, all_logs):
    secret = 'Ironic-Basic-Pw-991'
    f = make_fencer({'c1': {'driver': 'ironic', 'node': 'no-such-node'}},
                    ironic={'auth_type': 'http_basic',
                            'endpoint': ironic_service.endpoint,
                            'username': USER, 'password': secret},
                    retries=0)
    r = f.fence('c1')
    assert r.outcome is Outcome.FAILED
    logs = all_logs.getvalue()
    assert 'REQ' in logs or 'GET' in logs      # keystoneauth DEBUG captured
    assert_clean(logs + repr(r) + repr(f.inventory.ironic), secret)
