"""Benchmark: FaultDomainAntiAffinityFilter vs ServerGroupAntiAffinityFilter.

One filtering pass (``filter_all`` over every host, as nova-scheduler calls
it) for a 20-member server group, at 100, 1,000, 5,000 and 20,000 hosts,
both filters on the same HostStates and the same RequestSpec in the same
run:

- nova's ServerGroupAntiAffinityFilter (host level, policy anti-affinity);
- nova-ha's FaultDomainAntiAffinityFilter at level rack
  (hint ha_anti_affinity_level=rack, hard, 1 per rack).

Hosts are nova's scheduler fakes (FakeHostState), 10 per rack, each in three
aggregates (rack, power domain, zone) and running 10 instances; the 20
members run on the first host of racks 0-19 (the layout of issue 18). The
RequestSpec is what nova's conductor sends: the group's members and hosts.

Every pass's result is checked against the set of hosts that must pass,
computed from the layout (nova: every host without a member; nova-ha: every
host outside racks 0-19); a wrong set is printed as WRONG and the script
exits with status 1. Every pass uses a new RequestSpec
(a new request), so nova-ha's per-request work (hint parsing, member
look-up, counting members per rack) is inside the timing. Before each pass
every HostState gets a fresh aggregate list holding the same aggregate
objects, as nova's HostManager does per request (not timed). As in timeit,
cyclic garbage collection is paused inside a timed pass.

The look-up of the members' hosts is an in-memory stand-in
(lookup.MemoryLookup): in nova-scheduler it is one API-database query for
the instance mappings, two queries per cell, and one aggregate query per
host running a member -- a per-request cost that depends on the group, not
on the number of hosts; not included here.

"warm" is the steady state (each host's topology cached since an earlier
request); "cold" is the first request after nova-scheduler starts or after
every aggregate changed (each host's aggregates parsed).

Run: .venv/bin/python benchmarks/bench_filters.py [--repeat N]
"""

import argparse
import gc
import logging
import os
import statistics
import sys
import time

os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', '1')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

import nova_ha.sim.novastack  # noqa: E402,F401 -- monkey patching first
from nova import objects  # noqa: E402
from nova.scheduler.filters import affinity_filter  # noqa: E402
from nova.tests.unit.scheduler import fakes  # noqa: E402
from oslo_utils import uuidutils  # noqa: E402

import nova.conf  # noqa: E402,F401
from nova_ha import topology  # noqa: E402
from nova_ha.scheduler import lookup  # noqa: E402
from nova_ha.scheduler import request  # noqa: E402
from nova_ha.scheduler.filters import fault_domain  # noqa: E402

SIZES = (100, 1000, 5000, 20000)
MEMBERS = 20
PER_RACK = 10
RACKS_PER_PDU = 4
INSTANCES_PER_HOST = 10


def build(n_hosts):
    objects.register_all()
    racks = max(1, n_hosts // PER_RACK)
    rack_aggs = [objects.Aggregate(id=r + 1, name='rack-r%d' % r, hosts=[],
                                   metadata={'ha:rack': 'r%d' % r})
                 for r in range(racks)]
    pdus = max(1, racks // RACKS_PER_PDU)
    pdu_aggs = [objects.Aggregate(id=10000 + p, name='pdu%d' % p, hosts=[],
                                  metadata={'ha:power_domain': 'pdu%d' % p})
                for p in range(pdus)]
    az_aggs = [objects.Aggregate(id=20000 + a, name='az%d' % a, hosts=[],
                                 metadata={'availability_zone': 'az%d' % a})
               for a in range(2)]
    members = [uuidutils.generate_uuid() for _ in range(MEMBERS)]
    member_host = {}
    hosts = []
    for i in range(n_hosts):
        name = 'host%05d' % i
        r = min(i // PER_RACK, racks - 1)
        aggs = [rack_aggs[r], pdu_aggs[min(r // RACKS_PER_PDU, pdus - 1)],
                az_aggs[0 if i < n_hosts // 2 else 1]]
        for agg in aggs:
            agg.hosts.append(name)
        insts = [objects.Instance(uuid=uuidutils.generate_uuid())
                 for _ in range(INSTANCES_PER_HOST)]
        if i % PER_RACK == 0 and len(member_host) < MEMBERS:
            m = members[len(member_host)]
            member_host[m] = name
            insts[0] = objects.Instance(uuid=m)
        hosts.append(fakes.FakeHostState(name, name, {'aggregates': aggs},
                                         instances=insts))
    topo = topology.Topology.from_host_states(hosts,
                                              levels=topology.DEFAULT_LEVELS)
    return hosts, members, member_host, topo


def new_spec(members, member_host):
    group = objects.InstanceGroup(
        uuid=uuidutils.generate_uuid(), policy='anti-affinity',
        members=list(members), hosts=sorted(set(member_host.values())),
        rules={})
    return objects.RequestSpec(
        instance_uuid=uuidutils.generate_uuid(), instance_group=group,
        scheduler_hints={'ha_anti_affinity_level': ['rack']},
        flavor=objects.Flavor(extra_specs={}))


def refresh_aggregates(hosts):
    # nova's HostManager: a fresh list of the same aggregate objects.
    for hs in hosts:
        hs.aggregates = list(hs.aggregates)


def time_pass(filt, hosts, spec):
    # As timeit does: no cyclic garbage collection inside a timed pass.
    gc.disable()
    try:
        t0 = time.perf_counter()
        passed = filt.filter_all(hosts, spec)
        passed = list(passed)
        return time.perf_counter() - t0, {hs.host for hs in passed}
    finally:
        gc.enable()


def expected_sets(hosts, member_host, topo):
    """(nova's, nova-ha's) passing sets, from the layout alone."""
    member_hosts = set(member_host.values())
    full = {topo.domain(h, 'rack') for h in member_hosts}
    names = [hs.host for hs in hosts]
    return ({h for h in names if h not in member_hosts},
            {h for h in names if topo.domain(h, 'rack') not in full})


def measure(n_hosts, repeat):
    hosts, members, member_host, topo = build(n_hosts)
    fake_db = lookup.MemoryLookup(hosts=member_host, topology_=topo)
    old = request.set_lookup(fake_db)
    try:
        nova_f = affinity_filter.ServerGroupAntiAffinityFilter()
        ha_f = fault_domain.FaultDomainAntiAffinityFilter()
        want_nova, want_ha = expected_sets(hosts, member_host, topo)
        wrong = 0
        # Cold: no HostInfo cached yet.
        request.HOST_TOPOLOGY.configure(('x',), 'x')   # drop the cache
        refresh_aggregates(hosts)
        cold, got = time_pass(ha_f, hosts, new_spec(members, member_host))
        wrong += got != want_ha
        nova_t, ha_t = [], []
        for _ in range(repeat):
            spec = new_spec(members, member_host)
            refresh_aggregates(hosts)
            t, got = time_pass(nova_f, hosts, spec)
            nova_t.append(t)
            wrong += got != want_nova
            spec = new_spec(members, member_host)
            refresh_aggregates(hosts)
            t, got = time_pass(ha_f, hosts, spec)
            ha_t.append(t)
            wrong += got != want_ha
        return {
            'hosts': n_hosts, 'racks': len(topo.domains('rack')),
            'nova_min': min(nova_t), 'nova_med': statistics.median(nova_t),
            'ha_min': min(ha_t), 'ha_med': statistics.median(ha_t),
            'cold': cold, 'nova_pass': len(want_nova),
            'ha_pass': len(want_ha), 'wrong': wrong,
            'lookups': fake_db.calls['instances'],
        }
    finally:
        request.set_lookup(old)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repeat', type=int, default=15,
                        help='timed passes per size and filter (default 15)')
    parser.add_argument('--sizes', default=','.join(map(str, SIZES)),
                        help='comma-separated host counts')
    args = parser.parse_args(argv)
    # Production log level: nova's per-host debug line is built but not
    # emitted, as in a nova-scheduler running without debug.
    logging.basicConfig(level=logging.WARNING)
    sizes = [int(s) for s in args.sizes.split(',')]
    print('One filtering pass, %d-member server group, hard anti-affinity; '
          'min (median) of %d passes, ms' % (MEMBERS, args.repeat))
    head = ('%6s %6s | %18s | %18s | %8s | %6s | %11s | %5s' % (
        'hosts', 'racks', 'nova host-level', 'nova-ha rack-level',
        'cold', 'ratio', 'pass nova/ha', 'set'))
    print(head)
    print('-' * len(head))
    worst = 0.0
    wrong = 0
    for n in sizes:
        r = measure(n, args.repeat)
        ratio = r['ha_min'] / r['nova_min']
        worst = max(worst, ratio)
        wrong += r['wrong']
        print('%6d %6d | %7.3f (%7.3f) | %7.3f (%7.3f) | %8.3f | %5.3fx '
              '| %5d/%-5d | %5s' % (
                  n, r['racks'], r['nova_min'] * 1e3, r['nova_med'] * 1e3,
                  r['ha_min'] * 1e3, r['ha_med'] * 1e3, r['cold'] * 1e3,
                  ratio, r['nova_pass'], r['ha_pass'],
                  'ok' if not r['wrong'] else 'WRONG'))
        sys.stdout.flush()
    print('ratio = nova-ha min / nova min (goal <= 0.1x at every size); '
          'worst %.3fx -> %s' % (worst, 'met' if worst <= 0.1 else 'NOT met'))
    print('set = every pass of both filters returned exactly the hosts the '
          'layout says must pass (nova: hosts without a member; nova-ha: '
          'hosts outside racks 0-19): %s' % (
              'ok' if not wrong else '%d passes WRONG' % wrong))
    print('cold = first nova-ha pass with no host topology cached (after a '
          'restart or an aggregate change).')
    print('Member look-up: in-memory stand-in; in nova-scheduler a few DB '
          'queries per request (per group, not per host).')
    return 1 if wrong else 0


if __name__ == '__main__':
    sys.exit(main())
