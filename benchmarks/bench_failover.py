"""Evacuator failover benchmark on the simulated cloud (prints figures; not
a test).

1. Leader failover: kill -9 of the leading evacuator -> the standby has
   claimed the next journal epoch (from then on it acts), over >= 10 kills,
   with the embedded file:// backend and with Redis (when 127.0.0.1:6379
   answers). Goal <= 2 s.
2. Recovery of 20 instances on one host: power loss -> every instance ACTIVE
   on another host, without a kill and with the leader killed mid-recovery
   (1.0 s after the fault: fenced, evacuations starting).

Run: .venv/bin/python benchmarks/bench_failover.py [--kills 10] [--runs 2]
"""

import argparse
import datetime
import os
import re
import socket
import statistics
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from tests.functional import procs  # noqa: E402

LOCK = 'nova-ha-evacuator-leader'


def redis_up():
    try:
        socket.create_connection(('127.0.0.1', 6379), timeout=0.5).close()
        return True
    except OSError:
        return False


class Pair:
    def __init__(self, sim, workdir, backend_url=None):
        self.sim = sim
        self.lock = LOCK if backend_url is None else \
            'bench-%s' % uuid.uuid4().hex[:8]
        self.confs = []
        for i, src in enumerate(sim.state['evacuator_configs'], 1):
            text = open(src).read()
            if backend_url:
                text = re.sub(r'(?m)^backend_url = .*$',
                              'backend_url = %s\nlock_name = %s'
                              % (backend_url, self.lock), text)
            path = os.path.join(workdir, 'ev%d-%s.conf' % (
                i, 'redis' if backend_url else 'file'))
            with open(path, 'w') as f:
                f.write(text)
            os.chmod(path, 0o600)
            self.confs.append(path)
        self.procs = [None, None]
        self.j = procs.journal(self.confs[0])

    def start(self, i):
        self.procs[i] = procs.Evacuator(self.confs[i])

    def epoch(self):
        lead = self.j.get_leadership(self.lock)
        return lead.epoch if lead else 0

    def leader(self):
        lead = self.j.get_leadership(self.lock)
        if lead is None or not lead.holder:
            return None
        pid = int(lead.holder.rsplit('.', 1)[1])
        for i, p in enumerate(self.procs):
            if p is not None and p.proc.pid == pid and p.proc.poll() is None:
                return i
        return None

    def wait_leader(self):
        return procs.wait_for(lambda: (self.leader(),)
                              if self.leader() is not None else None,
                              60, interval=0.05, what='leader')[0]

    def stop(self):
        for p in self.procs:
            if p is not None:
                p.stop()
        self.j.close()


def failovers(sim, workdir, kills, backend_url=None):
    pair = Pair(sim, workdir, backend_url)
    times = []
    try:
        pair.start(0)
        pair.start(1)
        time.sleep(4.0)                 # both up and hearing every agent
        for _ in range(kills):
            leader = pair.wait_leader()
            before = pair.epoch()
            t0 = time.monotonic()
            pair.procs[leader].kill()
            procs.wait_for(lambda: pair.epoch() > before, 10, interval=0.005,
                           what='takeover')
            times.append(time.monotonic() - t0)
            pair.start(leader)          # back as the standby
            time.sleep(3.0)
    finally:
        pair.stop()
    return times


def recovery(sim, workdir, host, kill_after, name):
    pair = Pair(sim, workdir)
    try:
        pair.start(0)
        pair.start(1)
        time.sleep(4.0)
        from tests.functional import test_evacuator_ha as ha
        # A host the starved sim let fall silent past its window may have
        # been recovered for real: return it first.
        ha.settle(sim, pair.j, sorted(sim.state['hosts']))
        procs.boot(sim, name, count=20, host=host, timeout=120)
        known = {r.id for r in pair.j.list_recoveries(host=host)}
        leader = pair.wait_leader()
        t0 = time.monotonic()
        sim.inject(host, 'power_loss')
        if kill_after is not None:
            time.sleep(kill_after)
            pair.procs[leader].kill()

        def done():
            closed = [r for r in pair.j.list_recoveries(host=host)
                      if r.id not in known and r.state != 'open']
            return closed and closed[0]
        rec = procs.wait_for(done, 180, interval=0.05, what='recovery')
        elapsed = time.monotonic() - t0
        servers = [s for s in sim.nova.servers.list()
                   if s.name.startswith(name)]
        ok = all(s.status == 'ACTIVE' and
                 getattr(s, 'OS-EXT-SRV-ATTR:host') != host
                 for s in servers) and len(servers) == 20
        from nova_ha.evacuator import engine
        from nova_ha import nova_ops
        from tests.functional import test_evacuator_ha as ha
        # Repair: power on, nova-compute reporting again, then enable.
        since = datetime.datetime.now(datetime.timezone.utc)
        sim.heal(host)
        procs.wait_for(lambda: ha.compute_reported_since(sim, host, since),
                       60, interval=0.5, what='nova-compute reporting')
        procs.wait_for(lambda: _enable(engine, nova_ops, sim, pair.j, host),
                       30, interval=0.5, what='enable')
        for s in servers:
            s.delete()
        procs.wait_for(lambda: not [s for s in sim.nova.servers.list()
                                    if s.name.startswith(name)], 60,
                       what='deleted')
        return elapsed, rec.state == 'done' and ok
    finally:
        pair.stop()


def _enable(engine, nova_ops, sim, j, host):
    try:
        engine.enable_host(nova_ops.NovaOps(sim.nova), j, host)
        return True
    except engine.HostBusy:
        return False


def row(label, values, goal):
    return '%-44s %5d %7.2f %7.2f %7.2f   %s' % (
        label, len(values), statistics.median(values), max(values),
        statistics.mean(values), goal)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--kills', type=int, default=10)
    parser.add_argument('--runs', type=int, default=2)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix='bench-failover-')
    sim = procs.Sim(os.path.join(workdir, 'sim'), hosts=6, racks=3, sal=1,
                    evacuators=2)
    rows = []
    try:
        t = failovers(sim, workdir, args.kills)
        rows.append(row('leader failover, file:// (s)', t, '<= 2 s'))
        print(rows[-1], flush=True)
        if redis_up():
            t = failovers(sim, workdir, args.kills,
                          backend_url='redis://127.0.0.1:6379')
            rows.append(row('leader failover, redis lock_ttl=1 (s)', t,
                            '<= 2 s'))
            print(rows[-1], flush=True)
        else:
            rows.append('leader failover, redis: skipped (no Redis on '
                        '127.0.0.1:6379)')
        hosts = ['compute01', 'compute03', 'compute02', 'compute04']
        base, killed, bad = [], [], 0
        for i in range(args.runs):
            e, ok = recovery(sim, workdir, hosts[(2 * i) % 4], None,
                             'b%d' % i)
            base.append(e)
            bad += not ok
            e, ok = recovery(sim, workdir, hosts[(2 * i + 1) % 4], 1.0,
                             'k%d' % i)
            killed.append(e)
            bad += not ok
        rows.append(row('20 instances ACTIVE elsewhere, no kill (s)', base,
                        '<= 5 s'))
        rows.append(row('20 instances, leader killed at +1.0 s (s)', killed,
                        '<= 5 s + takeover'))
    finally:
        sim.stop()
    print()
    print('%-44s %5s %7s %7s %7s   %s' % ('measure', 'n', 'p50', 'max',
                                         'mean', 'goal'))
    for r in rows:
        print(r)
    print('recoveries not ending with all 20 ACTIVE elsewhere: %d' % bad)


if __name__ == '__main__':
    main()
