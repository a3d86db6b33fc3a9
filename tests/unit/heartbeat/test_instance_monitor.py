"""InstanceMonitor on libvirt's test:///default driver (issue 17): event
classification, the failure table, the queue-overflow rescan. The real
libvirtd (kill -9 of qemu, libvirtd restart) is in
tests/functional/test_instance_ha.py."""

import threading
import time
import uuid as uuid_mod

import pytest

from nova_ha.heartbeat import instances
from nova_ha.heartbeat import protocol

libvirt = pytest.importorskip(
    'libvirt', reason='libvirt-python is not installed (test-requirements)')

XML = """<domain type='test'><name>%s</name><uuid>%s</uuid>
<memory>8192</memory><os><type>hvm</type></os></domain>"""


class Sink:
    def __init__(self):
        self.reports = []
        self.cond = threading.Condition()

    def __call__(self, reports):
        with self.cond:
            self.reports.extend(reports)
            self.cond.notify_all()

    def wait(self, pred, timeout=10):
        with self.cond:
            assert self.cond.wait_for(lambda: pred(self.reports), timeout), \
                self.reports


@pytest.fixture
def conn():
    c = libvirt.open('test:///default')
    made = []

    def define(name):
        u = str(uuid_mod.uuid4())
        d = c.defineXML(XML % (name, u))
        made.append(d)
        return u, d
    c.define = define
    yield c
    for d in made:
        try:
            if d.isActive():
                d.destroy()
            d.undefine()
        except libvirt.libvirtError:
            pass
    c.close()


def test_classification():
    assert instances.classify_event(5, 5) == ('crashed', 'failed')
    assert instances.classify_event(5, 1) == ('stopped', 'destroyed')
    assert instances.classify_event(3, 2) == ('paused_error', 'ioerror')
    assert instances.classify_event(3, 0) is None       # a user's pause
    assert instances.classify_event(5, 3) is None       # migrated away
    assert instances.classify_event(2, 0) == ('running', 'started')
    assert instances.classify_event(1, 0) == ('gone', 'undefined')
    assert instances.classify_state(5, 3) == ('crashed', 'crashed')
    assert instances.classify_state(5, 1) is None       # shut down
    assert instances.classify_state(1, 1)[0] == 'running'


def test_events_to_reports(conn):
    sink = Sink()
    mon = instances.InstanceMonitor('test:///default', on_reports=sink,
                                    check_interval=0.1)
    mon.start()
    try:
        assert mon.wait_connected(10)
        u, dom = conn.define('vm-a')
        dom.create()
        time.sleep(0.2)
        assert mon.failures() == []       # running: nothing to report
        dom.destroy()
        sink.wait(lambda r: any(x.uuid == u and x.kind == 'stopped'
                                for x in r))
        (f,) = mon.failures()
        assert (f.uuid, f.kind, f.reason) == (u, 'stopped', 'destroyed')
        dom.create()
        sink.wait(lambda r: r[-1].uuid == u and r[-1].kind == 'running')
        assert mon.failures() == []
    finally:
        mon.stop()


def test_queue_overflow_rescans_instead_of_blocking(conn):
    """The libvirt callback never blocks: past queue_max it drops events
    and flags a rescan, which rebuilds the table from the domains' states.
    """
    sink = Sink()
    mon = instances.InstanceMonitor('test:///default', on_reports=sink,
                                    queue_max=16)
    instances.ensure_event_loop()
    mon._connect()          # no monitor thread: nothing drains the queue
    try:
        doms = [conn.define('vm-%d' % i) for i in range(40)]
        for _, d in doms:
            d.create()
        # Every domain's defined and started events: 16 queued, the rest
        # dropped. Wait for all of them -- libvirt delivers them from its
        # event loop thread, and one arriving after the rescan below would
        # rightly be queued again (it is news the rescan may not have seen).
        sent = 2 * len(doms)
        deadline = time.monotonic() + 20
        while mon.counters['overflow'] + len(mon._queue) < sent and \
                time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(mon._queue) == 16
        assert mon.counters['overflow'] == sent - 16   # dropped, not blocked
        # A stale table entry the dropped events would have cleared:
        u0 = doms[0][0]
        mon._table[u0] = protocol.InstanceReport(u0, 'crashed', 'failed',
                                                 1.0)
        scans = mon.counters['scans']
        mon._process()
        assert mon.counters['scans'] == scans + 1
        assert len(mon._queue) == 0 and not mon._overflow
        # The rescan found it running: cleared and reported.
        assert mon.failures() == []
        assert [(r.uuid, r.kind) for r in sink.reports] == [(u0, 'running')]
    finally:
        mon._disconnect()


def test_missing_libvirt_is_a_clear_error(monkeypatch):
    import builtins
    real = builtins.__import__

    def no_libvirt(name, *a, **kw):
        if name == 'libvirt':
            raise ImportError(name)
        return real(name, *a, **kw)
    monkeypatch.setattr(builtins, '__import__', no_libvirt)
    with pytest.raises(instances.LibvirtUnavailable,
                       match='libvirt-python'):
        instances.require_libvirt()


def test_report_kinds_are_protocol_kinds():
    for kind, _ in instances.EVENT_MAP.values():
        assert kind in protocol.INSTANCE_KINDS
