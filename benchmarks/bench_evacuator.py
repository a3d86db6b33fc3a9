"""Evacuator benchmark on the simulated cloud (prints figures; not a test).

1. Detection: fault (power loss) -> HOST_DOWN confirmed in the journal,
   over >= 20 runs on SAL1 hosts (p50/p99). Goal p99 <= 0.5 s.
2. One host with 20 instances, --scenario-runs times (default 5) each for
   nova-ha (fault -> all 20 ACTIVE elsewhere) and for Nova alone (force
   down + 20 evacuate calls by hand, nothing planned), alternating within
   this one run: median and spread of each, the ratio nova-ha / Nova alone
   run by run, placement GETs and Nova CPU-seconds per evacuation, the most
   instances recovered on one host. Goals: ratio <= 0.5, no host receives
   more than ceil(20 / eligible hosts) + 1.
3. A rack of 5 hosts x 20 instances (100: 50 members of two-member groups
   with rack anti-affinity, 50 plain), the same comparison. Goal <= 20 s,
   zero anti-affinity violations, Nova CPU-seconds per evacuation <= half
   of the 2026 figure (40-63 CPU-s / 100).

Run: .venv/bin/python benchmarks/bench_evacuator.py [--runs 20]
     [--scenario-runs 5] [--quick] [--nova processes]
Placement GETs are counted from placement's request log (the multi-process
Nova writes one; in process they show as n/a).
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
        conf = self.conf = self.state['evacuator_configs'][0]
        if evacuator_conf:
            with open(conf, 'a') as f:
                for section, opts in evacuator_conf.items():
                    f.write('\n[%s]\n' % section)
                    f.writelines('%s = %s\n' % kv for kv in opts.items())
        from nova_ha import journal as journal_mod
        self.journal = journal_mod.Journal(
            'sqlite:///' + os.path.join(state_dir, 'journal.sqlite'))
        self.flavor = self.nova.flavors.create('bench', 128, 1, 1)
        self.refenced = 0
        self.evacuator = None
        self.start_evacuator()

    def start_evacuator(self):
        if self.evacuator is not None and self.evacuator.poll() is None:
            return
        self.evacuator = subprocess.Popen(
            [sys.executable, '-m', 'nova_ha.cmd.evacuator', '--config-file',
             self.conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Start measuring once the evacuator has heard every host (and its
        # start-up grace is over).
        hosts = {h for h in self.state['hosts']
                 if self.cloud.host(h).power == 'on'}    # failed runs' hosts
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
        if self.evacuator is not None and self.evacuator.poll() is None:
            self.evacuator.terminate()
            self.evacuator.wait(30)

    # -- what Nova did -------------------------------------------------------
    def placement_log(self):
        stack = self.cloud.stack
        path = os.path.join(getattr(stack, 'dir', '') or '', 'placement.log')
        return path if os.path.exists(path) else None

    def placement_mark(self):
        path = self.placement_log()
        return os.path.getsize(path) if path else None

    def placement_gets(self, mark):
        """GET requests placement served since ``mark`` (its request log:
        one INFO line per request)."""
        path = self.placement_log()
        if path is None or mark is None:
            return float('nan')
        with open(path, 'rb') as f:
            f.seek(mark)
            return sum(1 for line in f if b'"GET ' in line)

    def hosts_of(self, ids):
        ids = set(ids)
        return {s.id: getattr(s, 'OS-EXT-SRV-ATTR:host')
                for s in self.nova.servers.list(search_opts={
                    'all_tenants': True}) if s.id in ids}

    def delete(self, ids):
        ids = set(ids)
        for server_id in ids:
            self.nova.servers.delete(server_id)
        self.wait(lambda: not ids & {s.id for s in self.nova.servers.list(
            detailed=False, limit=-1)}, 300, 'servers deleted', interval=1.0)

    def boot_ids(self, name, count, host=None, hints=None):
        """Boot, wait ACTIVE, return the new servers' ids."""
        before = {s.id for s in self.nova.servers.list(detailed=False,
                                                       limit=-1)}
        self.boot(name, count, host=host, hints=hints)
        self.wait_active(len(before) + count)
        return [s.id for s in self.nova.servers.list(detailed=False,
                                                     limit=-1)
                if s.id not in before]

    def eligible(self, failed):
        return len([h for h in self.state['hosts'] if h not in failed])

    def restore(self, hosts, evacuator):
        """Failed hosts back in service: healed, their nova-compute up,
        enabled (through the journal when the evacuator runs)."""
        for host in hosts:
            if evacuator:
                self._return_to_service(host)
            else:
                self.cloud.heal(host)
                self._enable(host)

        def up():
            svcs = {s.host: s for s in self.nova.services.list(
                binary='nova-compute')}
            for h in hosts:
                if svcs[h].forced_down or svcs[h].status != 'enabled':
                    self._enable(h)
            return all(svcs[h].state == 'up' and svcs[h].status == 'enabled'
                       and not svcs[h].forced_down for h in hosts)
        # A restarted nova-compute reports within report_interval (10 s);
        # a loaded machine takes longer.
        self.wait(up, 600, 'hosts %s up again' % ','.join(hosts),
                  interval=1.0)

    def run_nova_ha(self, hosts, ids):
        """Power loss on ``hosts`` with the evacuator on: figures."""
        self.start_evacuator()
        mark = self.placement_mark()
        r = self.recover_hosts(hosts, len(ids))
        r['gets'] = self.placement_gets(mark)
        where = self.hosts_of(ids)
        r['where'] = where
        r['wrong'] = [i for i in ids if where.get(i) in hosts]
        return r

    def run_nova_alone(self, hosts, ids):
        """Baseline: the evacuator off; power loss on ``hosts``, then by
        hand, as an operator without nova-ha: force each host's
        nova-compute down and evacuate its instances (no host, nova's
        default nova.conf), one call after another."""
        self.stop_evacuator()
        idle = self.idle_cpu_rate()
        for host in hosts:
            self.cloud.inject(host, 'power_loss')
        mark = self.placement_mark()
        t0, t_utc = time.monotonic(), utcnow()
        cpu = self.cloud.nova_cpu_seconds()
        by_service = self.cloud.nova_cpu_by_service()
        for host in hosts:
            svc = self.nova.services.list(host=host,
                                          binary='nova-compute')[0]
            self.nova.services.force_down(svc.id, True)
            for server in self.nova.servers.list(
                    search_opts={'host': host, 'all_tenants': True}):
                self.nova.servers.evacuate(server.id)
        ids = set(ids)

        def moved():
            # One look at the migration records every 0.5 s, as the
            # evacuator does.
            time.sleep(0.5)
            migs = [m for m in self.nova.migrations.list(
                migration_type='evacuation',
                changes_since=t_utc.strftime('%Y-%m-%dT%H:%M:%S'))
                if m.instance_uuid in ids]
            failed = [m for m in migs if m.status in ('error', 'failed')]
            if failed:
                raise RuntimeError('evacuation of %s failed by hand'
                                   % failed[0].instance_uuid)
            return {m.instance_uuid for m in migs
                    if m.status == 'done'} >= ids
        self.wait(moved, 600, 'evacuations by hand')
        elapsed = time.monotonic() - t0
        cpu = self.cloud.nova_cpu_seconds() - cpu
        by_service = net_of_idle(
            cpu_delta(by_service, self.cloud.nova_cpu_by_service()), idle,
            elapsed)
        gets = self.placement_gets(mark)
        servers = [s for s in self.nova.servers.list(
            search_opts={'all_tenants': True}) if s.id in ids]
        where = {s.id: getattr(s, 'OS-EXT-SRV-ATTR:host') for s in servers}
        wrong = [s.name for s in servers if s.status != 'ACTIVE'
                 or where[s.id] in hosts]
        if len(servers) != len(ids) or wrong:
            raise RuntimeError('by hand: not ACTIVE elsewhere: %s' % wrong)
        return {'seconds': elapsed, 'sim_cpu': cpu, 'gets': gets,
                'cpu_by_service': by_service,
                'where': where, 'instances': len(ids), 'done': len(ids),
                'wrong': []}

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
        from nova_ha import nova_ops

        def ok():
            try:
                engine.enable_host(nova_ops.NovaOps(self.nova), self.journal,
                                   host)
                return True
            except Exception:
                return False
        self.wait(ok, 30, 'enable %s' % host)

    def recover_hosts(self, hosts, expected):
        idle = self.idle_cpu_rate()
        t0, m0 = utcnow(), time.monotonic()
        for host in hosts:
            self.cloud.inject(host, 'power_loss')
        cpu = self.cpu_seconds()
        by_service = self.cloud.nova_cpu_by_service()
        recs = [self.wait(lambda h=host: self.recovery(h, t0, finished=True),
                          600, 'recovery of %s' % host, interval=0.1)
                for host in hosts]
        cpu = [b - a for a, b in zip(cpu, self.cpu_seconds())]
        by_service = net_of_idle(
            cpu_delta(by_service, self.cloud.nova_cpu_by_service()), idle,
            time.monotonic() - m0)
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
                'sim_cpu': cpu[0], 'evacuator_cpu': cpu[1],
                'cpu_by_service': by_service}

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

    def idle_cpu_rate(self, seconds=5.0):
        """{service: CPU seconds per second} Nova spends with nothing to do
        (periodic tasks, service reports): measured just before a run, to
        leave it out of the run's CPU per evacuation. The evacuator is
        running (nova-ha) or stopped (Nova alone) as during the run."""
        before = self.cloud.nova_cpu_by_service()
        time.sleep(seconds)
        return {name: used / seconds for name, used in cpu_delta(
            before, self.cloud.nova_cpu_by_service()).items()}

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


def cpu_delta(before, after):
    """CPU seconds per Nova service between two looks. A service gone
    meanwhile (a failed host's nova-compute) counts what it had used
    before as 0 afterwards: its part is left out, never negative."""
    return {name: max(0.0, after.get(name, 0.0) - used)
            for name, used in before.items()}


def net_of_idle(used, idle, seconds):
    """CPU seconds per service less what it spends idle in as long."""
    return {name: max(0.0, cpu - idle.get(name, 0.0) * seconds)
            for name, cpu in used.items()}


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


def most(r):
    """The most instances recovered on one host."""
    counts = {}
    for host in r['where'].values():
        counts[host] = counts.get(host, 0) + 1
    return max(counts.values(), default=0)


def spread(values, fmt='%.2f', unit=' s'):
    values = [v for v in values if v == v]
    if not values:
        return 'n/a'
    return ('median ' + fmt + unit + ' [' + fmt + ' .. ' + fmt + ']') % (
        statistics.median(values), min(values), max(values))


def compare(label, results, n, eligible, goal):
    """Rows comparing nova-ha with Nova alone over the runs of one run."""
    ha, alone = results['nova-ha'], results['alone']
    ratios = [a['seconds'] / b['seconds'] for a, b in zip(ha, alone)]
    limit = -(-n // eligible) + 1
    rows = [
        ('%s: fault -> all ACTIVE, nova-ha (%d runs)' % (label, len(ha)),
         spread([r['seconds'] for r in ha]), goal),
        ('  Nova alone (force-down + evacuate by hand, default nova.conf)',
         spread([r['seconds'] for r in alone]), '(baseline)'),
        ('  ratio nova-ha / Nova alone, run by run',
         spread(ratios, unit='x'), '<= 0.5x' if n == 20 else ''),
        ('  placement GETs per evacuation: nova-ha / Nova alone',
         '%s / %s' % (spread([r['gets'] / n for r in ha], '%.1f', ''),
                      spread([r['gets'] / n for r in alone], '%.1f', '')),
         ''),
        ('  Nova CPU-s per evacuation: nova-ha / Nova alone',
         '%s / %s' % (spread([r['sim_cpu'] / n for r in ha], '%.3f', ''),
                      spread([r['sim_cpu'] / n for r in alone], '%.3f',
                             '')), ''),
        ('  the same less Nova\'s idle rate, all / by service',
         '%s / %s' % (
             spread([sum(r['cpu_by_service'].values()) / n for r in ha],
                    '%.3f', ''),
             spread([sum(r['cpu_by_service'].values()) / n for r in alone],
                    '%.3f', '')), ''),
    ] + [
        ('    %s' % name,
         '%s / %s' % (spread([r['cpu_by_service'].get(name, 0.0) / n
                              for r in ha], '%.3f', ''),
                      spread([r['cpu_by_service'].get(name, 0.0) / n
                              for r in alone], '%.3f', '')), '')
        for name in sorted({k for r in ha + alone
                            for k in r['cpu_by_service']})
    ] + [
        ('  most instances recovered on one host: nova-ha / Nova alone',
         '%s / %s (%d eligible hosts)' % (
             spread([most(r) for r in ha], '%.0f', ''),
             spread([most(r) for r in alone], '%.0f', ''), eligible),
         '<= %d' % limit),
        ('  anti-affinity violations (all runs): nova-ha / Nova alone',
         '%d / %d' % (sum(r['violations'] for r in ha),
                      sum(r['violations'] for r in alone)), '0'),
        ('  not recovered (all runs): nova-ha / Nova alone',
         '%d / %d' % (sum(r['instances'] - r['done'] for r in ha),
                      sum(r['instances'] - r['done'] for r in alone)), '0'),
    ]
    if ha:
        rows.append(('  nova-ha, last run: where the time went', '', ''))
        rows.extend(breakdown(ha[-1]))
    return rows


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
    parser.add_argument('--scenario-runs', type=int, default=5,
                        help='runs of each recovery scenario, for nova-ha '
                             'and for Nova alone (alternating)')
    parser.add_argument('--rack-runs', type=int, default=None,
                        help='runs of the rack scenario (default: '
                             '--scenario-runs)')
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
    runs = args.scenario_runs
    if args.rack_runs is None:
        args.rack_runs = runs
    with (contextlib.nullcontext(args.keep) if args.keep else
          tempfile.TemporaryDirectory(prefix='nova-ha-bench-')) as d:
        b = Bench(hosts=max(6, 2 * runs + 4), racks=3,
                  state_dir=os.path.join(d, 'a'),
                  nova=nova, nova_options=nova_options)
        try:
            if args.runs:
                lat = b.detection_runs(args.runs, ['compute05', 'compute06'])
                rows.append(('fault -> HOST_DOWN confirmed (SAL1), %d runs'
                             % len(lat),
                             'p50 %.3f s  p99 %.3f s  max %.3f s' % (
                                 statistics.median(lat), pct(lat, 99),
                                 max(lat)), '<= 0.5 s (p99)'))
                rows.append(('  hosts detected again after "host enable" '
                             '(enabled before heard)', str(b.refenced), '0'))
            results = {'nova-ha': [], 'alone': []}
            for i in range(runs):
                for mode in ('nova-ha', 'alone'):
                    # Every run fails one host of rack 1 and returns it to
                    # service afterwards (healed, nova-compute up,
                    # enabled): hosts left failed would add up, and from
                    # the third in one rack the mass-failure guard would
                    # rightly hold fencing back.
                    src = ['compute%02d' % (1 + (2 * i + (mode == 'alone'))
                                            % 3)]
                    ids = b.boot_ids('one%d' % i, 20, host=src[0])
                    r = (b.run_nova_ha if mode == 'nova-ha'
                         else b.run_nova_alone)(src, ids)
                    r['violations'] = 0
                    results[mode].append(r)
                    print('  .. 20 instances, %s, run %d: %.2f s, most on '
                          'one host %d, %s GETs, %.1f CPU-s' % (
                              mode, i + 1, r['seconds'], most(r),
                              r['gets'], r['sim_cpu']), flush=True)
                    r['eligible'] = b.eligible(src)
                    b.delete(ids)
                    b.restore(src, evacuator=mode == 'nova-ha')
            rows.extend(compare('1 host x 20 instances', results, 20,
                                min(r['eligible'] for r in results['alone']),
                                '<= 5 s'))
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
                groups = []
                for g in range(50):
                    groups.append(b.nova.server_groups.create(
                        name='g%02d' % g, policy='soft-anti-affinity'))

                def boot_rack1(tag):
                    """50 group members and 50 plain instances on rack 1:
                    their ids."""
                    before = len(b.nova.servers.list(detailed=False,
                                                     limit=-1))
                    for g, group in enumerate(groups):
                        b.boot('g%02d-a%s' % (g, tag), 1, host=rack1[g % 5],
                               hints={'group': group.id,
                                      'ha_anti_affinity_level': 'rack'})
                    for i, host in enumerate(rack1):
                        b.boot('fill%d%s' % (i, tag), 10, host=host)
                    b.wait_active(before + 100)
                    return [s.id for s in b.nova.servers.list(
                        search_opts={'all_tenants': True})
                        if getattr(s, 'OS-EXT-SRV-ATTR:host') in rack1]

                boot_rack1('')
                for g, group in enumerate(groups):
                    b.boot('g%02d-b' % g, 1, hints={
                        'group': group.id, 'ha_anti_affinity_level': 'rack'})
                b.wait_active(150)
                ids = [s.id for s in b.nova.servers.list(
                    search_opts={'all_tenants': True})
                    if getattr(s, 'OS-EXT-SRV-ATTR:host') in rack1]
                rows.append(('  (setup: 50 groups, 150 instances booted)',
                             '%.0f s' % (time.monotonic() - t_setup), ''))
                results = {'nova-ha': [], 'alone': []}
                for i in range(args.rack_runs):
                    for mode in ('nova-ha', 'alone'):
                        if ids is None:
                            ids = boot_rack1('-%d%s' % (i, mode[0]))
                        assert len(ids) == 100, len(ids)
                        r = (b.run_nova_ha if mode == 'nova-ha'
                             else b.run_nova_alone)(rack1, ids)
                        r['violations'] = rack_violations(b.nova, b.state)
                        results[mode].append(r)
                        print('  .. rack, %s, run %d: %.2f s, most on one '
                              'host %d, %s GETs, %.1f CPU-s, %d violations'
                              % (mode, i + 1, r['seconds'], most(r),
                                 r['gets'], r['sim_cpu'], r['violations']),
                              flush=True)
                        b.delete(ids)
                        ids = None
                        b.restore(rack1, evacuator=mode == 'nova-ha')
                rows.extend(compare('rack of 5 hosts x 20 instances (100)',
                                    results, 100, b.eligible(rack1),
                                    '<= 20 s'))
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
