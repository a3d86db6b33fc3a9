"""Hard and soft fault-domain anti-affinity at 5,000 and 20,000 hosts.

nova's scheduler fakes (FakeHostState, a HostState subclass) and nova's own
filter and weigher handlers, as nova-scheduler calls them. The layout (issue
18): racks of 10 hosts (aggregates ``ha:rack=rN``), power domains of 8 racks
(``ha:power_domain=pN``), 4 availability zones of equal size; a 20-member
anti-affinity server group with one member on the first host of each of
racks 0-19. The RequestSpec is what nova's conductor hands the scheduler:
``instance_group.members`` and ``instance_group.hosts`` (the members'
hosts) set, and the hints ``group`` and ``ha_anti_affinity_level``.

Every test asserts the exact set of passing hosts, computed from the layout
independently of the filter.
"""

import logging

import pytest
from nova import objects
from nova.scheduler import filters as nova_filters
from nova.scheduler import weights as nova_weights
from nova.tests.unit.scheduler import fakes
from oslo_utils import uuidutils

from nova_ha import topology
from nova_ha.scheduler import lookup
from nova_ha.scheduler import request as ha_request
from nova_ha.scheduler import weighers
from nova_ha.scheduler.filters import fault_domain

SIZES = (5000, 20000)
PER_RACK = 10
RACKS_PER_PDU = 8
AZS = 4
MEMBERS = 20
FILTER = 'nova_ha.scheduler.filters.fault_domain.' \
    'FaultDomainAntiAffinityFilter'


class Cloud:
    """A layout, its HostStates and each host's domain per level."""

    def __init__(self, n_hosts):
        self.n = n_hosts
        racks = n_hosts // PER_RACK
        pdus = -(-racks // RACKS_PER_PDU)
        rack_aggs = [objects.Aggregate(id=r + 1, name='rack-r%d' % r,
                                       hosts=[], metadata={'ha:rack':
                                                           'r%d' % r})
                     for r in range(racks)]
        pdu_aggs = [objects.Aggregate(id=100000 + p, name='pdu-p%d' % p,
                                      hosts=[], metadata={
                                          'ha:power_domain': 'p%d' % p})
                    for p in range(pdus)]
        az_aggs = [objects.Aggregate(id=200000 + a, name='az%d' % a,
                                     hosts=[], metadata={
                                         'availability_zone': 'az%d' % a})
                   for a in range(AZS)]
        self.names = ['cmp%05d' % i for i in range(n_hosts)]
        self.where = {}        # host -> {level: domain}
        self.hosts = []
        per_az = n_hosts // AZS
        for i, name in enumerate(self.names):
            r = i // PER_RACK
            p = r // RACKS_PER_PDU
            a = min(i // per_az, AZS - 1)
            aggs = [rack_aggs[r], pdu_aggs[p], az_aggs[a]]
            for agg in aggs:
                agg.hosts.append(name)
            self.where[name] = {'host': name, 'rack': 'r%d' % r,
                                'power_domain': 'p%d' % p,
                                'availability_zone': 'az%d' % a}
            self.hosts.append(fakes.FakeHostState(name, name,
                                                  {'aggregates': aggs}))
        self.topology = topology.Topology.from_host_states(
            self.hosts, levels=topology.DEFAULT_LEVELS)

    def first_of_rack(self, r, k=0):
        return self.names[r * PER_RACK + k]

    def expected(self, level, member_hosts, limit=1):
        """Hosts whose domain holds fewer than `limit` members."""
        per_domain = {}
        for h in member_hosts:
            d = self.where[h][level]
            per_domain[d] = per_domain.get(d, 0) + 1
        return {h for h in self.names
                if per_domain.get(self.where[h][level], 0) < limit}


@pytest.fixture(scope='module', params=SIZES, ids=lambda n: '%dhosts' % n)
def cloud(request):
    """Built once per size (pytest runs every test of one size together)."""
    objects.register_all()
    return Cloud(request.param)


@pytest.fixture
def big(cloud, db):
    db.topology = cloud.topology
    return cloud


def members_on(db, host_list):
    """Members on these hosts (in the look-up); returns their uuids."""
    uuids = []
    for h in host_list:
        u = uuidutils.generate_uuid()
        db.hosts[u] = h
        uuids.append(u)
    return uuids


def nova_spec(members, member_hosts, hints):
    """The RequestSpec nova's conductor gives the scheduler."""
    group = objects.InstanceGroup(
        uuid=uuidutils.generate_uuid(), policy='anti-affinity',
        members=list(members), hosts=sorted(set(member_hosts)), rules={})
    hints = dict(hints, group=group.uuid)
    return objects.RequestSpec(
        instance_uuid=uuidutils.generate_uuid(), instance_group=group,
        scheduler_hints={k: [str(v)] for k, v in hints.items()},
        flavor=objects.Flavor(extra_specs={}))


def run_filters(hosts, spec):
    handler = nova_filters.HostFilterHandler()
    classes = handler.get_matching_classes([FILTER])
    return {h.host for h in handler.get_filtered_objects(
        [cls() for cls in classes], iter(hosts), spec, 0)}


def twenty(c):
    return [c.first_of_rack(r) for r in range(MEMBERS)]


def test_issue_18_reported_layout_rack_level(big, db, errors):
    """The report: exactly the hosts outside racks 0-19 pass."""
    hosts = twenty(big)
    spec = nova_spec(members_on(db, hosts), hosts,
                     {'ha_anti_affinity_level': 'rack'})
    got = run_filters(big.hosts, spec)
    assert len(got) == big.n - 200
    assert got == big.expected('rack', hosts)
    assert errors() == [] and errors(logging.WARNING) == []


def test_issue_18_lookup_knows_no_member_nova_lists_their_hosts(
        big, db, errors):
    """The fail-open of the report: the member look-up finds none of the
    members (a look-up that answers short), while nova's RequestSpec lists
    the hosts running them. Before the fix every host passed."""
    hosts = twenty(big)
    members = [uuidutils.generate_uuid() for _ in hosts]   # unknown to db
    spec = nova_spec(members, hosts, {'ha_anti_affinity_level': 'rack'})
    got = run_filters(big.hosts, spec)
    assert got == big.expected('rack', hosts)
    assert len(got) == big.n - 200
    [warning] = errors(logging.WARNING)
    assert spec.instance_group.uuid in warning
    assert 'found none there' in warning and hosts[0] in warning


@pytest.mark.parametrize('level, count', [
    ('host', lambda n: n - 20),
    ('rack', lambda n: n - 200),
    ('power_domain', lambda n: n - 240),          # pdus p0-p2
    ('availability_zone', lambda n: n - n // AZS),
])
def test_hard_rule_every_level_exact_set(big, db, errors, level, count):
    hosts = twenty(big)
    spec = nova_spec(members_on(db, hosts), hosts,
                     {'ha_anti_affinity_level': level})
    got = run_filters(big.hosts, spec)
    assert got == big.expected(level, hosts)
    assert len(got) == count(big.n)
    assert errors() == []


@pytest.mark.parametrize('level, limit, count', [
    ('rack', 2, lambda n: n - 100),        # racks 0-9 hold 2
    ('rack', 3, lambda n: n),
    ('power_domain', 12, lambda n: n - 80),  # p0 holds 16, p1 10, p2 4
    ('availability_zone', 30, lambda n: n - n // AZS),
])
def test_hard_rule_max_per_domain(big, db, level, limit, count):
    hosts = twenty(big) + [big.first_of_rack(r, 1) for r in range(10)]
    spec = nova_spec(members_on(db, hosts), hosts,
                     {'ha_anti_affinity_level': level,
                      'ha_max_per_domain': limit})
    got = run_filters(big.hosts, spec)
    assert got == big.expected(level, hosts, limit)
    assert len(got) == count(big.n)


@pytest.mark.parametrize('level', ['host', 'rack', 'power_domain',
                                   'availability_zone'])
def test_soft_rule_passes_all_weigher_orders_free_domains_first(
        big, db, level):
    hosts = twenty(big)
    spec = nova_spec(members_on(db, hosts), hosts,
                     {'ha_anti_affinity_level': level,
                      'ha_anti_affinity': 'soft'})
    passed = run_filters(big.hosts, spec)
    assert len(passed) == big.n
    handler = nova_weights.HostWeightHandler()
    weighed = handler.get_weighed_objects(
        [weighers.FaultDomainSpreadWeigher()], list(big.hosts), spec)
    order = [w.obj.host for w in weighed]
    free = big.expected(level, hosts)
    assert set(order[:len(free)]) == free
    # Then the loaded domains, least-loaded first.
    counts = {}
    for h in hosts:
        d = big.where[h][level]
        counts[d] = counts.get(d, 0) + 1
    loads = [counts.get(big.where[h][level], 0) for h in order]
    assert loads == sorted(loads)


def test_multi_create_at_scale_one_per_rack(big, db):
    """nova appends each pick to instance_group.hosts between instances."""
    hosts = twenty(big)
    members = members_on(db, hosts)
    new = [uuidutils.generate_uuid() for _ in range(5)]
    spec = nova_spec(members + new, hosts,
                     {'ha_anti_affinity_level': 'rack'})
    picked = []
    for i, uuid in enumerate(new):
        spec.instance_uuid = uuid
        got = run_filters(big.hosts, spec)
        assert got == big.expected('rack', hosts + picked)
        pick = min(got)
        picked.append(pick)
        spec.instance_group.hosts.append(pick)
    assert len({big.where[h]['rack'] for h in picked}) == 5
    assert db.calls['instances'] == 1


# -- fail closed: one ERROR line naming the group and the reason -------------

def _one_line_naming_group(errors, spec, *words):
    lines = [e for e in errors() if spec.instance_group.uuid in e]
    assert len(lines) == 1, lines
    for w in words:
        assert w in lines[0]
    return lines[0]


def test_fail_closed_lookup_fails(big, db, errors):
    hosts = twenty(big)
    spec = nova_spec(members_on(db, hosts), hosts,
                     {'ha_anti_affinity_level': 'rack'})
    db.fail = 'cell1 database unreachable'
    assert run_filters(big.hosts, spec) == set()
    _one_line_naming_group(errors, spec, 'FaultDomainAntiAffinityFilter',
                           'cell1 database unreachable')


def test_fail_closed_aggregate_answer_truncated(big, db, errors):
    hosts = twenty(big)
    spec = nova_spec(members_on(db, hosts), hosts,
                     {'ha_anti_affinity_level': 'rack'})
    db.omit = {hosts[-1]}
    assert run_filters(big.hosts, spec) == set()
    _one_line_naming_group(errors, spec, 'answered for 19 of 20 member '
                           'hosts', hosts[-1])


def test_fail_closed_member_host_in_no_domain(big, db, errors):
    hosts = twenty(big)
    members = members_on(db, hosts)
    db.hosts[members[0]] = 'unracked-host'     # not in any aggregate
    spec = nova_spec(members, ['unracked-host'] + hosts[1:],
                     {'ha_anti_affinity_level': 'rack'})
    assert run_filters(big.hosts, spec) == set()
    _one_line_naming_group(errors, spec, 'unracked-host',
                           'in no single rack domain', 'ha:rack')


def test_fail_closed_soft_rule_weigher_logs_once(big, db, errors):
    hosts = twenty(big)
    spec = nova_spec(members_on(db, hosts), hosts,
                     {'ha_anti_affinity_level': 'rack',
                      'ha_anti_affinity': 'soft'})
    db.fail = 'api database unreachable'
    assert len(run_filters(big.hosts, spec)) == big.n     # soft: no refusal
    w = weighers.FaultDomainSpreadWeigher()
    objs = [type('W', (), {'obj': h})() for h in big.hosts[:50]]
    assert w.weigh_objects(objs, spec) == [0.0] * 50
    assert w.weigh_objects(objs, spec) == [0.0] * 50
    _one_line_naming_group(errors, spec, 'FaultDomainSpreadWeigher',
                           'api database unreachable')


def test_filter_stays_cheap_per_host(big, db):
    """Expensive work once per request: look-ups do not grow with hosts."""
    hosts = twenty(big)
    spec = nova_spec(members_on(db, hosts), hosts,
                     {'ha_anti_affinity_level': 'rack'})
    f = fault_domain.FaultDomainAntiAffinityFilter()
    for _ in range(3):
        f.filter_all(big.hosts, spec)
    assert db.calls == {'instances': 1, 'domains': 1}
    assert ha_request.for_spec(spec).members == frozenset(
        spec.instance_group.members)
    assert isinstance(ha_request.get_lookup(), lookup.MemoryLookup)
