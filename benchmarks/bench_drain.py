"""Benchmark: drain 40 instances in 8 server groups off one host.

Real in-process Nova (API, conductor, scheduler, placement, 5 fake-virt
computes; casts asynchronous as in a cloud). Every move holds HOLD seconds
inside the fake hypervisor, which records when each move really ran there
(tests/functional/maintenance/recorder.py). Groups vnf-1..4 use the default
limit (1 member moving at a time); vnf-5..8 say ha_max_concurrent_moves=2
in their members' metadata. Global limit: 4 moves at once.

Prints the total drain time and, per group, its limit and the most
members it had inside the hypervisor at once -- which must equal the limit
and never exceed it (exit status 1 otherwise).

    .venv/bin/python benchmarks/bench_drain.py [--hold 0.3]
"""

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', '1')
from nova_ha.sim import novastack  # noqa: E402  (patches first)

from nova.tests.functional import integrated_helpers  # noqa: E402

from nova_ha import journal as journal_mod  # noqa: E402
from nova_ha.maintenance import engine as engine_mod  # noqa: E402
from nova_ha import nova_ops  # noqa: E402
from nova_ha.maintenance import policy  # noqa: E402
from tests.functional import base  # noqa: E402
from tests.functional.maintenance import recorder as recorder_mod  # noqa

GROUPS = 8
PER_GROUP = 5
GLOBAL_LIMIT = 4
HOSTS = ('host1', 'host2', 'host3', 'host4', 'host5')


class BenchStack(base.NovaHATestCase):
    COMPUTE_HOSTS = HOSTS
    CAST_AS_CALL = False

    def _setup_services(self):
        self.flags(max_concurrent_live_migrations=8)
        super()._setup_services()

    def runTest(self):
        pass


def first_wave(rec, t0, n):
    starts = sorted(s for _, _, s, _ in rec.intervals)
    return (starts[n - 1] - t0) if len(starts) >= n else float('nan')


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--hold', type=float, default=0.3,
                    help='seconds each move spends in the fake hypervisor')
    ap.add_argument('--interval', type=float, default=0.5,
                    help='seconds between reconcile passes')
    ap.add_argument('--profile', action='store_true',
                    help='time the drain\'s Nova API and journal calls')
    args = ap.parse_args(argv)

    stack = BenchStack('runTest')
    t_setup = time.monotonic()
    stack.setUp()
    try:
        stack.flags(instances=-1, cores=-1, ram=-1, group='quota')
        rec = recorder_mod.MoveRecorder(hold=args.hold)
        for p in rec.patches():
            stack.useFixture(p)
        flavor = stack.admin_api.post_flavor({'flavor': {
            'name': 'bench', 'ram': 64, 'vcpus': 1, 'disk': 0}})
        groups, limit_of, posted = [], {}, []
        for g in range(1, GROUPS + 1):
            grp = stack.admin_api.post_server_groups(
                {'name': 'vnf-%d' % g, 'policy': 'soft-anti-affinity'})
            limit = 1 if g <= GROUPS // 2 else 2
            groups.append(grp)
            limit_of[grp['id']] = limit
            for m in range(1, PER_GROUP + 1):
                body = stack._build_server(
                    name='vnf-%d-%d' % (g, m), flavor_id=flavor['id'],
                    networks='none', host='host1')
                if limit != 1:
                    body['metadata'] = {
                        'ha_max_concurrent_moves': str(limit)}
                posted.append((grp['id'], stack.admin_api.post_server({
                    'server': body,
                    'os:scheduler_hints': {'group': grp['id']}})))
        members = {}
        for gid, s in posted:
            s = stack._wait_for_state_change(s, 'ACTIVE')
            assert stack.host_of(s) == 'host1', s['name']
            members.setdefault(gid, set()).add(s['id'])
        t_setup = time.monotonic() - t_setup

        db = os.path.join(tempfile.mkdtemp(prefix='bench-drain-'), 'j.db')
        url = 'sqlite:///' + db
        journal_mod.upgrade(url)
        journal = journal_mod.Journal(url)
        eng = engine_mod.Engine(
            nova_ops.NovaOps(stack.nova_client()), journal,
            limits=policy.Limits(max_concurrent_moves=GLOBAL_LIMIT))
        api_time = {}
        if args.profile:
            import functools

            def timed(name, fn):
                @functools.wraps(fn)
                def wrapper(*a, **kw):
                    t = time.monotonic()
                    try:
                        return fn(*a, **kw)
                    finally:
                        n, tot = api_time.get(name, (0, 0.0))
                        api_time[name] = (n + 1, tot + time.monotonic() - t)
                return wrapper
            for name in ('compute_service', 'servers_on', 'server',
                         'server_ids_on', 'confirm_resize',
                         'server_groups', 'live_migrate', 'migrations',
                         'migrations_from', 'action_error'):
                if hasattr(eng.nova, name):
                    setattr(eng.nova, name, timed(name,
                                                  getattr(eng.nova, name)))
            for name in ('list_drain_items', 'transition_drain_item',
                         'drain_progress', 'get_drain', 'list_drains'):
                setattr(journal, name, timed('journal.' + name,
                                             getattr(journal, name)))
        t0 = time.monotonic()
        drain = eng.start('host1', reason='benchmark')
        passes = []

        def on_pass(drain, changed, last=[time.monotonic()]):
            now = time.monotonic()
            passes.append(now - last[0])
            last[0] = now

        drain = eng.wait(drain.id, interval=args.interval, timeout=600,
                         on_pass=on_pass)
        total = time.monotonic() - t0
        counts = journal.drain_progress(drain.id)

        ok = drain.state == 'ready' and counts['moved'] == GROUPS * PER_GROUP
        print('drain of %d instances (%d groups x %d) off host1 to %d '
              'hosts, global limit %d, move hold %.2f s'
              % (GROUPS * PER_GROUP, GROUPS, PER_GROUP, len(HOSTS) - 1,
                 GLOBAL_LIMIT, args.hold))
        print('setup (stack + boots): %.1f s' % t_setup)
        print()
        print('%-8s %7s %5s %13s  %s' % ('group', 'members', 'limit',
                                         'max observed', 'verdict'))
        for grp in groups:
            limit = limit_of[grp['id']]
            seen = rec.max_concurrency(members[grp['id']])
            verdict = 'ok' if seen == limit else (
                'EXCEEDED' if seen > limit else 'below limit')
            ok = ok and seen <= limit
            print('%-8s %7d %5d %13d  %s' % (grp['name'], PER_GROUP, limit,
                                             seen, verdict))
        overall = rec.max_concurrency()
        ok = ok and overall <= GLOBAL_LIMIT
        print('%-8s %7d %5d %13d  %s' % ('all', GROUPS * PER_GROUP,
                                         GLOBAL_LIMIT, overall,
                                         'ok' if overall <= GLOBAL_LIMIT
                                         else 'EXCEEDED'))
        print()
        print('drain state %s: moved %d, blocked %d; total time %.1f s '
              '(%.2f s per instance)' % (drain.state, counts['moved'],
                                         counts['blocked'], total,
                                         total / (GROUPS * PER_GROUP)))
        print('%d reconcile passes, %.2f s each on average (%.1f s sleep '
              'included); the first %d moves started %.2f s after start'
              % (len(passes), sum(passes) / max(len(passes), 1),
                 args.interval,
                 GLOBAL_LIMIT, first_wave(rec, t0, GLOBAL_LIMIT)))
        for name, (n, tot) in sorted(api_time.items(),
                                     key=lambda kv: -kv[1][1]):
            print('  %-32s %5d calls %7.2f s (%.3f s each)'
                  % (name, n, tot, tot / n))
        return 0 if ok else 1
    finally:
        stack.doCleanups()


if __name__ == '__main__':
    sys.exit(main())
