"""nova_ha.topology: the host -> domain model read from aggregates."""

import pytest

from nova_ha import topology
from tests.unit.scheduler.conftest import agg, host_state

LEVELS = topology.DEFAULT_LEVELS


def api_aggs():
    # The shape GET /os-aggregates returns.
    return [
        {'name': 'rack-r1', 'hosts': ['h1', 'h2'], 'availability_zone': None,
         'metadata': {'ha:rack': 'r1'}},
        {'name': 'rack-r2', 'hosts': ['h3', 'h4'], 'availability_zone': None,
         'metadata': {'ha:rack': 'r2'}},
        {'name': 'pdu1', 'hosts': ['h1', 'h2', 'h3', 'h4'],
         'availability_zone': None, 'metadata': {'ha:power_domain': 'pdu1'}},
        {'name': 'zone', 'hosts': ['h1', 'h2'], 'availability_zone': 'az1',
         'metadata': {'availability_zone': 'az1'}},
        {'name': 'sal', 'hosts': ['h1', 'h3'], 'availability_zone': None,
         'metadata': {'ha:sal': '2', 'ha:live_migration_downtime_ms': '300'}},
        {'name': 'sal1', 'hosts': ['h1'], 'availability_zone': None,
         'metadata': {'ha:sal': '1', 'ha:live_migration_downtime_ms': '200'}},
    ]


def test_domains_per_level_from_api_aggregates():
    topo = topology.Topology.from_aggregates(api_aggs(), hosts=['h5'],
                                             levels=LEVELS, default_az='nova')
    assert topo.domain('h1', 'host') == 'h1'
    assert topo.domain('h1', 'rack') == 'r1'
    assert topo.domain('h4', 'power_domain') == 'pdu1'
    assert topo.domain('h1', 'availability_zone') == 'az1'
    assert topo.domain('h3', 'availability_zone') == 'nova'
    assert topo.domain('h5', 'rack') is None
    assert topo.domain('unknown', 'rack') is None
    assert topo.get('unknown') is None and topo.get('h1').sal == 1
    assert 'h1' in topo and 'unknown' not in topo
    assert topo.domains('rack') == {'r1': {'h1', 'h2'}, 'r2': {'h3', 'h4'}}
    assert topo.hosts_without_domain('rack') == ['h5']
    assert topo.same_domain('h1', 'h2', 'rack')
    assert not topo.same_domain('h1', 'h3', 'rack')
    assert not topo.same_domain('h5', 'h5', 'rack')
    assert topo.conflicts == [] and topo.problems == []


def test_sal_strongest_certification_and_worst_downtime():
    topo = topology.Topology.from_aggregates(api_aggs(), levels=LEVELS)
    assert topo.host('h1').sal == 1
    assert topo.host('h3').sal == 2
    assert topo.host('h2').sal is None
    assert topo.host('h1').downtime_ms == 300     # worst of 200 and 300
    assert topo.host('h2').downtime_ms is None
    assert topo.certified_hosts(1) == ['h1']
    assert topo.certified_hosts(3) == ['h1', 'h3']
    assert topo.host('h3').certified_for(3)
    assert not topo.host('h3').certified_for(1)


def test_host_in_two_domains_of_a_level_is_a_conflict():
    aggs = api_aggs() + [{'name': 'rack-x', 'hosts': ['h2'],
                          'metadata': {'ha:rack': 'r9'}}]
    topo = topology.Topology.from_aggregates(aggs, levels=LEVELS)
    assert topo.domain('h2', 'rack') is topology.CONFLICT
    assert topo.domain('h2', 'power_domain') == 'pdu1'
    [conflict] = topo.conflicts
    assert conflict.host == 'h2' and conflict.level == 'rack'
    text = str(conflict)
    assert 'h2' in text and 'r1 (aggregate rack-r1)' in text
    assert 'r9 (aggregate rack-x)' in text
    assert 'h2' not in topo.domains('rack')['r1']


def test_same_domain_twice_is_no_conflict():
    aggs = [{'name': 'a', 'hosts': ['h1'], 'metadata': {'ha:rack': 'r1'}},
            {'name': 'b', 'hosts': ['h1'], 'metadata': {'ha:rack': 'r1'}}]
    topo = topology.Topology.from_aggregates(aggs, levels=LEVELS)
    assert topo.domain('h1', 'rack') == 'r1' and topo.conflicts == []


def test_vexxhost_failure_domain_key_and_custom_levels():
    aggs = [{'name': 'fd1', 'hosts': ['h1'],
             'metadata': {'failure_domain': 'A'}},
            {'name': 'fd2', 'hosts': ['h2'],
             'metadata': {'ha:failure_domain': 'B'}},
            {'name': 'row', 'hosts': ['h1', 'h2'],
             'metadata': {'ha:row': 'row1'}}]
    topo = topology.Topology.from_aggregates(
        aggs, levels=('host', 'row'))
    assert topo.domain('h1', 'failure_domain') == 'A'
    assert topo.domain('h2', 'failure_domain') == 'B'
    assert topo.domain('h2', 'row') == 'row1'
    assert topo.known_levels == ('host', 'row', 'failure_domain')
    with pytest.raises(topology.TopologyError, match='rack'):
        topo.domain('h1', 'rack')


def test_bad_values_are_problems_not_silent():
    aggs = [{'name': 'gold', 'hosts': ['h1'], 'metadata': {'ha:sal': 'gold'}},
            {'name': 'slow', 'hosts': ['h1'],
             'metadata': {'ha:live_migration_downtime_ms': '-5'}},
            {'name': 'blank', 'hosts': ['h1'], 'metadata': {'ha:rack': ' '}}]
    topo = topology.Topology.from_aggregates(aggs, levels=LEVELS)
    problems = '\n'.join(topo.problems)
    assert "aggregate gold: ha:sal='gold' is not one of 1, 2, 3" in problems
    assert "ha:live_migration_downtime_ms='-5'" in problems
    assert 'aggregate blank: ha:rack is empty' in problems
    assert topo.host('h1').sal is None
    assert topo.host('h1').downtime_ms is None
    assert topo.domain('h1', 'rack') is None


def test_unknown_ha_keys_and_nesting():
    aggs = api_aggs() + [
        {'name': 'typo', 'hosts': ['h1'], 'metadata': {'ha:rakc': 'r1'}},
        {'name': 'pdu2', 'hosts': ['h5'],
         'metadata': {'ha:power_domain': 'pdu2', 'ha:rack': 'r2'}}]
    topo = topology.Topology.from_aggregates(aggs, levels=LEVELS)
    assert topo.unknown_keys() == [('typo', 'ha:rakc')]
    nesting = topo.nesting_violations()
    assert len(nesting) == 2
    assert nesting[0].startswith('rack r2 spans 2 power_domain domains')
    assert nesting[1].startswith(
        'power_domain pdu1 spans 2 availability_zone domains (az1: h1, h2; '
        'nova: h3, h4)')
    topology.register_aggregate_key('ha:rakc', 'test')
    try:
        assert topo.unknown_keys() == []
    finally:
        topology._EXTRA_KEYS.pop('ha:rakc')
    with pytest.raises(ValueError):
        topology.register_aggregate_key('rack')


@pytest.mark.parametrize('levels, message', [
    ((), 'empty'),
    (('host', 'Rack'), "'Rack' is not a level name"),
    (('host', 'rack', 'rack'), "names 'rack' twice"),
])
def test_bad_levels(levels, message):
    with pytest.raises(topology.TopologyError, match=message):
        topology.validate_levels(levels)


def test_configured_levels_from_conf():
    from oslo_config import cfg
    from oslo_config import fixture
    conf = cfg.ConfigOpts()
    fix = fixture.Config(conf)
    fix.setUp()
    try:
        assert topology.configured_levels(conf) == LEVELS
        fix.config(levels=['host', 'rack'], group='topology')
        assert topology.configured_levels(conf) == ('host', 'rack')
    finally:
        fix.cleanUp()


def test_from_host_states_and_nova_objects():
    r1 = agg('rack-r1', ['h1'], ha__rack='r1', availability_zone='az1')
    topo = topology.Topology.from_host_states(
        [host_state('h1', [r1]), host_state('h2')], levels=LEVELS)
    assert topo.domain('h1', 'rack') == 'r1'
    assert topo.domain('h1', 'availability_zone') == 'az1'
    assert topo.domain('h2', 'availability_zone') == 'nova'


def test_host_state_cache_rebuilds_only_when_aggregates_change(caplog):
    cache = topology.HostStateTopology()
    cache.configure(LEVELS, 'nova')
    r1 = agg('rack-r1', ['h1'], ha__rack='r1')
    hs = host_state('h1', [r1])
    first = cache.info(hs)
    hs.aggregates = [r1]            # nova: a fresh list, same objects
    assert cache.info(hs) is first
    r1b = agg('rack-r1', ['h1'], ha__rack='r7')     # aggregate updated
    hs.aggregates = [r1b]
    assert cache.info(hs).domains['rack'] == 'r7'
    assert cache.cached('h1').domains['rack'] == 'r7'
    # A conflict is logged once, when the HostInfo is built.
    bad = agg('rack-x', ['h1'], ha__rack='r9')
    hs.aggregates = [r1b, bad]
    with caplog.at_level('ERROR', logger='nova_ha'):
        assert cache.info(hs).domains['rack'] is topology.CONFLICT
        hs.aggregates = [r1b, bad]
        cache.info(hs)
    errors = [r for r in caplog.records if r.levelname == 'ERROR']
    assert len(errors) == 1
    assert 'host h1 is in 2 rack domains' in errors[0].getMessage()
    # A configuration change drops the cache.
    cache.configure(('host', 'rack'), 'nova')
    assert cache.cached('h1') is None


def test_location_for_alarms_and_notifications():
    aggs = api_aggs() + [{'name': 'rack-x', 'hosts': ['h2'],
                          'metadata': {'ha:rack': 'r9'}}]
    topo = topology.Topology.from_aggregates(aggs, hosts=['h5'],
                                             levels=LEVELS, default_az='nova')
    assert topo.location('h1') == {'rack': 'r1', 'power_domain': 'pdu1',
                                   'availability_zone': 'az1', 'sal': 1}
    # a conflict or no domain is None, never the CONFLICT marker
    assert topo.location('h2')['rack'] is None
    assert topo.location('h5') == {'rack': None, 'power_domain': None,
                                   'availability_zone': 'nova', 'sal': None}
    assert topo.location('unknown') == {
        'rack': None, 'power_domain': None, 'availability_zone': None,
        'sal': None}
    # configured extra levels are included
    topo = topology.Topology.from_aggregates(
        [{'name': 'row', 'hosts': ['h1'], 'metadata': {'ha:row': 'row7'}}],
        levels=('host', 'rack', 'row', 'availability_zone'))
    assert topo.location('h1')['row'] == 'row7'
