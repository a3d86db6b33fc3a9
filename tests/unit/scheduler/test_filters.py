"""SALFilter, FaultDomainAntiAffinityFilter, MigrationPolicyFilter, weigher.

HostStates are nova's scheduler fakes; nova's databases are replaced by
lookup.MemoryLookup (the functional tests use the real ones).
"""

import pytest
from oslo_config import cfg
from oslo_config import fixture as cfg_fixture
from oslo_utils import uuidutils

from nova_ha import topology
from nova_ha.scheduler import lookup
from nova_ha.scheduler import request
from nova_ha.scheduler import weighers
from nova_ha.scheduler.filters import fault_domain
from nova_ha.scheduler.filters import migration_policy
from nova_ha.scheduler.filters import sal as sal_filter
from tests.unit.scheduler.conftest import agg, host_state, names, \
    rack_hosts, spec


@pytest.fixture
def conf():
    fix = cfg_fixture.Config(cfg.CONF)
    fix.setUp()
    yield fix
    fix.cleanUp()


def uuids(n):
    return [uuidutils.generate_uuid() for _ in range(n)]


def place(db, hosts, members_by_host):
    """Record in the fake DB where members run; give it the topology."""
    db.topology = topology.Topology.from_host_states(
        hosts, levels=topology.DEFAULT_LEVELS)
    for host, members in members_by_host.items():
        for m in members:
            db.hosts[m] = host


# -- SALFilter ---------------------------------------------------------------

def sal_hosts():
    s1 = agg('sal1', ['h1'], ha__sal='1')
    s2 = agg('sal2', ['h2'], ha__sal='2')
    s3 = agg('sal3', ['h3'], ha__sal='3')
    return [host_state('h1', [s1]), host_state('h2', [s2]),
            host_state('h3', [s3]), host_state('h4')]


@pytest.mark.parametrize('sal, expected', [
    ('1', ['h1']), ('2', ['h1', 'h2']), ('3', ['h1', 'h2', 'h3'])])
def test_sal_certified_for_level_and_weaker(db, sal, expected):
    f = sal_filter.SALFilter()
    got = f.filter_all(sal_hosts(), spec(extra_specs={'ha:sal': sal}))
    assert names(got) == expected


def test_sal_flavor_without_sal_any_host_unless_exclusive(db, conf):
    f = sal_filter.SALFilter()
    assert names(f.filter_all(sal_hosts(), spec())) == \
        ['h1', 'h2', 'h3', 'h4']
    conf.config(sal_hosts_exclusive=True, group='ha_scheduler')
    assert names(f.filter_all(sal_hosts(), spec())) == ['h4']
    assert names(f.filter_all(sal_hosts(),
                              spec(extra_specs={'ha:sal': '2'}))) == \
        ['h1', 'h2']


def test_sal_host_passes_single_host(db):
    f = sal_filter.SALFilter()
    h1, h2, h3, h4 = sal_hosts()
    s = spec(extra_specs={'ha:sal': '1'})
    assert f.host_passes(h1, s) and not f.host_passes(h4, s)


@pytest.mark.parametrize('value', ['7', 'gold', '', '1.0'])
def test_sal_bad_flavor_value_rejects_all_with_error(db, errors, value):
    f = sal_filter.SALFilter()
    s = spec(extra_specs={'ha:sal': value})
    assert f.filter_all(sal_hosts(), s) == []
    [msg] = errors()
    assert 'flavor extra spec ha:sal=%r is invalid' % value in msg
    assert 'must be one of 1, 2, 3' in msg and s.instance_uuid in msg


# -- FaultDomainAntiAffinityFilter: hard ------------------------------------

def test_hard_rack_rule_rejects_racks_holding_a_member(db, errors):
    hosts = rack_hosts(racks=4, per_rack=2)
    m = uuids(2)
    place(db, hosts, {'h1': [m[0]], 'h4': [m[1]]})     # racks r1, r2
    s = spec({'ha_anti_affinity_level': 'rack'}, members=m,
             group_hosts=['h1', 'h4'])
    got = fault_domain.FaultDomainAntiAffinityFilter().filter_all(hosts, s)
    assert names(got) == ['h5', 'h6', 'h7', 'h8']
    assert errors() == []


def test_hard_max_per_domain(db):
    hosts = rack_hosts(racks=3, per_rack=2)
    m = uuids(3)
    place(db, hosts, {'h1': m[:2], 'h3': [m[2]]})
    s = spec({'ha_anti_affinity_level': 'rack', 'ha_max_per_domain': 2},
             members=m)
    got = fault_domain.FaultDomainAntiAffinityFilter().filter_all(hosts, s)
    assert names(got) == ['h3', 'h4', 'h5', 'h6']


@pytest.mark.parametrize('level, expected', [
    ('host', ['h2', 'h3', 'h4', 'h5', 'h6', 'h7', 'h8']),
    ('power_domain', ['h5', 'h6', 'h7', 'h8']),
    ('availability_zone', []),
])
def test_other_levels(db, level, expected):
    pdu1 = agg('pdu1', ['h1', 'h2', 'h3', 'h4'], ha__power_domain='pdu1')
    pdu2 = agg('pdu2', ['h5', 'h6', 'h7', 'h8'], ha__power_domain='pdu2')
    hosts = rack_hosts(racks=4, per_rack=2)
    for hs in hosts:
        hs.aggregates = hs.aggregates + [pdu1 if hs.host in pdu1.hosts
                                         else pdu2]
    m = uuids(1)
    place(db, hosts, {'h1': m})
    s = spec({'ha_anti_affinity_level': level}, members=m)
    got = fault_domain.FaultDomainAntiAffinityFilter().filter_all(hosts, s)
    assert names(got) == expected     # every host is in AZ 'nova'


def test_host_without_domain_fails_hard_rule_with_debug_log(db, errors):
    hosts = rack_hosts(racks=2, per_rack=1) + [host_state('lonely')]
    place(db, hosts, {})
    s = spec({'ha_anti_affinity_level': 'rack'}, members=uuids(1))
    got = fault_domain.FaultDomainAntiAffinityFilter().filter_all(hosts, s)
    assert names(got) == ['h1', 'h2']
    debug = '\n'.join(errors(level=10))
    assert 'hosts lonely are in no single rack domain' in debug
    assert 'ha:rack' in debug


def test_host_in_two_racks_fails_hard_rule_and_is_logged(db, errors):
    hosts = rack_hosts(racks=2, per_rack=1)
    hosts[1].aggregates = hosts[1].aggregates + [
        agg('rack-x', ['h2'], ha__rack='r9')]
    place(db, hosts, {})
    s = spec({'ha_anti_affinity_level': 'rack'}, members=uuids(1))
    got = fault_domain.FaultDomainAntiAffinityFilter().filter_all(hosts, s)
    assert names(got) == ['h1']
    assert any('host h2 is in 2 rack domains' in e for e in errors())


def test_multi_create_spreads_within_one_request(db):
    """nova appends each pick to instance_group.hosts between instances."""
    hosts = rack_hosts(racks=4, per_rack=2)
    new = uuids(4)
    place(db, hosts, {})
    s = spec({'ha_anti_affinity_level': 'rack'}, members=new,
             instance_uuid=new[0])
    f = fault_domain.FaultDomainAntiAffinityFilter()
    picked = []
    for i in range(4):
        s.instance_uuid = new[i]
        got = f.filter_all(hosts, s)
        assert len(got) == 8 - 2 * i
        picked.append(got[0].host)
        s.instance_group.hosts.append(got[0].host)
    racks = {db.topology.domain(h, 'rack') for h in picked}
    assert racks == {'r1', 'r2', 'r3', 'r4'}
    s.instance_uuid = uuids(1)[0]
    assert f.filter_all(hosts, s) == []        # a 5th in the same request
    assert db.calls['instances'] == 1          # one look-up per request


def test_fifth_member_refused_when_four_racks_hold_one(db):
    hosts = rack_hosts(racks=4, per_rack=2)
    m = uuids(4)
    place(db, hosts, {'h1': [m[0]], 'h3': [m[1]], 'h5': [m[2]],
                      'h7': [m[3]]})
    fifth = uuids(1)[0]
    s = spec({'ha_anti_affinity_level': 'rack'}, members=m + [fifth],
             instance_uuid=fifth)
    assert fault_domain.FaultDomainAntiAffinityFilter().filter_all(
        hosts, s) == []


def test_moved_member_does_not_count_against_its_own_domain(db):
    hosts = rack_hosts(racks=3, per_rack=2)
    m = uuids(3)
    place(db, hosts, {'h1': [m[0]], 'h3': [m[1]], 'h5': [m[2]]})
    # Moving m[0] (on h1, rack r1): r1 is free for it, r2 and r3 are not.
    s = spec({'ha_anti_affinity_level': 'rack'}, members=m,
             instance_uuid=m[0])
    got = fault_domain.FaultDomainAntiAffinityFilter().filter_all(hosts, s)
    assert names(got) == ['h1', 'h2']


def test_member_in_a_move_counts_at_both_ends(db):
    hosts = rack_hosts(racks=4, per_rack=1)
    m = uuids(2)
    place(db, hosts, {'h1': [m[0]]})
    db.migrations.append(lookup.Migration(
        m[0], 'live-migration', 'running', 'h1', 'h2', None, 1))
    s = spec({'ha_anti_affinity_level': 'rack'}, members=m,
             instance_uuid=m[1])
    got = fault_domain.FaultDomainAntiAffinityFilter().filter_all(hosts, s)
    assert names(got) == ['h3', 'h4']


def test_vexxhost_different_failure_domain(db):
    fd = [agg('fd%d' % i, ['h%d' % i], failure_domain='fd%d' % (i % 2))
          for i in range(1, 5)]
    hosts = [host_state('h%d' % i, [fd[i - 1]]) for i in range(1, 5)]
    m = uuids(1)
    place(db, hosts, {'h1': m})        # h1 is in fd1, like h3
    s = spec({'different_failure_domain': 'true'}, members=m)
    got = fault_domain.FaultDomainAntiAffinityFilter().filter_all(hosts, s)
    assert names(got) == ['h2', 'h4']
    s = spec({'different_failure_domain': 'false'}, members=m)
    assert len(fault_domain.FaultDomainAntiAffinityFilter().filter_all(
        hosts, s)) == 4


def test_no_hint_or_soft_rule_passes_everything(db):
    hosts = rack_hosts(racks=2, per_rack=1)
    m = uuids(2)
    place(db, hosts, {'h1': [m[0]], 'h2': [m[1]]})
    f = fault_domain.FaultDomainAntiAffinityFilter()
    assert len(f.filter_all(hosts, spec(members=m))) == 2
    s = spec({'ha_anti_affinity_level': 'rack', 'ha_anti_affinity': 'soft'},
             members=m)
    assert len(f.filter_all(hosts, s)) == 2
    assert db.calls['instances'] == 0     # no database work without a rule


def test_rule_without_server_group_is_ignored_with_warning(db, errors):
    hosts = rack_hosts(racks=2, per_rack=1)
    s = spec({'ha_anti_affinity_level': 'rack'}, group=False)
    got = fault_domain.FaultDomainAntiAffinityFilter().filter_all(hosts, s)
    assert len(got) == 2
    assert any('no server group' in w for w in errors(level=30))


def test_rebuild_is_not_filtered(db):
    hosts = rack_hosts(racks=1, per_rack=1)
    m = uuids(2)
    place(db, hosts, {'h1': m})
    s = spec({'ha_anti_affinity_level': 'rack'}, members=m)
    s.scheduler_hints['_nova_check_type'] = ['rebuild']
    assert len(fault_domain.FaultDomainAntiAffinityFilter().filter_all(
        hosts, s)) == 1


@pytest.mark.parametrize('hints, message', [
    ({'ha_anti_affinity_level': 'galaxy'},
     "hint ha_anti_affinity_level='galaxy' is invalid: must be one of host, "
     "rack, power_domain, availability_zone, failure_domain"),
    ({'ha_anti_affinity_level': 'rack', 'ha_max_per_domain': '-1'},
     "hint ha_max_per_domain='-1' is invalid: must be an integer >= 1"),
    ({'ha_anti_affinity_level': 'rack', 'ha_max_per_domain': 'two'},
     "hint ha_max_per_domain='two' is invalid"),
    ({'ha_anti_affinity_level': 'rack', 'ha_max_per_domain': '0'},
     "hint ha_max_per_domain='0' is invalid"),
    ({'ha_anti_affinity_level': 'rack', 'ha_anti_affinity': 'maybe'},
     "hint ha_anti_affinity='maybe' is invalid: must be one of hard, soft"),
    ({'ha_anti_affinity': 'soft'},
     "hint ha_anti_affinity='soft' is invalid: needs the hint "
     "ha_anti_affinity_level"),
    ({'different_failure_domain': 'perhaps'},
     "hint different_failure_domain='perhaps' is invalid: must be true or "
     "false"),
])
def test_bad_hints_reject_all_with_error(db, errors, hints, message):
    hosts = rack_hosts(racks=2, per_rack=1)
    s = spec(hints, members=uuids(1))
    f = fault_domain.FaultDomainAntiAffinityFilter()
    assert f.filter_all(hosts, s) == []
    [msg] = errors()
    assert message in msg
    assert 'FaultDomainAntiAffinityFilter' in msg and s.instance_uuid in msg
    # The weigher does not raise either.
    objs = [type('W', (), {'obj': h})() for h in hosts]
    assert weighers.FaultDomainSpreadWeigher().weigh_objects(objs, s) == \
        [0.0, 0.0]


def test_hint_given_twice_is_bad_input(db, errors):
    s = spec({'ha_anti_affinity_level': 'rack'}, members=uuids(1))
    s.scheduler_hints['ha_anti_affinity_level'] = ['rack', 'host']
    assert fault_domain.FaultDomainAntiAffinityFilter().filter_all(
        rack_hosts(2, 1), s) == []
    assert 'give it once' in errors()[0]


def test_bad_levels_config_rejects_all(db, errors, conf):
    conf.config(levels=['host', 'rack', 'rack'], group='topology')
    s = spec({'ha_anti_affinity_level': 'rack'}, members=uuids(1))
    assert fault_domain.FaultDomainAntiAffinityFilter().filter_all(
        rack_hosts(2, 1), s) == []
    assert "[topology] levels names 'rack' twice" in errors()[0]


def test_bad_config_values_never_raise(db, errors, conf, tmp_path):
    """A bad value in nova.conf: an ERROR naming the option, no crash."""
    f = tmp_path / 'nova.conf'
    f.write_text('[topology]\nlevels = host,Rack\n'
                 '[ha_scheduler]\nspread_weight_multiplier = lots\n')
    conf.conf(args=['--config-file', str(f)])
    s = spec({'ha_anti_affinity_level': 'rack'}, members=uuids(1))
    assert fault_domain.FaultDomainAntiAffinityFilter().filter_all(
        rack_hosts(2, 1), s) == []
    assert 'bad [topology] levels' in errors()[0]
    w = weighers.FaultDomainSpreadWeigher()
    assert w.weight_multiplier(None) == 10.0
    assert 'bad [ha_scheduler] spread_weight_multiplier' in errors()[-1]


def test_custom_level(db, conf):
    conf.config(levels=['host', 'row'], group='topology')
    rows = [agg('row%d' % i, ha__row='row%d' % i) for i in (1, 2)]
    hosts = [host_state('h1', [rows[0]]), host_state('h2', [rows[0]]),
             host_state('h3', [rows[1]])]
    m = uuids(1)
    db.hosts[m[0]] = 'h1'
    db.topology = topology.Topology.from_host_states(
        hosts, levels=('host', 'row'))
    s = spec({'ha_anti_affinity_level': 'row'}, members=m)
    assert names(fault_domain.FaultDomainAntiAffinityFilter().filter_all(
        hosts, s)) == ['h3']


def test_lookup_failure_rejects_all(db, errors):
    db.fail = 'database is down'
    s = spec({'ha_anti_affinity_level': 'rack'}, members=uuids(1))
    assert fault_domain.FaultDomainAntiAffinityFilter().filter_all(
        rack_hosts(2, 1), s) == []
    assert 'database is down' in errors()[0]


def test_member_hosts_not_among_candidates_still_count(db):
    """A member on a full or down host: its rack counts all the same."""
    hosts = rack_hosts(racks=3, per_rack=2)
    m = uuids(1)
    place(db, hosts, {'h2': m})
    candidates = [h for h in hosts if h.host != 'h2']
    s = spec({'ha_anti_affinity_level': 'rack'}, members=m)
    assert names(fault_domain.FaultDomainAntiAffinityFilter().filter_all(
        candidates, s)) == ['h3', 'h4', 'h5', 'h6']


# -- FaultDomainSpreadWeigher ------------------------------------------------

def test_weigher_prefers_least_loaded_domain(db):
    hosts = rack_hosts(racks=3, per_rack=1) + [host_state('lonely')]
    m = uuids(3)
    place(db, hosts, {'h1': m[:2], 'h2': [m[2]]})
    s = spec({'ha_anti_affinity_level': 'rack', 'ha_anti_affinity': 'soft'},
             members=m)
    objs = [type('W', (), {'obj': h})() for h in hosts]
    w = weighers.FaultDomainSpreadWeigher()
    assert w.weigh_objects(objs, s) == [-2.0, -1.0, 0.0, -3.0]
    assert w._weigh_object(hosts[2], s) == 0.0
    assert w.weight_multiplier(hosts[0]) == 10.0
    # No rule: no opinion.
    assert w.weigh_objects(objs, spec(members=m)) == [0.0] * 4


# -- MigrationPolicyFilter ---------------------------------------------------

def downtime_hosts():
    fast = agg('fast', ['h1'], ha__live_migration_downtime_ms='100')
    slow = agg('slow', ['h2'], ha__live_migration_downtime_ms='900')
    return [host_state('h1', [fast]), host_state('h2', [slow]),
            host_state('h3')]


def moving(db, uuid, kind, status='accepted', source='h9', dest=None):
    db.hosts[uuid] = source
    db.migrations.append(lookup.Migration(uuid, kind, status, source, dest,
                                          None, len(db.migrations) + 1))


@pytest.mark.parametrize('where', ['flavor', 'hint'])
def test_forbidden_live_migration_refused_cold_allowed(db, errors, where):
    inst = uuids(1)[0]
    kw = ({'extra_specs': {'ha:live_migration': 'forbidden'}}
          if where == 'flavor' else
          {'hints': {'ha_live_migration': 'forbidden'}})
    f = migration_policy.MigrationPolicyFilter()
    moving(db, inst, 'live-migration')
    assert f.filter_all(downtime_hosts(), spec(instance_uuid=inst, **kw)) \
        == []
    [msg] = errors(level=30)
    assert 'live migration of instance %s refused' % inst in msg
    assert ('ha:live_migration=forbidden' if where == 'flavor' else
            'hint ha_live_migration=forbidden') in msg
    for kind in ('migration', 'resize', 'evacuation'):
        inst = uuids(1)[0]
        moving(db, inst, kind)
        assert len(f.filter_all(downtime_hosts(),
                                spec(instance_uuid=inst, **kw))) == 3
    # A boot is not a move.
    assert len(f.filter_all(downtime_hosts(), spec(**kw))) == 3


def test_allowed_hint_cannot_relax_flavor(db):
    inst = uuids(1)[0]
    moving(db, inst, 'live-migration')
    s = spec(instance_uuid=inst, hints={'ha_live_migration': 'allowed'},
             extra_specs={'ha:live_migration': 'forbidden'})
    assert migration_policy.MigrationPolicyFilter().filter_all(
        downtime_hosts(), s) == []


def test_max_interruption_compares_destination_downtime(db):
    inst = uuids(1)[0]
    moving(db, inst, 'live-migration')
    f = migration_policy.MigrationPolicyFilter()
    s = spec(instance_uuid=inst, hints={'ha_max_interruption_ms': '500'})
    assert names(f.filter_all(downtime_hosts(), s)) == ['h1']
    s = spec(instance_uuid=inst, hints={'ha_max_interruption_ms': '1000'},
             extra_specs={'ha:max_interruption_ms': '50'})
    assert names(f.filter_all(downtime_hosts(), s)) == []   # stricter wins
    s = spec(instance_uuid=inst, extra_specs={'ha:max_interruption_ms': '900'})
    assert names(f.filter_all(downtime_hosts(), s)) == ['h1', 'h2']
    # Cold migration: no interruption limit applies.
    cold = uuids(1)[0]
    moving(db, cold, 'migration')
    s = spec(instance_uuid=cold, hints={'ha_max_interruption_ms': '1'})
    assert len(f.filter_all(downtime_hosts(), s)) == 3


def test_max_concurrent_moves(db, errors):
    m = uuids(4)
    moving(db, m[0], 'live-migration', status='running', dest='h2')
    moving(db, m[1], 'evacuation', status='pre-migrating')
    moving(db, m[2], 'resize', status='finished')
    f = migration_policy.MigrationPolicyFilter()
    me = m[3]
    moving(db, me, 'migration', status='pre-migrating')
    s = spec(instance_uuid=me, members=m,
             hints={'ha_max_concurrent_moves': '2'})
    assert f.filter_all(downtime_hosts(), s) == []
    [msg] = errors(level=30)
    assert 'migration of instance %s refused' % me in msg
    assert 'ha_max_concurrent_moves=2 and 2 other members' in msg
    assert m[0] in msg and m[1] not in msg     # evacuations do not count
    s = spec(instance_uuid=me, members=m,
             hints={'ha_max_concurrent_moves': '3'})
    assert len(f.filter_all(downtime_hosts(), s)) == 3
    # An evacuation is never limited.
    ev = uuids(1)[0]
    moving(db, ev, 'evacuation')
    s = spec(instance_uuid=ev, members=m + [ev],
             hints={'ha_max_concurrent_moves': '0'})
    assert len(f.filter_all(downtime_hosts(), s)) == 3
    # Ended moves do not count.
    db.migrations = [mig._replace(status='completed')
                     if mig.instance_uuid == m[0] else mig
                     for mig in db.migrations]
    s = spec(instance_uuid=me, members=m,
             hints={'ha_max_concurrent_moves': '2'})
    assert len(f.filter_all(downtime_hosts(), s)) == 3


def test_no_rules_no_database_work(db):
    f = migration_policy.MigrationPolicyFilter()
    assert len(f.filter_all(downtime_hosts(), spec())) == 3
    assert db.calls['instances'] == 0


@pytest.mark.parametrize('hints, specs, message', [
    ({'ha_live_migration': 'never'}, {},
     "hint ha_live_migration='never' is invalid: must be one of allowed, "
     "forbidden"),
    ({'ha_max_interruption_ms': '-3'}, {},
     "hint ha_max_interruption_ms='-3' is invalid: must be an integer >= 0"),
    ({'ha_max_concurrent_moves': 'x'}, {},
     "hint ha_max_concurrent_moves='x' is invalid: must be an integer >= 0"),
    ({}, {'ha:live_migration': 'sometimes'},
     "flavor extra spec ha:live_migration='sometimes' is invalid"),
    ({}, {'ha:max_interruption_ms': 'fast'},
     "flavor extra spec ha:max_interruption_ms='fast' is invalid"),
])
def test_migration_bad_input_rejects_all(db, errors, hints, specs, message):
    s = spec(hints=hints, extra_specs=specs)
    assert migration_policy.MigrationPolicyFilter().filter_all(
        downtime_hosts(), s) == []
    [msg] = errors()
    assert message in msg and 'MigrationPolicyFilter' in msg


def test_migration_lookup_failure_rejects_all(db, errors):
    db.fail = 'cell1 is unreachable'
    s = spec(hints={'ha_max_concurrent_moves': '1'})
    assert migration_policy.MigrationPolicyFilter().filter_all(
        downtime_hosts(), s) == []
    assert 'cell1 is unreachable' in errors()[0]


# -- request cache -----------------------------------------------------------

def test_request_info_is_per_request_object(db):
    s1 = spec({'ha_anti_affinity_level': 'rack'})
    s2 = spec({'ha_anti_affinity_level': 'rack'})
    assert request.for_spec(s1) is request.for_spec(s1)
    assert request.for_spec(s1) is not request.for_spec(s2)
    key = id(s2)
    assert key in request._requests
    del s2
    import gc
    gc.collect()
    assert key not in request._requests


# -- fail closed (issue 18): one log line naming the group and the reason ----

def _group_lines(errors, s, level=40):
    return [e for e in errors(level) if s.instance_group.uuid in e]


def test_member_host_in_two_racks_fails_closed(db, errors):
    hosts = rack_hosts(racks=3, per_rack=2)
    h2 = hosts[1]
    h2.aggregates = h2.aggregates + [agg('rack-x', ['h2'], ha__rack='r9')]
    m = uuids(1)
    place(db, hosts, {'h2': m})
    candidates = [h for h in hosts if h.host != 'h2']
    s = spec({'ha_anti_affinity_level': 'rack'}, members=m,
             group_hosts=['h2'])
    assert fault_domain.FaultDomainAntiAffinityFilter().filter_all(
        candidates, s) == []
    [line] = _group_lines(errors, s)
    assert 'member host(s) h2 in no single rack domain' in line
    assert 'FaultDomainAntiAffinityFilter' in line


def test_nova_group_hosts_count_when_lookup_misses_them(db, errors):
    """A host nova lists as running members fills its domain, whatever N."""
    hosts = rack_hosts(racks=3, per_rack=2)
    place(db, hosts, {})
    s = spec({'ha_anti_affinity_level': 'rack', 'ha_max_per_domain': '3'},
             members=uuids(2), group_hosts=['h3'])
    got = fault_domain.FaultDomainAntiAffinityFilter().filter_all(hosts, s)
    assert names(got) == ['h1', 'h2', 'h5', 'h6']
    [line] = _group_lines(errors, s, level=30)
    assert 'nova lists h3 as running members but the member look-up found ' \
        'none there' in line and 'treating rack r2 as full' in line


def test_own_host_listed_by_nova_does_not_count(db, errors):
    """nova's group.hosts holds the moving instance's own host too."""
    hosts = rack_hosts(racks=3, per_rack=2)
    m = uuids(2)
    place(db, hosts, {'h1': [m[0]], 'h3': [m[1]]})
    s = spec({'ha_anti_affinity_level': 'rack'}, members=m,
             instance_uuid=m[0], group_hosts=['h1', 'h3'])
    got = fault_domain.FaultDomainAntiAffinityFilter().filter_all(hosts, s)
    assert names(got) == ['h1', 'h2', 'h5', 'h6']
    assert errors(30) == [] and errors() == []


def test_multi_create_pick_not_cached_is_looked_up_or_fails(db, errors,
                                                            conf):
    hosts = rack_hosts(racks=3, per_rack=2)
    place(db, hosts, {})
    new = uuids(2)
    s = spec({'ha_anti_affinity_level': 'rack'}, members=new,
             instance_uuid=new[0])
    f = fault_domain.FaultDomainAntiAffinityFilter()
    assert len(f.filter_all(hosts, s)) == 6
    s.instance_group.hosts.append('h1')
    # The host cache is reset between two instances of the request (a
    # configuration reload): the pick's rack comes from the databases.
    request.HOST_TOPOLOGY.configure(('host', 'rack'), 'x')
    s.instance_uuid = new[1]
    assert names(f.filter_all(hosts, s)) == ['h3', 'h4', 'h5', 'h6']
    # ... and if they cannot say, nothing passes.
    db.omit = {'h1'}
    request.HOST_TOPOLOGY.configure(('host', 'rack'), 'y')
    s2 = spec({'ha_anti_affinity_level': 'rack'}, members=new,
              instance_uuid=new[0])
    assert len(f.filter_all(hosts, s2)) == 6
    s2.instance_group.hosts.append('h1')
    request.HOST_TOPOLOGY.configure(('host', 'rack'), 'z')
    assert f.filter_all(hosts, s2) == []
    [line] = _group_lines(errors, s2)
    assert 'no answer for h1' in line


def test_reject_all_names_group_and_instance(db, errors):
    db.fail = 'database is down'
    s = spec({'ha_anti_affinity_level': 'rack'}, members=uuids(1))
    assert fault_domain.FaultDomainAntiAffinityFilter().filter_all(
        rack_hosts(2, 1), s) == []
    [line] = errors()
    assert s.instance_group.uuid in line and s.instance_uuid in line
    assert 'database is down' in line


def test_migration_instance_missing_in_its_cell_fails_closed(db, errors):
    """A live migration must not read as a boot because a record is gone."""
    inst = uuids(1)[0]
    moving(db, inst, 'live-migration')
    db.missing.add(inst)
    db.migrations = []                 # the look-up cannot see the move
    s = spec(instance_uuid=inst, members=[inst],
             hints={'ha_live_migration': 'forbidden'})
    assert migration_policy.MigrationPolicyFilter().filter_all(
        downtime_hosts(), s) == []
    [line] = errors()
    assert 'MigrationPolicyFilter' in line and s.instance_group.uuid in line
    assert 'cannot tell whether this request is a boot or a move' in line
    # Without migration rules nothing needs the look-up: no refusal.
    s = spec(instance_uuid=inst, members=[inst])
    assert len(migration_policy.MigrationPolicyFilter().filter_all(
        downtime_hosts(), s)) == 3


def test_migration_concurrent_moves_lookup_fails_closed(db, errors):
    m = uuids(2)
    moving(db, m[0], 'migration')
    db.fail = 'cell1 timed out'
    s = spec(instance_uuid=m[0], members=m,
             hints={'ha_max_concurrent_moves': '1'})
    assert migration_policy.MigrationPolicyFilter().filter_all(
        downtime_hosts(), s) == []
    [line] = errors()
    assert s.instance_group.uuid in line and 'cell1 timed out' in line


def test_migration_interruption_host_without_declaration_fails(db):
    """A host whose downtime is unknown or malformed never qualifies."""
    bad = agg('bad', ['h4'], ha__live_migration_downtime_ms='fast')
    hosts = downtime_hosts() + [host_state('h4', [bad])]
    inst = uuids(1)[0]
    moving(db, inst, 'live-migration')
    s = spec(instance_uuid=inst, hints={'ha_max_interruption_ms': '100000'})
    assert names(migration_policy.MigrationPolicyFilter().filter_all(
        hosts, s)) == ['h1', 'h2']


def test_sal_undecidable_host_data_fails_closed(db, errors, conf):
    """SALFilter: a host whose certification is missing, malformed or
    unreadable is not certified; unusable [topology] levels reject all."""
    bad = agg('bad', ['h5'], ha__sal='gold')
    hosts = sal_hosts() + [host_state('h5', [bad])]
    hosts[0].aggregates = None          # nova could not give aggregates
    f = sal_filter.SALFilter()
    assert names(f.filter_all(hosts, spec(extra_specs={'ha:sal': '3'}))) \
        == ['h2', 'h3']
    assert any("ha:sal='gold'" in w for w in errors(30))
    conf.config(levels=['host', 'host'], group='topology')
    s = spec(extra_specs={'ha:sal': '3'})
    assert f.filter_all(hosts, s) == []
    [line] = errors()
    assert 'SALFilter' in line and "names 'host' twice" in line
    assert s.instance_group.uuid in line


def test_loader_finds_the_four_filters_and_not_their_base():
    """nova's filter loader (available_filters =
    nova_ha.scheduler.filters.all_filters) must find each rule once and
    never the shared RequestFilter base (it would refuse every host)."""
    from nova_ha.scheduler import filters as ha_filters
    names = sorted(c.__name__ for c in ha_filters.all_filters())
    assert names == ['FailoverCapacityFilter',
                     'FaultDomainAntiAffinityFilter',
                     'MigrationPolicyFilter', 'SALFilter'], names
    assert all(issubclass(c, ha_filters.RequestFilter)
               for c in ha_filters.all_filters())
