"""Fence latency per driver on loopback: command to power-off confirmed.

Each run powers the host on (not timed), then times ``Fencer.fence(host)``
-- the power-off request plus the power-state polls until it reads off --
and checks the outcome is FENCED. Prints p50/p99/max per driver as a
table. Goal: ipmi and redfish (emulator without delay) p99 <= 0.3 s.

Back ends (all real protocols on 127.0.0.1, started here):
  ipmi     virtual BMC (pyghmi IPMI 2.0 server), both cipher behaviours;
           the driver runs ipmitool
  redfish  sushy-tools emulator, fake driver, power changes applied at
           once, HTTP basic auth; "cold" builds a new Fencer (new sushy
           connection) per run, as the evacuator's first fence of a host
           does; "warm" reuses it
  ironic   standalone Ironic (noauth, SQLite): fake-hardware node; and the
           ipmi hardware type driving a virtual BMC through Ironic's
           conductor (few runs: each power change takes ~2-3 s by design)

Usage: python benchmarks/bench_fencing.py [--runs 50] [--ironic-runs 20]
       [--ironic-ipmi-runs 5] [--no-ironic]
"""

import argparse
import math
import os
import shutil
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from nova_ha.fencing import fencer as fencer_mod  # noqa: E402
from nova_ha.fencing import inventory  # noqa: E402
from nova_ha.fencing import testing  # noqa: E402
from nova_ha.fencing.base import Outcome  # noqa: E402
from nova_ha.sim.vbmc import VBMCProcess  # noqa: E402

USER = 'admin'
PASSWORD = 'bench-Pa55'
GOAL = 0.3
PARAMS = fencer_mod.FenceParams(command_timeout=2.0, power_off_timeout=10.0,
                                fence_timeout=20.0, poll_interval=0.02,
                                retries=2)


def pct(values, p):
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, math.ceil(p / 100.0 * len(s)) - 1)]


def make_fencer(hosts, ironic=None, params=PARAMS):
    data = {'hosts': hosts}
    if ironic:
        data['ironic'] = ironic
    return fencer_mod.Fencer(inventory.parse(data), params)


def measure(runs, get_fencer, host='compute-1'):
    times = []
    for _ in range(runs):
        f = get_fencer()
        on = f.power_on(host)
        if on.power_state != 'on':
            raise RuntimeError('power on failed: %s' % on.reason)
        f = get_fencer()
        start = time.perf_counter()
        r = f.fence(host)
        took = time.perf_counter() - start
        if r.outcome is not Outcome.FENCED:
            raise RuntimeError('fence of %s: %s: %s' % (host, r.outcome,
                                                        r.reason))
        times.append(took)
    return times


def bench_ipmi(runs, rows):
    if not shutil.which('ipmitool'):
        rows.append(('ipmi', 'skipped: ipmitool not installed', []))
        return
    for ciphers in ('sha1-strict', 'sha1-lenient'):
        port = testing.free_port(socket.SOCK_DGRAM)
        bmc = VBMCProcess(port, USER, PASSWORD, ciphers=ciphers).start()
        try:
            f = make_fencer({'compute-1': {
                'driver': 'ipmi', 'address': '127.0.0.1', 'port': port,
                'username': USER, 'password': PASSWORD}})
            rows.append(('ipmi', 'vBMC %s (ipmitool)' % ciphers,
                         measure(runs, lambda: f)))
        finally:
            bmc.stop()


def bench_redfish(runs, rows):
    sid = testing.new_uuid()
    emu = testing.SushyEmulator([(sid, 'bench', 'On')], power_delay=0,
                                username=USER, password=PASSWORD).start()
    try:
        hosts = {'compute-1': {'driver': 'redfish', 'address': emu.url,
                               'username': USER, 'password': PASSWORD,
                               'system_id': sid}}
        rows.append(('redfish', 'sushy-tools, no delay, cold connection',
                     measure(runs, lambda: make_fencer(hosts))))
        warm = make_fencer(hosts)
        rows.append(('redfish', 'sushy-tools, no delay, warm connection',
                     measure(runs, lambda: warm)))
    finally:
        emu.stop()


def bench_ironic(runs, ipmi_runs, rows):
    why = testing.IronicStandalone.available()
    if why:
        rows.append(('ironic', 'skipped: %s' % why, []))
        return
    svc = testing.IronicStandalone().start()
    bmc = None
    try:
        client = svc.client()
        client.node.create(driver='fake-hardware', name='compute-1')
        ironic = {'auth_type': 'none', 'endpoint': svc.endpoint}
        f = make_fencer({'compute-1': {'driver': 'ironic'}}, ironic)
        rows.append(('ironic', 'standalone, fake-hardware node',
                     measure(runs, lambda: f)))
        if ipmi_runs and shutil.which('ipmitool'):
            port = testing.free_port(socket.SOCK_DGRAM)
            bmc = VBMCProcess(port, USER, PASSWORD).start()
            client.node.create(driver='ipmi', name='compute-2', driver_info={
                'ipmi_address': '127.0.0.1', 'ipmi_port': port,
                'ipmi_username': USER, 'ipmi_password': PASSWORD})
            f2 = make_fencer({'compute-2': {'driver': 'ironic'}}, ironic,
                             params=fencer_mod.FenceParams(
                                 power_off_timeout=20, fence_timeout=30,
                                 poll_interval=0.1))
            rows.append(('ironic', 'standalone, ipmi hw type -> vBMC',
                         measure(ipmi_runs, lambda: f2, 'compute-2')))
    finally:
        if bmc:
            bmc.stop()
        svc.stop()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--runs', type=int, default=50,
                    help='runs per ipmi/redfish row (>= 20)')
    ap.add_argument('--ironic-runs', type=int, default=20)
    ap.add_argument('--ironic-ipmi-runs', type=int, default=5)
    ap.add_argument('--no-ironic', action='store_true')
    args = ap.parse_args(argv)
    rows = []
    bench_ipmi(args.runs, rows)
    bench_redfish(args.runs, rows)
    if not args.no_ironic:
        bench_ironic(args.ironic_runs, args.ironic_ipmi_runs, rows)

    print('Fence latency, command to power-off confirmed (loopback, %d '
          'cores)' % os.cpu_count())
    head = '%-8s %-40s %5s %8s %8s %8s  %s' % (
        'driver', 'back end', 'runs', 'p50 s', 'p99 s', 'max s',
        'goal p99 <= %.1f s' % GOAL)
    print(head)
    print('-' * len(head))
    failed = False
    for driver, backend, times in rows:
        if not times:
            print('%-8s %-40s' % (driver, backend))
            continue
        p99 = pct(times, 99)
        goal = ''
        if driver in ('ipmi', 'redfish'):
            ok = p99 <= GOAL
            failed |= not ok
            goal = 'met' if ok else 'MISSED'
        print('%-8s %-40s %5d %8.3f %8.3f %8.3f  %s' % (
            driver, backend, len(times), statistics.median(times), p99,
            max(times), goal))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
