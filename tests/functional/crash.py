"""kill -9 of the leading evacuator mid-recovery of a 20-server host
failure (issue 12, finding 3), as one reusable scenario: the functional
test (tests/functional/test_evacuator_crash.py, NOVA_HA_SOAK_RUNS runs)
and the soak benchmark (benchmarks/bench_crash.py, >= 20 runs) run it.

One run: 20 servers on one host; power loss; the leader is killed at a
random moment 0.3-3 s later and restarted once the standby leads. The
outcome is judged on Nova's word and the journal's, and must agree:

- the recovery is closed ``done``, every item ``done``;
- every server ACTIVE, no task state, exactly once, on a healthy host;
- exactly one evacuation migration per server since the failure, ``done``
  (never two evacuations of one instance);
- each item's dest_host is the host Nova shows.
"""

import collections
import time

from nova_ha import nova_ops
from tests.functional import procs
from tests.functional import test_evacuator_ha as ha

SERVERS = 20
KINDS = ('recovery not closed', 'recovery not done', 'journal item not done',
         'server not exactly once', 'server not ACTIVE',
         'server on failed host', 'not one done evacuation',
         'journal and Nova disagree', 'host not powered off')


def judge(sim, j, victim, rec, healthy, names):
    """[(kind, detail), ...] of one run (empty: every rule held); kinds:
    KINDS."""
    problems = []
    items = j.list_recovery_items(rec.id)
    if rec.state != 'done':
        problems.append(('recovery not done', rec.state))
    bad = [(i.name, i.state) for i in items if i.state != 'done']
    if bad:
        problems.append(('journal item not done', bad))
    servers = [s for s in sim.nova.servers.list() if s.name in names]
    seen = collections.Counter(s.name for s in servers)
    if len(seen) != len(names) or any(c != 1 for c in seen.values()):
        problems.append(('server not exactly once', dict(seen)))
    by_uuid = {}
    for s in servers:
        host = getattr(s, 'OS-EXT-SRV-ATTR:host')
        task = getattr(s, 'OS-EXT-STS:task_state', None)
        by_uuid[s.id] = host
        if s.status != 'ACTIVE' or task:
            problems.append(('server not ACTIVE', '%s %s (task state %s)'
                             % (s.name, s.status, task)))
        if host == victim or host not in healthy:
            problems.append(('server on failed host',
                             '%s on %s' % (s.name, host)))
    migs = ha.evacuations(sim, victim, rec.detected_at)
    for item in items:
        statuses = migs.get(item.instance_uuid, [])
        if len(statuses) != 1 or statuses[0] not in \
                nova_ops.MIGRATION_DONE:
            problems.append(('not one done evacuation',
                             '%s evacuated %r' % (item.name, statuses)))
        if item.state == 'done' and \
                item.dest_host != by_uuid.get(item.instance_uuid):
            problems.append(('journal and Nova disagree',
                             '%s: journal says %s, Nova %s' % (
                                 item.name, item.dest_host,
                                 by_uuid.get(item.instance_uuid))))
    if sim.host(victim)['power'] != 'off':
        problems.append(('host not powered off', victim))
    return problems


def boot_many(sim, name, host, count, tries=4):
    """``count`` servers on ``host`` (forced), one request; retried after a
    pause when the loaded machine made Nova think the host down
    (NoValidHost) or the boot slow."""
    for attempt in range(tries):
        try:
            return procs.boot(sim, name, count=count, host=host,
                              timeout=240)
        except AssertionError:
            if attempt == tries - 1:
                raise
            for s in sim.nova.servers.list():
                if s.name.startswith(name):
                    s.delete()
            procs.wait_for(lambda: not [s for s in sim.nova.servers.list()
                                        if s.name.startswith(name)], 120,
                           what='failed boot cleaned up')
            time.sleep(10.0)


def where_stuck(j, victim, known):
    """What the journal shows of a recovery that did not close."""
    recs = [r for r in j.list_recoveries(host=victim) if r.id not in known]
    state = j.get_host_state(victim)
    if not recs:
        return 'no recovery of %s; host state %s' % (
            victim, state.state if state else None)
    rec = recs[0]
    items = collections.Counter(i.state for i in
                                j.list_recovery_items(rec.id))
    return 'recovery %s %s (%s); host state %s; items %s' % (
        rec.id, rec.state, rec.last_error or '-',
        state.state if state else None, dict(items))


def one_run(sim, pair, log_counts, rnd, run, timeout=180):
    """One kill -9 run. Returns (problems, phase at the kill, seconds from
    the fault to the recovery's close)."""
    hosts = sorted(sim.state['hosts'])
    ha.settle(sim, pair.j, hosts)
    # The victim rotates so that every host is repaired between its turns.
    victim = hosts[run % len(hosts)]
    healthy = set(hosts) - {victim}
    servers = boot_many(sim, 'crash%d' % run, victim, SERVERS)
    names = {s.name for s in servers}
    leader = pair.wait_leader()
    before = pair.leadership().epoch
    known = {r.id for r in pair.j.list_recoveries(host=victim)}
    delay = rnd.uniform(0.3, 3.0)
    t0 = time.monotonic()
    sim.inject(victim, 'power_loss')
    time.sleep(max(0.0, delay - (time.monotonic() - t0)))
    rec = pair.j.get_open_recovery(victim)
    phase = ha.phase_of(pair.j, rec and rec.id, victim)
    pair.kill(leader)
    procs.wait_for(lambda: pair.leadership().epoch > before, 15,
                   interval=0.02, what='a new leader')
    ha.start_and_wait(pair, leader, log_counts)

    def finished():
        done = [r for r in pair.j.list_recoveries(host=victim)
                if r.state != 'open' and r.id not in known]
        return done and done[0]
    try:
        rec = procs.wait_for(finished, timeout, interval=0.2,
                             what='run %d: recovery of %s (killed %s)'
                             % (run, victim, phase))
    except AssertionError as exc:
        return [('recovery not closed', '%s: %s' % (
            exc, where_stuck(pair.j, victim, known)))], phase, None
    took = time.monotonic() - t0
    # A moment for a wrong "done" to show in Nova (a server still
    # rebuilding would be caught here rather than by the next run).
    time.sleep(1.0)
    rec = pair.j.get_recovery(rec.id)
    problems = judge(sim, pair.j, victim, rec, healthy, names)
    # Repair first (the host's nova-compute cleans up the evacuated
    # instances as it starts), then clear the run's servers.
    ha.return_host(sim, pair.j, victim)
    for server in sim.nova.servers.list():
        if server.name in names:
            server.delete()
    procs.wait_for(lambda: not [s for s in sim.nova.servers.list()
                                if s.name in names], 60,
                   what='servers deleted')
    return problems, phase, took


def start_pair(sim, tmp_path):
    pair = ha.Pair(sim, tmp_path, max_concurrent=SERVERS)
    log_counts = [0, 0]
    ha.start_and_wait(pair, 0, log_counts)
    ha.start_and_wait(pair, 1, log_counts)
    pair.wait_leader()
    return pair, log_counts
