"""Two evacuators against ``nova-ha-sim serve --evacuators 2``: leader
election, crash safety (kill -9 of the leader at random moments of a
recovery), failover time, and a deposed (paused) leader that never acts
after the new one took over.

Every check is the issue's outcome: each instance ACTIVE exactly once on a
healthy host, exactly one finished evacuation per instance and recovery,
the failed host powered off, no stale-epoch write in the journal.
"""

import collections
import datetime
import os
import random
import re
import signal
import socket
import time
import uuid

import pytest

from nova_ha.evacuator import engine
from nova_ha import nova_ops
from tests.functional import procs

LOCK = 'nova-ha-evacuator-leader'
# kill -9 runs per simulated cloud; two clouds (batches): 12 runs in all
# by default, which keeps `make test` well under 20 minutes on 2 cores (10
# per cloud took 4 minutes each, the suite's two longest tests). More:
# NOVA_HA_CRASH_RUNS=10, and benchmarks/bench_failover.py and
# bench_crash.py (20 runs). (On the fake-virt sim a repaired host can stay
# unschedulable for a while, so one cloud runs out of destinations after a
# dozen cycles.)
RUNS = int(os.environ.get('NOVA_HA_CRASH_RUNS', '6'))


def _redis_up():
    try:
        socket.create_connection(('127.0.0.1', 6379), timeout=0.5).close()
        return True
    except OSError:
        return False


class Pair:
    """Two evacuator processes sharing one journal and one coordinator."""

    def __init__(self, sim, tmp_path, backend_url=None, lock_name=None,
                 extra=(), journal_url=None, max_concurrent=2):
        self.sim = sim
        self.lock = lock_name or LOCK
        self.confs = []
        for i, src in enumerate(sim.state['evacuator_configs'], 1):
            text = open(src).read()
            add = ['max_concurrent_evacuations = %d' % max_concurrent] + \
                list(extra)
            text = text.replace('name = evacuator-%d' % i,
                                '\n'.join(['name = evacuator-%d' % i] + add))
            if backend_url:
                text = re.sub(r'(?m)^backend_url = .*$',
                              'backend_url = %s\nlock_name = %s'
                              % (backend_url, self.lock), text)
                assert backend_url in text
            if journal_url:
                text = re.sub(r'(?m)^connection = sqlite:.*$',
                              'connection = %s' % journal_url, text)
                assert journal_url in text
            path = tmp_path / ('ev%d.conf' % i)
            path.write_text(text)
            os.chmod(path, 0o600)
            self.confs.append(str(path))
        self.procs = [None, None]
        self.errors = []
        self.j = procs.journal(self.confs[0])

    def start(self, i):
        self.procs[i] = procs.Evacuator(self.confs[i])
        return self.procs[i]

    def leadership(self):
        return self.j.get_leadership(self.lock)

    def leader_index(self):
        lead = self.leadership()
        if lead is None or lead.holder is None:
            return None
        pid = int(lead.holder.rsplit('.', 1)[1])
        for i, p in enumerate(self.procs):
            if p is not None and p.proc.pid == pid and p.proc.poll() is None:
                return i
        return None

    def wait_leader(self, timeout=60):
        return procs.wait_for(lambda: self.leader_index() is not None and
                              (self.leader_index(),), timeout,
                              interval=0.05, what='a leader')[0]

    def kill(self, i):
        out, err = self.procs[i].kill()
        self.errors.append(err)
        self.procs[i] = None

    def stop(self):
        for p in self.procs:
            if p is not None:
                out, err = p.stop()
                self.errors.append(err)
        self.j.close()


def wait_standby_ready(ev, timeout=60):
    """The process is up (its receiver bound) and past its start-up."""
    log = open(ev.config_file).read().split('log_file = ')[1].split('\n')[0]

    def ready():
        assert ev.proc.poll() is None, ev.proc.communicate()
        try:
            return open(log).read().count('running; heartbeats') >= \
                ev._expect_running
        except OSError:
            return False
    return procs.wait_for(ready, timeout, interval=0.2,
                          what='evacuator %s running' % ev.config_file)


def start_and_wait(pair, i, log_counts):
    ev = pair.start(i)
    log_counts[i] += 1
    ev._expect_running = log_counts[i]
    wait_standby_ready(ev)
    return ev


@pytest.fixture
def cloud(tmp_path):
    sim = procs.Sim(tmp_path / 'sim', hosts=6, racks=3, sal=1, evacuators=2)
    try:
        yield sim
    finally:
        sim.stop()


def phase_of(j, rec_id, host):
    """Where the recovery stood (journal) when the leader was killed."""
    if rec_id is None:
        return 'before detection'
    steps = [t.step.split(':')[0] for t in j.timeline(rec_id)]
    if 'fenced' not in steps:
        inflight = j.list_fencing_attempts(host=host, unfinished=True)
        return 'fencing in flight' if inflight else 'before fencing'
    if 'evacuate' not in steps:
        return 'after fencing'
    items = j.list_recovery_items(rec_id)
    states = collections.Counter(i.state for i in items)
    if states['evacuating']:
        return 'evacuations in flight'
    if states['pending']:
        return 'between evacuations'
    return 'after evacuations'


def evacuations(sim, host, since):
    """{instance: [migration status, ...]} of evacuations away from host
    created since `since`."""
    cutoff = since.replace(tzinfo=None, microsecond=0) - \
        datetime.timedelta(seconds=2)
    found = collections.defaultdict(list)
    for m in sim.nova.migrations.list(source_compute=host,
                                      migration_type='evacuation'):
        if nova_ops.parse_time(m.created_at) >= cutoff:
            found[m.instance_uuid].append(m.status)
    return found


def check_outcome(sim, j, victim, rec, healthy):
    items = j.list_recovery_items(rec.id)
    assert rec.state == 'done', (rec, items)
    assert items and all(i.state == 'done' for i in items), items
    migs = evacuations(sim, victim, rec.detected_at)
    for item in items:
        statuses = migs.get(item.instance_uuid, [])
        assert one_evacuation(item, statuses), (
            'instance %s evacuated %r (%s)' % (item.name, statuses,
                                               item.last_error))
    servers = sim.nova.servers.list()
    names = [s.name for s in servers]
    assert len(names) == len(set(names))
    for s in servers:
        host = getattr(s, 'OS-EXT-SRV-ATTR:host')
        assert s.status == 'ACTIVE', (s.name, s.status)
        assert host != victim and host in healthy, (s.name, host)
    assert sim.host(victim)['power'] == 'off'
    fence = j.list_fencing_attempts(host=victim, unfinished=True)
    assert not fence, fence


def one_evacuation(item, statuses):
    """One evacuation of the instance, done. The only other one allowed
    is a planned target the scheduler refused (recovery placement), then
    the fallback with no host: nova-conductor marked the refused one
    'error' before it reached a compute, so the two never ran together."""
    done = [s for s in statuses if s in nova_ops.MIGRATION_DONE]
    if (item.last_error or '').startswith('planned host refused'):
        return len(done) == 1 and sorted(statuses) in (['done'],
                                                       ['done', 'error'])
    return statuses == done and len(done) == 1


def compute_reported_since(sim, host, since):
    svc = sim.nova.services.list(host=host, binary='nova-compute')[0]
    return svc.updated_at and nova_ops.parse_time(svc.updated_at) >= \
        since.replace(tzinfo=None, microsecond=0)


def return_host(sim, j, host):
    """The operator's repair: power on, wait until nova-compute runs again
    (it has reported to Nova: enabling it earlier leaves its placement
    provider with COMPUTE_STATUS_DISABLED until its next periodic sync),
    then ``nova-ha host enable``."""
    since = datetime.datetime.now(datetime.timezone.utc)
    sim.heal(host)
    procs.wait_for(lambda: compute_reported_since(sim, host, since), 60,
                   interval=0.5, what='nova-compute on %s reporting' % host)
    ops = nova_ops.NovaOps(sim.nova)
    procs.wait_for(lambda: _try_enable(ops, j, host), 30, interval=0.5,
                   what='enable %s' % host)


def _try_enable(ops, j, host):
    try:
        engine.enable_host(ops, j, host)
        return True
    except engine.HostBusy:
        return False


def assert_no_secrets_logged(sim, texts):
    """Heartbeat key, BMC passwords and the API token appear in no log."""
    secrets = [open(os.path.join(sim.dir, 'heartbeat.key')).read().strip(),
               sim.state['api']['token']]
    secrets += [h['bmc']['password'] for h in sim.state['hosts'].values()]
    for name in ('evacuator-1.log', 'evacuator-2.log'):
        path = os.path.join(sim.dir, name)
        if os.path.exists(path):
            texts.append(open(path).read())
    for text in texts:
        for secret in secrets:
            assert secret and secret not in text, 'a secret is logged'


def boot_on(sim, name, host, count):
    return procs.boot_retried(sim, name, count, host=host)


def settle(sim, j, hosts):
    """Before a run: no recovery open, every host in service (a spurious
    failure -- the sim starved past a SAL1 window -- may have been
    recovered for real: return it like an operator would)."""
    procs.wait_for(lambda: not j.list_recoveries(states=['open']), 60,
                   interval=0.2, what='no open recovery')
    for state in j.list_host_states(states=['RECOVERED']):
        return_host(sim, j, state.host)


# RUNS host failures in one test: ~20 s each on a quiet machine, several
# times that when the machine is shared.
@pytest.mark.timeout(120 + 60 * RUNS)
@pytest.mark.parametrize('batch', [1, 2])
def test_leader_killed_at_random_moments(cloud, tmp_path, batch):
    """kill -9 of the leader at a random moment of a host failure's
    recovery, RUNS times per batch: the standby takes over within 2 s and
    finishes the recovery; every instance ACTIVE exactly once on a healthy
    host, one finished evacuation per instance."""
    sim = cloud
    seed = int(os.environ.get('NOVA_HA_CRASH_SEED', time.time())) + batch
    rnd = random.Random(seed)
    print('seed', seed)
    pair = Pair(sim, tmp_path)
    log_counts = [0, 0]
    try:
        start_and_wait(pair, 0, log_counts)
        start_and_wait(pair, 1, log_counts)
        pair.wait_leader()
        hosts = sorted(sim.state['hosts'])
        phases = collections.Counter()
        failovers = []
        for run in range(RUNS):
            settle(sim, pair.j, hosts)
            # Let the scheduler place the run's servers (on this shared
            # machine a repaired host may stay unschedulable for a while:
            # its placement provider keeps COMPUTE_STATUS_DISABLED until
            # nova-compute's periodic sync); fail the host with the most.
            servers = boot_on(sim, 'run%d' % run, None, 4)
            where = collections.Counter(
                getattr(s, 'OS-EXT-SRV-ATTR:host') for s in servers)
            victim = max(sorted(where), key=lambda h: where[h])
            healthy = set(hosts) - {victim}
            leader = pair.wait_leader()
            before = pair.leadership().epoch
            known = {r.id for r in pair.j.list_recoveries(host=victim)}
            # Around detection and fencing, anywhere, or into the
            # evacuations (two at a time: there are moments between them).
            delay = rnd.choice([rnd.uniform(0.3, 0.8), rnd.uniform(0.0, 1.5),
                                rnd.uniform(1.0, 3.0)])
            sim.inject(victim, 'power_loss')
            time.sleep(delay)
            rec = pair.j.get_open_recovery(victim)
            phase = phase_of(pair.j, rec and rec.id, victim)
            t_kill = time.monotonic()
            pair.kill(leader)
            procs.wait_for(lambda: pair.leadership().epoch > before, 10,
                           interval=0.02, what='a new leader')
            failovers.append(time.monotonic() - t_kill)
            phases[phase] += 1

            def finished():
                done = [r for r in pair.j.list_recoveries(host=victim)
                        if r.state != 'open' and r.id not in known]
                return done and done[0]
            rec = procs.wait_for(finished, 90, interval=0.2,
                                 what='run %d: recovery of %s (killed %s)'
                                 % (run, victim, phase))
            check_outcome(sim, pair.j, victim, rec, healthy)
            # Repair first (the host's nova-compute cleans up the evacuated
            # instances as it starts), then clear the run's servers.
            return_host(sim, pair.j, victim)
            for server in servers:
                server.delete()
            procs.wait_for(lambda: not sim.nova.servers.list(), 30,
                           what='servers deleted')
            start_and_wait(pair, leader, log_counts)
        print('kill moments:', dict(phases))
        print('failover s: max %.2f mean %.2f' % (
            max(failovers), sum(failovers) / len(failovers)))
        # The 2 s goal is measured by benchmarks/bench_failover.py; here the
        # takeover only has to happen (wait_for above bounds it at 10 s).
        assert len(phases) >= 2, phases
    finally:
        pair.stop()
    for err in pair.errors:
        assert 'Traceback' not in (err or ''), err
    assert_no_secrets_logged(sim, [e or '' for e in pair.errors])


@pytest.fixture
def pg_journal(tmp_path_factory):
    """An empty PostgreSQL journal, upgraded; dropped afterwards."""
    from nova_ha import journal as journal_mod
    from tests import dbservers
    db = dbservers.Database('postgresql', 'ha', tmp_path_factory)
    try:
        journal_mod.upgrade(db.url)
        yield db.url
    finally:
        db.drop()


@pytest.mark.skipif(not _redis_up(),
                    reason='Redis is not running on 127.0.0.1:6379')
def test_paused_leader_is_deposed_and_never_acts_again(cloud, tmp_path,
                                                       pg_journal):
    """The production layout of a group of evacuators: Redis coordination
    and a server journal (PostgreSQL). SIGSTOP the leader mid-recovery past
    its lease -- possibly inside a journal transaction, holding locks the
    standby needs: the server cuts that session after [journal]
    transaction_timeout. The standby takes over and finishes; on SIGCONT
    the old leader writes nothing, fences nothing, evacuates nothing, and
    stands by. Then kill -9 of the new leader: failover well under 2 s.

    (A shared SQLite journal cannot pass this: a process stopped inside a
    write transaction keeps the database locked until it runs again.)"""
    sim = cloud
    txn_timeout = 1.0
    pair = Pair(sim, tmp_path, backend_url='redis://127.0.0.1:6379',
                lock_name='test-%s' % uuid.uuid4().hex[:8],
                journal_url=pg_journal,
                extra=['[journal]', 'transaction_timeout = %s' % txn_timeout,
                       '[evacuator]'])
    log_counts = [0, 0]
    try:
        start_and_wait(pair, 0, log_counts)
        start_and_wait(pair, 1, log_counts)
        old = pair.wait_leader()
        old_epoch = pair.leadership().epoch
        victim = 'compute02'
        procs.boot(sim, 'vm', count=3, host=victim)
        sim.inject(victim, 'power_loss')
        procs.wait_for(lambda: pair.j.get_open_recovery(victim), 10,
                       interval=0.02, what='recovery opened')
        os.kill(pair.procs[old].proc.pid, signal.SIGSTOP)
        t_stop = time.monotonic()
        try:
            procs.wait_for(lambda: pair.leadership().epoch > old_epoch, 10,
                           interval=0.02, what='takeover')
            took = time.monotonic() - t_stop
            takeover_at = datetime.datetime.now(datetime.timezone.utc)
            new_epoch = pair.leadership().epoch
            rec = procs.wait_for(
                lambda: [r for r in pair.j.list_recoveries(host=victim)
                         if r.state != 'open'], 90, interval=0.2,
                what='recovery by the new leader')[0]
            time.sleep(0.5)
        finally:
            os.kill(pair.procs[old].proc.pid, signal.SIGCONT)
        time.sleep(3.0)            # the old leader runs again for 3 s
        assert pair.procs[old].proc.poll() is None
        assert pair.leadership().epoch == new_epoch
        check_outcome(sim, pair.j, victim, rec,
                      set(sim.state['hosts']) - {victim})
        # Nothing in the journal carries the old epoch after the takeover.
        changes = [c for c in pair.j.host_state_history(since=takeover_at)
                   if c.epoch == old_epoch]
        assert not changes, changes
        fences = [a for a in pair.j.list_fencing_attempts()
                  if a.epoch == old_epoch and a.started_at >= takeover_at]
        assert not fences, fences
        # Figures for the log; benchmarks/bench_failover.py measures them.
        print('takeover after SIGSTOP: %.2f s' % took)
        # The old leader's log: it stood down, and did nothing after.
        log = open(pair.confs[old]).read().split('log_file = ')[1] \
            .split('\n')[0]
        text = open(log).read()
        assert 'no longer' in text, text[-2000:]

        # kill -9 of the new leader: the old one (now standby) takes over.
        new = pair.wait_leader()
        assert new != old
        t_kill = time.monotonic()
        pair.kill(new)
        procs.wait_for(lambda: pair.leadership().epoch > new_epoch, 10,
                       interval=0.02, what='failover after kill -9')
        failover = time.monotonic() - t_kill
        print('failover after kill -9 (redis): %.2f s' % failover)
    finally:
        pair.stop()
    for err in pair.errors:
        assert 'Traceback' not in (err or ''), err
