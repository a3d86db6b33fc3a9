"""Recovery placement (nova_ha.evacuator.placement_plan) in the real
reconcile loop (tests/unit/evacuator/test_flapping.py's harness), with a
Nova stand-in that records the host each evacuation asked for and refuses
the hosts it is told to (as nova-scheduler does when a filter rejects a
requested destination: the migration fails, the instance goes to ERROR
with "No valid host"). Against the real Nova scheduler:
tests/functional/test_recovery_placement.py.
"""

import collections
import datetime
import math
import types

import pytest

from nova_ha.evacuator import placement_plan
from tests.unit.evacuator import test_flapping as harness

NO_VALID_HOST = 'No valid host was found. There are not enough hosts.'
RACKS = {'c1': 'r1', 'c2': 'r1', 'c3': 'r2', 'c4': 'r3'}


class PlacingOps(harness.Ops):
    """Every evacuation ends at once: done on the requested host (or on
    ``default`` when none was asked for), unless that host is in
    ``refuse`` (then error, No valid host)."""

    def __init__(self, count=20, refuse=(), default='c2', refuse_any=False,
                 racks=None, fault_lags=False):
        self.uuids = ['u%02d' % i for i in range(count)]
        super().__init__(harness.HOSTS, {'c1': self.uuids})
        self.refuse = set(refuse)
        self.default = default
        self.refuse_any = refuse_any
        # Nova shows the ERROR status before the fault is readable.
        self.fault_lags = fault_lags
        self.racks = racks
        self.asked = []          # (uuid, host or None)

    def aggregates(self):
        if not self.racks:
            return []
        by_rack = collections.defaultdict(list)
        for host, rack in self.racks.items():
            by_rack[rack].append(host)
        return [{'name': 'rack-' + r, 'hosts': hosts,
                 'metadata': {'ha:rack': r}}
                for r, hosts in sorted(by_rack.items())]

    def evacuate(self, uuid, host=None):
        self.calls.append(('evacuate', uuid))
        self.asked.append((uuid, host))

    def _outcome(self, uuid):
        host = [h for u, h in self.asked if u == uuid][-1]
        refused = (host in self.refuse) or (host is None and self.refuse_any)
        return host or self.default, refused

    def evacuations_since(self, since, hosts):
        self.calls.append(('evacuations_since', tuple(sorted(hosts))))
        now = datetime.datetime.now(datetime.timezone.utc).strftime(
            '%Y-%m-%dT%H:%M:%S.%f')
        out = {}
        for n, (uuid, _) in enumerate(self.asked, 1):
            dest, refused = self._outcome(uuid)
            out[uuid] = types.SimpleNamespace(
                id=n, instance_uuid=uuid, created_at=now,
                source_compute='c1', dest_compute=None if refused else dest,
                status='error' if refused else 'done')
        return {'c1': out}

    def server(self, uuid):
        self.calls.append(('server', uuid))
        dest, refused = self._outcome(uuid)
        # Nova shows a recovered server ACTIVE on its new host (an item is
        # done only then); a refused one stays on the failed host.
        return types.SimpleNamespace(**{
            'id': uuid, 'status': 'ERROR' if refused else 'ACTIVE',
            'OS-EXT-SRV-ATTR:host': 'c1' if refused else dest,
            'OS-EXT-STS:task_state': None,
            'fault': {'message': NO_VALID_HOST if refused
                      and not self.fault_lags else ''}})


def run(tmp_path, ops, **overrides):
    cloud = harness.Cloud(tmp_path)
    cloud.ev.ops = cloud.ops = ops
    cloud.ev.opts.nova_poll_interval = 0.0
    for name, value in overrides.items():
        cloud.ev.conf.set_override(name, value, group='recovery_placement')
    cloud.ev.refresh_hosts(force=True)
    rec = cloud.down('c1')
    cloud.settle_fence('c1')
    for _ in range(30):
        cloud.tick(0.3, beat=harness.others('c1'))
        cloud.settle_fence('c1')
        items = cloud.journal.list_recovery_items(rec.id)
        if all(i.state in ('done', 'error', 'no_valid_host')
               for i in items):
            break
    return cloud, rec, items


@pytest.fixture
def closing():
    clouds = []
    yield clouds.append
    for c in clouds:
        c.close()


def test_burst_is_spread_evenly_over_eligible_hosts(tmp_path, closing):
    ops = PlacingOps(count=20)
    cloud, rec, items = run(tmp_path, ops)
    closing(cloud)
    assert {i.state for i in items} == {'done'}
    eligible = [h for h in harness.HOSTS if h != 'c1']
    spread = placement_plan.spread(items)
    assert set(spread) == set(eligible)
    assert max(spread.values()) <= math.ceil(20 / len(eligible))
    assert all(host in eligible for _, host in ops.asked)
    # The timeline says where each evacuation was asked to go.
    details = [t.detail for t in cloud.journal.timeline(rec.id)
               if t.step.startswith('evacuate:')]
    assert len(details) == 20
    assert all('(planned)' in d for d in details), details


def test_max_per_host_leaves_the_rest_to_the_scheduler(tmp_path, closing):
    ops = PlacingOps(count=12)
    cloud, rec, items = run(tmp_path, ops, max_per_host=2)
    closing(cloud)
    assert {i.state for i in items} == {'done'}
    planned = collections.Counter(h for _, h in ops.asked if h)
    assert planned == {'c2': 2, 'c3': 2, 'c4': 2}
    assert len([1 for _, h in ops.asked if h is None]) == 6


def test_plan_off_asks_for_no_host(tmp_path, closing):
    ops = PlacingOps(count=5)
    cloud, rec, items = run(tmp_path, ops, plan_targets=False)
    closing(cloud)
    assert {i.state for i in items} == {'done'}
    assert [h for _, h in ops.asked] == [None] * 5


def test_refused_plan_is_evacuated_again_with_no_host(tmp_path, closing):
    """The scheduler refuses every planned host (a rule the plan broke):
    each instance is evacuated again with no host and recovered; no
    NO_VALID_HOST alarm, since the scheduler's own choice succeeded."""
    ops = PlacingOps(count=6, refuse={'c2', 'c3', 'c4'}, default='c4')
    cloud, rec, items = run(tmp_path, ops)
    closing(cloud)
    assert {(i.state, i.dest_host) for i in items} == {('done', 'c4')}
    for uuid in ops.uuids:
        asked = [h for u, h in ops.asked if u == uuid]
        assert asked[0] in ('c2', 'c3', 'c4') and asked[1:] == [None], asked
    assert not cloud.journal.list_alarms(types=['NO_VALID_HOST'])
    steps = {t.step: t.detail for t in cloud.journal.timeline(rec.id)}
    assert '(planned)' in steps['evacuate:%s' % ops.uuids[0]]
    assert '(planned)' not in steps['evacuate:%s#2' % ops.uuids[0]]


def test_refused_plan_known_by_its_migration_status(tmp_path, closing):
    """The server is in ERROR with no fault readable yet (Nova writes the
    status first): the migration's 'error' (set by nova-conductor only when
    scheduling failed) is enough to know the plan was refused (soak run:
    the item went through the generic retry instead)."""
    ops = PlacingOps(count=3, refuse={'c2', 'c3', 'c4'}, default='c4',
                     fault_lags=True)
    cloud, rec, items = run(tmp_path, ops)
    closing(cloud)
    assert {(i.state, i.dest_host) for i in items} == {('done', 'c4')}
    assert all(i.last_error.startswith('planned host refused: migration')
               for i in items), [i.last_error for i in items]


def test_no_valid_host_without_a_plan_still_alarms(tmp_path, closing):
    ops = PlacingOps(count=2, refuse={'c2', 'c3', 'c4'}, refuse_any=True)
    cloud, rec, items = run(tmp_path, ops)
    closing(cloud)
    assert {i.state for i in items} == {'no_valid_host'}
    assert all([h for u, h in ops.asked if u == i.instance_uuid][1:]
               == [None] for i in items)
    assert len(cloud.journal.list_alarms(types=['NO_VALID_HOST'])) == 2


def test_refusal_after_a_leader_change_read_from_the_journal(tmp_path,
                                                             closing):
    """A new leader's planner has no memory of the plan: the evacuate
    step in the journal says it was planned."""
    ops = PlacingOps(count=1)
    cloud, rec, items = run(tmp_path, ops)
    closing(cloud)
    (item,) = items
    fresh = placement_plan.Planner(cloud.ev)
    assert fresh.refused(rec, item)
    item2 = types.SimpleNamespace(instance_uuid=item.instance_uuid,
                                  attempts=2)
    assert not fresh.refused(rec, item2)


def test_refusal_of_a_call_its_leader_never_recorded(tmp_path, closing):
    """kill -9 of the leader between the evacuate call and its journal
    step (CI: test_leader_killed_at_random_moments, an instance left in
    no_valid_host): the new leader cannot tell whether the first attempt
    named a host, so a refusal of it is evacuated again with no host; a
    later attempt (never planned) is not."""
    ops = PlacingOps(count=1)
    cloud, rec, items = run(tmp_path, ops)
    closing(cloud)
    (item,) = items
    # As if the leader died before writing the step.
    cloud.journal.forget_steps(rec.id, ['evacuate:%s' % item.instance_uuid],
                               epoch=cloud.ev.epoch)
    other = rec
    fresh = placement_plan.Planner(cloud.ev)
    first = types.SimpleNamespace(instance_uuid=item.instance_uuid,
                                  attempts=1)
    assert fresh.refused(other, first)
    second = types.SimpleNamespace(instance_uuid=item.instance_uuid,
                                   attempts=2)
    assert not fresh.refused(other, second)
    cloud.ev.conf.set_override('plan_targets', False,
                               group='recovery_placement')
    try:
        assert not placement_plan.Planner(cloud.ev).refused(other, first)
    finally:
        cloud.ev.conf.clear_override('plan_targets',
                                     group='recovery_placement')


# -- the plan's own rules (a pure planner on a stand-in engine) ----------------

class FakeJournal:
    def __init__(self, items, states=None):
        self.items = items
        self.states = states or {}

    def host_state_map(self):
        return self.states

    def list_recoveries(self, states=None):
        return [types.SimpleNamespace(id=1)]

    def list_recovery_items(self, recovery_id=None, states=None,
                            server_group=None):
        if server_group is None:
            return self.items
        return [i for i in self.items + self.closed
                if i.server_group == server_group
                and (states is None or i.state in states)]

    # Items of recoveries closed since (no longer listed as open).
    closed = []


def item(uuid, sal=None, group=None, attempts=0):
    return types.SimpleNamespace(instance_uuid=uuid, sal=sal,
                                 server_group=group, attempts=attempts,
                                 last_error=None,
                                 priority=0, state='pending', dest_host=None)


def planner_for(items, hosts, aggregates, groups=None, servers=None,
                states=None, services=None):
    import nova_ha.conf
    from oslo_config import cfg
    from nova_ha import topology
    conf = cfg.ConfigOpts()
    nova_ha.conf.register_opts(conf)
    conf([], project='nova-ha-test')
    nova = types.SimpleNamespace(
        server_groups=types.SimpleNamespace(list=lambda **kw: [
            types.SimpleNamespace(id=g, members=m)
            for g, m in (groups or {}).items()]),
        servers=types.SimpleNamespace(list=lambda **kw: [
            types.SimpleNamespace(**{'id': u, 'OS-EXT-SRV-ATTR:host': h})
            for u, h in (servers or {}).items()]))
    engine = types.SimpleNamespace(
        conf=conf, journal=FakeJournal(items, states),
        topology=topology.Topology.from_aggregates(
            aggregates, hosts=hosts, levels=('host', 'rack')),
        services=services or {h: types.SimpleNamespace(
            state='up', status='enabled', forced_down=False)
            for h in hosts},
        ops=types.SimpleNamespace(nova=nova))
    return placement_plan.Planner(engine)


def test_plan_keeps_sal_and_avoids_sibling_rack_and_failed_hosts():
    hosts = ['h1', 'h2', 'h3', 'h4', 'h5', 'h6']
    aggs = [{'name': 'r1', 'hosts': ['h1', 'h2'],
             'metadata': {'ha:rack': 'r1'}},
            {'name': 'r2', 'hosts': ['h3', 'h4'],
             'metadata': {'ha:rack': 'r2', 'ha:sal': '1'}},
            {'name': 'r3', 'hosts': ['h5', 'h6'],
             'metadata': {'ha:rack': 'r3'}}]
    items = [item('sal1', sal=1), item('member', group='g'),
             item('plain')]
    p = planner_for(items, hosts, aggs, groups={'g': ['member', 'sib']},
                    servers={'sib': 'h5', 'member': 'h1'},
                    states={'h1': types.SimpleNamespace(state='FENCED')},
                    services=dict({h: types.SimpleNamespace(
                        state='up', status='enabled', forced_down=False)
                        for h in hosts}, h6=types.SimpleNamespace(
                        state='down', status='enabled', forced_down=False)))
    out = p.targets(types.SimpleNamespace(host='h1'), items)
    assert out['sal1'] in ('h3', 'h4')            # SAL1-certified only
    assert out['member'] in ('h2', 'h3', 'h4')    # not the sibling's rack
    assert out['plain'] not in ('h1', 'h6')       # failed / down hosts
    assert len(set(out.values())) == 3            # spread


def test_sibling_moved_by_a_just_closed_recovery_is_avoided():
    """Two hosts fail one after the other, one group member on each. The
    first member's recovery closes (journal done on h5) before the second
    one's plan, inside member_cache_seconds: the plan must see the member
    on h5 (the journal), not on its failed host (the cached server list),
    or it sends the second member next to it and the scheduler refuses.
    (CI: test_group_members_on_failed_hosts_all_recovered, attempts 2.)"""
    hosts = ['h1', 'h2', 'h3', 'h4', 'h5', 'h6']
    aggs = [{'name': 'r%d' % r, 'hosts': ['h%d' % (2 * r - 1), 'h%d' % (2 * r)],
             'metadata': {'ha:rack': 'r%d' % r}} for r in (1, 2, 3)]
    up = types.SimpleNamespace(state='up', status='enabled',
                               forced_down=False)
    down = types.SimpleNamespace(state='down', status='enabled',
                                 forced_down=False)
    first = item('a', group='g')
    p = planner_for([first], hosts, aggs, groups={'g': ['a', 'b1']},
                    servers={'a': 'h1', 'b1': 'h3'},
                    states={'h1': types.SimpleNamespace(state='FENCED')},
                    services={h: (up if h == 'h5' else down) for h in hosts})
    assert p.targets(types.SimpleNamespace(host='h1'), [first]) == {
        'a': 'h5'}
    # a is done on h5 and its recovery closed; h3 fails, b7 is next. The
    # server list read for a's plan (a on h1) is still within the cache.
    done = types.SimpleNamespace(**dict(vars(first), state='done',
                                        attempts=1, dest_host='h5',
                                        finished_at=datetime.datetime.now(
                                            datetime.timezone.utc)))
    second = item('b1', group='g')
    p.engine.journal = FakeJournal([second], {
        'h1': types.SimpleNamespace(state='RECOVERED'),
        'h3': types.SimpleNamespace(state='FENCED')})
    p.engine.journal.closed = [done]
    p.engine.services = {h: (down if h in ('h1', 'h3') else up)
                         for h in hosts}
    out = p.targets(types.SimpleNamespace(host='h3'), [second])
    assert out['b1'] in ('h2', 'h4'), out     # not a's rack r3


def test_hosts_placement_marks_disabled_are_not_planned():
    """A host enabled again keeps COMPUTE_STATUS_DISABLED on its placement
    provider until its nova-compute syncs it; nova's scheduler refuses it
    meanwhile, so the plan leaves it out (and plans without the trait
    when placement cannot be read)."""
    hosts = ['h1', 'h2', 'h3']
    items = [item('a'), item('b'), item('c')]
    p = planner_for(items, hosts, [])
    p.disabled_source = lambda: {'h2'}
    out = p.targets(types.SimpleNamespace(host='h9'), items)
    assert set(out.values()) == {'h1', 'h3'}, out

    def broken():
        raise IOError('placement unreachable')
    q = planner_for(items, hosts, [])
    q.disabled_source = broken
    out = q.targets(types.SimpleNamespace(host='h9'), items)
    assert set(out.values()) == {'h1', 'h2', 'h3'}, out


def test_retries_are_not_planned():
    items = [item('a', attempts=1)]
    p = planner_for(items, ['h1', 'h2'], [])
    assert p.targets(types.SimpleNamespace(host='h1'), items) == {}


def test_a_call_that_never_reached_nova_is_planned_again():
    """Its leader died between the journal and the call (kill -9 soak):
    the re-issue is a first attempt for Nova, so it is planned; a retry
    after Nova answered is not."""
    again = item('a', attempts=1)
    again.last_error = placement_plan.NEVER_REACHED_NOVA + ' sent at x'
    after_nova = item('b', attempts=1)
    after_nova.last_error = 'no evacuation record 300 s after Nova ' \
        'accepted the call'
    p = planner_for([again, after_nova], ['h1', 'h2'], [])
    out = p.targets(types.SimpleNamespace(host='h9'), [again, after_nova])
    assert out == {'a': out['a']} and out['a'] in ('h1', 'h2'), out


def test_no_host_when_the_sibling_rule_leaves_none():
    """The only rack left holds the sibling: the plan avoids its host at
    least, and gives up (no host) when that leaves nothing."""
    aggs = [{'name': 'r1', 'hosts': ['h1', 'h2'],
             'metadata': {'ha:rack': 'r1'}}]
    items = [item('m', group='g')]
    p = planner_for(items, ['h1', 'h2'], aggs, groups={'g': ['m', 's']},
                    servers={'s': 'h2'},
                    states={'h1': types.SimpleNamespace(state='FENCED')})
    assert p.targets(types.SimpleNamespace(host='h1'), items) == {'m': None}


def test_recovery_show_reports_the_spread(tmp_path, closing):
    from nova_ha.journal import cli as journal_cli
    ops = PlacingOps(count=9)
    cloud, rec, items = run(tmp_path, ops)
    closing(cloud)
    shown = journal_cli.get_recovery(cloud.journal, rec.id)
    text = journal_cli.format_recovery(*shown)
    assert ('spread (instances recovered per host): c2 3, c3 3, c4 3  '
            '(most on one host: 3, over 3 host(s))') in text, text
    record = journal_cli.recovery_record(*shown)
    assert record['Spread'] == {'c2': 3, 'c3': 3, 'c4': 3}
