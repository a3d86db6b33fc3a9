"""Evacuator benchmark on the simulated cloud (prints figures; not a test).

1. Detection: fault (power loss) -> HOST_DOWN confirmed in the journal,
   over >= 20 runs on SAL1 hosts (p50/p99). Goal p99 <= 0.5 s.
2. One host with 20 instances: fault -> all 20 ACTIVE elsewhere.
   Goal <= 5 s.
3. A rack of 5 hosts x 20 instances (100, in 50 two-member groups with
   rack anti-affinity): fault on the whole rack -> all ACTIVE elsewhere,
   anti-affinity violations counted. Goal <= 20 s, zero violations.

Run: .venv/bin/python benchmarks/bench_evacuator.py [--runs 20] [--quick]
"""

import argparse
import contextlib
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from nova_ha.sim import cli as sim_cli  # noqa: E402
from nova_ha.sim import client as sim_client  # noqa: E402
from nova_ha.sim.cloud import SimCloud  # noqa: E402


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def pct(values, q):
    values = sorted(values)
    k = max(0, min(len(values) - 1, int(round(q / 100.0 * len(values))) - 1))
    return values[k]


class Bench:
    def __init__(self, hosts, racks, state_dir, evacuator_conf=None,
                 nova='inprocess', nova_options=None):
        sim_cli._setup_logging(os.path.join(state_dir, 'sim.log'))
        self.cloud = SimCloud(hosts=hosts, racks=racks, state_dir=state_dir,
                              nova=nova, nova_options=nova_options,
                              sal={'compute%02d' % i: 1
                                   for i in range(1, hosts + 1)})
        self.cloud.start()
        self.state = sim_client.load_state(state_dir)
        self.nova = sim_client.nova_client(self.state)
        conf = self.state['evacuator_configs'][0]
        if evacuator_conf:
            with open(conf, 'a') as f:
                for section, opts in evacuator_conf.items():
                    f.write('\n[%s]\n' % section)
                    f.writelines('%s = %s\n' % kv for kv in opts.items())
        self.evacuator = subprocess.Popen(
            [sys.executable, '-m', 'nova_ha.cmd.evacuator', '--config-file',
             conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        from nova_ha import journal as journal_mod
        self.journal = journal_mod.Journal(
            'sqlite:///' + os.path.join(state_dir, 'journal.sqlite'))
        self.flavor = self.nova.flavors.create('bench', 128, 1, 1)
        self.refenced = 0
        # Start measuring once the evacuator has heard every host (and its
        # start-up grace is over).
        hosts = set(self.state['hosts'])
        self.wait(lambda: {h.host for h in self.journal.list_host_states(
            states=['OK'])} >= hosts if self._journal_ready() else False,
            60, 'evacuator ready')
        time.sleep(3.5)

    def _journal_ready(self):
        try:
            self.journal.check_schema()
            return True
        except Exception:
            return False

    def stop_evacuator(self):
        self.evacuator.terminate()
        self.evacuator.wait(30)

    def nova_alone(self, host, count):
        """Baseline: what Nova itself takes, evacuating by hand."""
        self.boot('raw', count, host=host)
        self.wait_active(count * 2)
        self.cloud.inject(host, 'power_loss')
        svc = self.nova.services.list(host=host, binary='nova-compute')[0]
        self.nova.services.force_down(svc.id, True)
        t0, t_utc = time.monotonic(), utcnow()
        cpu = self.cloud.nova_cpu_seconds()
        ids = [s.id for s in self.nova.servers.list(
            search_opts={'host': host})]
        for server_id in ids:
            self.nova.servers.evacuate(server_id)

        def moved():
            # One look at the migration records every 0.5 s, as the
            # evacuator does.
            time.sleep(0.5)
            migs = [m for m in self.nova.migrations.list(
                source_compute=host, migration_type='evacuation')
                if m.instance_uuid in ids]
            failed = [m for m in migs if m.status in ('error', 'failed')]
            if failed:
                raise RuntimeError('evacuation of %s failed by hand'
                                   % failed[0].instance_uuid)
            return {m.instance_uuid for m in migs
                    if m.status == 'done'} >= set(ids)
        self.wait(moved, 300, 'evacuations by hand')
        elapsed = time.monotonic() - t0
        cpu = self.cloud.nova_cpu_seconds() - cpu
        servers = [s for s in self.nova.servers.list() if s.id in ids]
        wrong = [s.name for s in servers if s.status != 'ACTIVE' or getattr(
            s, 'OS-EXT-SRV-ATTR:host') == host]
        if len(servers) != len(ids) or wrong:
            raise RuntimeError('by hand: not ACTIVE elsewhere: %s' % wrong)
        done = self.nova_finished([host], t_utc)
        return elapsed, cpu, ((done - t_utc).total_seconds() if done
                              else float('nan'))

    def close(self):
        if self.evacuator.poll() is None:
            self.stop_evacuator()
        self.journal.close()
        self.cloud.stop()

    def wait(self, predicate, timeout, what, interval=0.02):
        """Poll predicate every `interval` seconds. The sim's Nova runs in
        this process: a look that costs Nova work (a server list) must not
        be frequent, or the benchmark slows what it measures."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(interval)
        raise RuntimeError('timed out waiting for %s' % what)

    def boot(self, name, count, host=None, hints=None):
        kw = {'availability_zone': 'nova:' + host} if host else {}
        self.nova.servers.create(name, self.state['images'][0], self.flavor,
                                 nics='none', min_count=count,
                                 max_count=count,
                                 scheduler_hints=hints or {}, **kw)

    def wait_active(self, count, timeout=900):
        """Until `count` servers exist and none is building. Looks only at
        the few servers still building or failed: a detailed list of all
        150 servers every second would cost the sim's Nova more than the
        boots themselves."""
        def ok():
            bad = self.nova.servers.list(search_opts={'status': 'ERROR'})
            if bad:
                raise RuntimeError('boot failed: %s: %s' % (
                    bad[0].name, getattr(bad[0], 'fault', {}).get(
                        'message', '?')))
            if self.nova.servers.list(search_opts={'status': 'BUILD'},
                                      detailed=False, limit=1):
                return False
            servers = self.nova.servers.list(detailed=False, limit=-1)
            return len(servers) >= count
        self.wait(ok, timeout, '%d servers ACTIVE' % count, interval=1.0)

    def recovery(self, host, since, finished=False):
        for rec in self.journal.list_recoveries(host=host):
            if rec.detected_at >= since and (
                    not finished or rec.state != 'open'):
                return rec

    def detection_runs(self, runs, hosts):
        latencies = []
        for i in range(runs):
            host = hosts[i % len(hosts)]
            time.sleep(0.3)
            t0 = utcnow()
            self.cloud.inject(host, 'power_loss')
            rec = self.wait(lambda: self.recovery(host, t0), 10,
                            'detection of %s' % host)
            latencies.append((rec.detected_at - t0).total_seconds())
            self.wait(lambda: self.recovery(host, t0, finished=True), 30,
                      'recovery of %s' % host)
            self._return_to_service(host)
        return latencies

    def _return_to_service(self, host):
        """Heal `host`, then enable it once its heartbeats are back (an
        operator enabling a host the evacuator does not hear yet gets it
        detected and fenced again: counted in self.refenced)."""
        for _ in range(5):
            self.cloud.heal(host)
            time.sleep(1.0)     # >= 5 beats of a SAL1 host
            self._enable(host)
            time.sleep(0.5)
            if (self.cloud.host(host).power == 'on'
                    and self.journal.get_open_recovery(host) is None):
                return
            self.refenced += 1
            self.wait(lambda: self.journal.get_open_recovery(host) is None,
                      30, 'stray recovery of %s' % host, interval=0.1)
        raise RuntimeError('%s does not stay up after recovery' % host)

    def _enable(self, host):
        from nova_ha.evacuator import engine
        from nova_ha.evacuator import nova_ops

        def ok():
            try:
                engine.enable_host(nova_ops.NovaOps(self.nova), self.journal,
                                   host)
                return True
            except Exception:
                return False
        self.wait(ok, 30, 'enable %s' % host)

    def recover_hosts(self, hosts, expected):
        t0 = utcnow()
        for host in hosts:
            self.cloud.inject(host, 'power_loss')
        cpu = self.cpu_seconds()
        recs = [self.wait(lambda h=host: self.recovery(h, t0, finished=True),
                          600, 'recovery of %s' % host, interval=0.1)
                for host in hosts]
        cpu = [b - a for a, b in zip(cpu, self.cpu_seconds())]
        items = [i for r in recs
                 for i in self.journal.list_recovery_items(r.id)]
        done = [i for i in items if i.state == 'done']
        last = max(i.finished_at for i in done) if done else t0

        def since(times):
            times = [t for t in times if t is not None]
            return max((t - t0).total_seconds() for t in times) \
                if times else float('nan')
        started = [i.started_at for i in items if i.started_at]
        nova_done = self.nova_finished(hosts, t0)
        return {'instances': len(items), 'done': len(done),
                'failed': len(items) - len(done),
                'seconds': (last - t0).total_seconds(),
                'detect': since(r.detected_at for r in recs),
                'fenced': since(r.fenced_at for r in recs),
                'forced_down': since(r.forced_down_at for r in recs),
                'first_call': (min(started) - t0).total_seconds()
                if started else float('nan'),
                'last_call': since(started),
                'nova_done': (nova_done - t0).total_seconds()
                if nova_done else float('nan'),
                'sim_cpu': cpu[0], 'evacuator_cpu': cpu[1]}

    def cpu_seconds(self):
        """CPU seconds used so far by the sim's Nova (this process, or its
        service processes) and by the evacuator process."""
        evac = float('nan')
        try:
            with open('/proc/%d/stat' % self.evacuator.pid) as f:
                fields = f.read().rsplit(')', 1)[1].split()
            evac = (int(fields[11]) + int(fields[12])) / os.sysconf(
                'SC_CLK_TCK')
        except (OSError, IndexError, ValueError):
            pass
        return self.cloud.nova_cpu_seconds(), evac

    def nova_finished(self, hosts, since):
        """When Nova itself finished the last evacuation away from hosts
        (its migration records), whoever watches."""
        last = None
        for host in hosts:
            for m in self.nova.migrations.list(
                    source_compute=host, migration_type='evacuation'):
                at = datetime.datetime.fromisoformat(m.updated_at).replace(
                    tzinfo=datetime.timezone.utc)
                if m.status == 'done' and at >= since.replace(
                        microsecond=0):
                    last = at if last is None else max(last, at)
        return last


def rack_violations(nova, state):
    racks = {h: v['topology']['rack'] for h, v in state['hosts'].items()}
    bad = 0
    for group in nova.server_groups.list(all_projects=True):
        seen = [racks[nova.servers.get(m).to_dict()['OS-EXT-SRV-ATTR:host']]
                for m in group.members]
        bad += len(seen) - len(set(seen))
    return bad


def breakdown(r):
    """Where the time of a recovery went (seconds after the fault)."""
    return [
        ('    detected / fenced / forced down',
         '%.2f / %.2f / %.2f s' % (r['detect'], r['fenced'],
                                   r['forced_down']), ''),
        ('    evacuate calls issued from .. to',
         '%.2f .. %.2f s' % (r['first_call'], r['last_call']), ''),
        ('    last evacuation done in Nova (its migration record)',
         '%.2f s' % r['nova_done'], ''),
        ('    CPU used meanwhile: Nova (all its services) / evacuator',
         '%.1f / %.1f s' % (r['sim_cpu'], r['evacuator_cpu']), ''),
    ]


class _Rows(list):
    """Print each figure as soon as it is measured (a long run that fails
    later still shows what it measured)."""

    def append(self, row):
        super().append(row)
        print('  .. %s: %s' % (row[0].strip(), row[1]), flush=True)

    def extend(self, rows):
        for row in rows:
            self.append(row)


def _servers_up():
    import socket
    for port in (3306, 5672):
        with socket.socket() as s:
            s.settimeout(1)
            if s.connect_ex(('127.0.0.1', port)) != 0:
                return False
    return True


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--runs', type=int, default=20)
    parser.add_argument('--quick', action='store_true',
                        help='skip the 100-instance rack failure')
    parser.add_argument('--keep', metavar='DIR',
                        help='keep the sims\' state, logs and journals in '
                             'DIR (default: a temporary directory)')
    parser.add_argument('--nova', choices=['auto', 'inprocess', 'processes'],
                        default='auto',
                        help='the sim\'s Nova: processes (one per service, '
                             'on MariaDB and RabbitMQ at 127.0.0.1, as a '
                             'real cloud runs it), inprocess (one Python '
                             'process: bound to one core), auto (processes '
                             'when both servers answer)')
    parser.add_argument('--nova-option', action='append', default=[],
                        type=sim_cli.nova_option,
                        metavar='SECTION.NAME=VALUE',
                        help='with the processes Nova: one more nova.conf '
                             'option (e.g. '
                             'filter_scheduler.host_subset_size=3)')
    args = parser.parse_args()
    nova = args.nova
    nova_options = dict(args.nova_option)
    if nova == 'auto':
        nova = 'processes' if _servers_up() else 'inprocess'
    if nova == 'inprocess' and nova_options:
        parser.error('--nova-option needs the processes Nova')
    print('the sim\'s Nova: %s%s' % (nova, ''.join(
        ' %s.%s=%s' % (k[0], k[1], v) for k, v in nova_options.items())),
        flush=True)
    rows = _Rows()
    with (contextlib.nullcontext(args.keep) if args.keep else
          tempfile.TemporaryDirectory(prefix='nova-ha-bench-')) as d:
        b = Bench(hosts=6, racks=3, state_dir=os.path.join(d, 'a'),
                  nova=nova, nova_options=nova_options)
        try:
            lat = b.detection_runs(args.runs, ['compute05', 'compute06'])
            rows.append(('fault -> HOST_DOWN confirmed (SAL1), %d runs'
                         % len(lat),
                         'p50 %.3f s  p99 %.3f s  max %.3f s' % (
                             statistics.median(lat), pct(lat, 99),
                             max(lat)), '<= 0.5 s (p99)'))
            rows.append(('  hosts detected again after "host enable" '
                         '(enabled before heard)', str(b.refenced), '0'))
            b.boot('one', 20, host='compute01')
            b.wait_active(20)
            r = b.recover_hosts(['compute01'], 20)
            rows.append(('1 host x 20 instances: fault -> all ACTIVE',
                         '%.2f s (%d/%d done)' % (r['seconds'], r['done'],
                                                  r['instances']),
                         '<= 5 s'))
            rows.extend(breakdown(r))
            b.stop_evacuator()
            raw, raw_cpu, raw_done = b.nova_alone('compute02', 20)
            rows.append(('  same, Nova alone (force-down + 20 evacuate '
                         'calls by hand, no detection/fencing)',
                         '%.2f s' % raw, '(baseline)'))
            rows.append(('    Nova alone: last migration done (Nova\'s '
                         'record) / sim CPU', '%.2f s / %.1f s' % (
                             raw_done, raw_cpu), ''))
        finally:
            b.close()
        if not args.quick:
            # A whole rack failing is this scenario's point: let the
            # evacuator's mass-failure guard through a rack (5 of 20 hosts
            # stay under its cloud-wide 50 %; no rack or power domain is
            # judged on its own).
            b = Bench(hosts=20, racks=4, state_dir=os.path.join(d, 'b'),
                      nova=nova, nova_options=nova_options,
                      evacuator_conf={'guard': {
                          'domain_min_hosts': 1000}})
            try:
                t_setup = time.monotonic()
                rack1 = ['compute%02d' % i for i in range(1, 6)]
                for g in range(50):
                    group = b.nova.server_groups.create(
                        name='g%02d' % g, policy='soft-anti-affinity')
                    hints = {'group': group.id,
                             'ha_anti_affinity_level': 'rack'}
                    b.boot('g%02d-a' % g, 1, host=rack1[g % 5], hints=hints)
                b.wait_active(50)
                for g, group in enumerate(sorted(
                        b.nova.server_groups.list(), key=lambda x: x.name)):
                    b.boot('g%02d-b' % g, 1, hints={
                        'group': group.id,
                        'ha_anti_affinity_level': 'rack'})
                b.wait_active(100)
                for i, host in enumerate(rack1):
                    b.boot('fill%d' % i, 10, host=host)
                b.wait_active(150)
                rows.append(('  (setup: 50 groups, 150 instances booted)',
                             '%.0f s' % (time.monotonic() - t_setup), ''))
                r = b.recover_hosts(rack1, 100)
                rows.append(('rack of 5 hosts x 20 instances (100): fault '
                             '-> all ACTIVE', '%.2f s (%d/%d done)' % (
                                 r['seconds'], r['done'], r['instances']),
                             '<= 20 s'))
                rows.extend(breakdown(r))
                rows.append(('rack anti-affinity violations after recovery',
                             str(rack_violations(b.nova, b.state)), '0'))
            finally:
                b.close()
    rows.append(('Masakari 22 defaults (anchors.md, for reference)',
                 '>= 210 s (180 s fixed wait + evacuations)', '-'))
    width = max(len(r[0]) for r in rows)
    print('\nnova-ha evacuator benchmark (%d cores, simulated cloud, '
          'Nova %s%s)\n' % (os.cpu_count(), nova, ''.join(
              ', %s.%s=%s' % (k[0], k[1], v)
              for k, v in nova_options.items())))
    print('%-*s  %-42s %s' % (width, 'measure', 'result', 'goal'))
    for r in rows:
        print('%-*s  %-42s %s' % (width, r[0], r[1], r[2]))


if __name__ == '__main__':
    main()
