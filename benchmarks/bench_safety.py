"""Safety benchmark on the simulated cloud (prints figures; not a test):
healthy hosts fenced after stalls and under CPU load, and what that safety
costs in detection time of a real failure, in the same run.

One ``nova-ha-sim`` (6 SAL1 hosts, 3 racks, real processes) and one
evacuator with the default configuration.

- stall rows: the evacuator SIGSTOPped for L s and the heartbeat agents
  for L + 0.5 s, then both resumed (a GC pause, a VM steal spike, an
  overloaded control node), ``--runs`` times per length; the issue's
  6.5 s / 7 s row ``--issue-runs`` times;
- load rows: ``N`` busy processes per core for ``--load-seconds`` s;
- in every row, ``--failures`` real failures (power loss of one host):
  detected, fenced and the host returned to service (power on, nova-
  compute reporting, ``nova-ha host enable``) before the next.

Columns: runs, healthy hosts fenced (must be 0 in every row), recoveries
opened for healthy hosts and stopped before any fence, SELF_CHECK /
MASS_FAILURE_GUARD alarms raised, real failures fenced / tried,
the longest detection (last heartbeat -> recovery opened) and the longest
last heartbeat -> power read off; the last lines: p50/p99 over all rows.

Run: .venv/bin/python benchmarks/bench_safety.py [--runs 2]
     [--issue-runs 10] [--stalls 1,2,...,10] [--loads 1,2]
     [--load-seconds 30] [--failures 1]
"""

import argparse
import datetime
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from nova_ha.sim import client as sim_client  # noqa: E402
from tests.functional import procs  # noqa: E402
from tests.functional import test_evacuator_safety as safety  # noqa: E402


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


class Bench:
    def __init__(self, workdir):
        self.sim = procs.Sim(os.path.join(workdir, 'sim'), hosts=6,
                             racks=3, sal=1)
        conf = os.path.join(workdir, 'ev.conf')
        with open(conf, 'w') as f:
            f.write(open(self.sim.state['evacuator_configs'][0]).read())
        os.chmod(conf, 0o600)
        self.ev = procs.Evacuator(conf).wait_running()
        self.j = procs.journal(conf)
        self.hosts = sorted(self.sim.state['hosts'])
        self.victim = 0
        self.settle()

    def close(self):
        self.j.close()
        self.ev.stop()
        self.sim.stop()

    def settle(self, timeout=240):
        """Every host OK, no recovery open (a host recovered for real is
        returned to service, as an operator would)."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.j.list_recoveries(states=['open']):
                for st in self.j.list_host_states(states=['RECOVERED']):
                    self.return_host(st.host)
                if safety.hosts_ok(self.ev, self.hosts):
                    return
            if time.monotonic() > deadline:
                raise AssertionError('not settled after %.0f s: %s' % (
                    timeout, [(s.host, s.state) for s in
                              self.j.list_host_states()]))
            time.sleep(0.2)

    def return_host(self, host):
        from tests.functional import test_evacuator_ha as ha
        ha.return_host(self.sim, self.j, host)

    def mark(self):
        return (max([a.id for a in self.j.list_fencing_attempts()] or [0]),
                max([r.id for r in self.j.list_recoveries()] or [0]),
                max([a.id for a in self.j.list_alarms(status='all')]
                    or [0]))

    def since(self, mark, victims=()):
        """What happened since ``mark`` to hosts other than ``victims``."""
        fenced = [a for a in self.j.list_fencing_attempts()
                  if a.id > mark[0] and a.host not in victims]
        recs = [r for r in self.j.list_recoveries()
                if r.id > mark[1] and r.host not in victims]
        alarms = [a for a in self.j.list_alarms(status='all')
                  if a.id > mark[2] and a.type in ('SELF_CHECK',
                                                   'MASS_FAILURE_GUARD')]
        return len({a.host for a in fenced}), len(recs), len(alarms)

    def stall(self, length):
        agents = safety.agent_pids(self.sim)
        safety.both_paused(self.ev.proc.pid, agents, ev_pause=length,
                           agents_pause=length + 0.5)
        time.sleep(4.0)
        self.settle()

    def real_failure(self):
        """Power loss of one host: (host, detection seconds, fenced
        seconds or None). Both from its last heartbeat."""
        host = self.hosts[self.victim % len(self.hosts)]
        self.victim += 1
        known = {r.id for r in self.j.list_recoveries(host=host)}
        sim_client.control(self.sim.state, 'POST', '/hosts/%s/faults'
                           % host, {'fault': 'power_loss'})

        def closed():
            recs = [r for r in self.j.list_recoveries(host=host)
                    if r.id not in known and r.state != 'open']
            return recs and recs[0]
        try:
            rec = procs.wait_for(closed, 120, interval=0.1,
                                 what='recovery of %s' % host)
        except AssertionError:
            rec = None
        detection, fenced = None, None
        if rec is not None:
            steps = {t.step: t.at for t in self.j.timeline(rec.id)}
            last = steps.get('last_heartbeat', rec.detected_at)
            detection = (rec.detected_at - last).total_seconds()
            if rec.fenced_at is not None:
                fenced = (rec.fenced_at - last).total_seconds()
        if fenced is None:
            self.sim.heal(host)
        self.settle()
        return host, detection, fenced


def busy(n):
    return [subprocess.Popen([sys.executable, '-c', 'while True: pass'])
            for _ in range(n)]


def stop_all(ps):
    for p in ps:
        p.send_signal(signal.SIGKILL)
    for p in ps:
        p.wait()


def pct(values, q):
    values = sorted(values)
    if not values:
        return float('nan')
    k = max(0, min(len(values) - 1, int(round(q / 100.0 * len(values)
                                                + 0.5)) - 1))
    return values[k]


HEADER = ('%-28s %4s %8s %9s %7s %7s %8s %8s' % (
    'row', 'runs', 'healthy', 'stopped', 'alarms', 'real', 'detected',
    'fenced') + '\n' + '%-28s %4s %8s %9s %7s %7s %8s %8s' % (
        '', '', 'fenced', 'recovers', '', 'fenced', 'max (s)', 'max (s)'))


def _max(values):
    return max(values) if values else float('nan')


def line(label, runs, counts, real, detections):
    return '%-28s %4d %8d %9d %7d %7s %8.2f %8.2f' % (
        label, runs, counts[0], counts[1], counts[2],
        '%d/%d' % (sum(1 for _, _, f in real if f is not None), len(real)),
        _max(detections), _max([f for _, _, f in real if f is not None]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--issue-runs', type=int, default=10)
    parser.add_argument('--stalls', default='1,2,3,4,5,6,7,8,9,10')
    parser.add_argument('--loads', default='1,2')
    parser.add_argument('--load-seconds', type=float, default=30.0)
    parser.add_argument('--failures', type=int, default=1)
    args = parser.parse_args()
    stalls = [float(s) for s in args.stalls.split(',') if s]
    loads = [int(s) for s in args.loads.split(',') if s]
    cores = os.cpu_count() or 1
    workdir = tempfile.mkdtemp(prefix='bench-safety-')
    bench = Bench(workdir)
    all_detections = []
    all_fenced = []
    total_fenced = 0
    print('6 SAL1 hosts (window 0.45 s), default [guard]; %d cores'
          % cores, flush=True)
    print(HEADER, flush=True)
    try:
        rows = [('stall %.1f s / %.1f s' % (s, s + 0.5), s, args.runs)
                for s in stalls]
        rows.insert(0, ('stall 6.5 s / 7.0 s (issue)', 6.5,
                        args.issue_runs))
        for label, length, runs in rows:
            mark = bench.mark()
            for _ in range(runs):
                bench.stall(length)
            counts = bench.since(mark)
            real = [bench.real_failure() for _ in range(args.failures)]
            detections = [d for _, d, _ in real if d is not None]
            all_detections += detections
            all_fenced += [f for _, _, f in real if f is not None]
            total_fenced += counts[0]
            print(line(label, runs, counts, real, detections), flush=True)
        for n in loads:
            label = 'load %d busy/core (%d procs)' % (n, n * cores)
            mark = bench.mark()
            ps = busy(n * cores)
            try:
                time.sleep(args.load_seconds)
                real = [bench.real_failure() for _ in range(args.failures)]
            finally:
                stop_all(ps)
            bench.settle()
            counts = bench.since(mark, victims={h for h, _, _ in real})
            detections = [d for _, d, _ in real if d is not None]
            all_detections += detections
            all_fenced += [f for _, _, f in real if f is not None]
            total_fenced += counts[0]
            print(line(label, 1, counts, real, detections), flush=True)
    finally:
        bench.close()
    print('healthy hosts fenced in all rows: %d (must be 0)' % total_fenced)
    print('real single-host failures: %d detected, %d fenced; detection '
          '(last heartbeat -> recovery opened) p50 %.2f s, p99 %.2f s; '
          'last heartbeat -> fenced p50 %.2f s, p99 %.2f s'
          % (len(all_detections), len(all_fenced), pct(all_detections, 50),
             pct(all_detections, 99), pct(all_fenced, 50),
             pct(all_fenced, 99)))
    return 1 if total_fenced else 0


if __name__ == '__main__':
    sys.exit(main())
