"""Benchmark: FailoverCapacityFilter vs nova's own filters, and the greedy
bound's gap to the exact solver.

Part 1 -- one filtering pass (``filter_all`` over every host, as
nova-scheduler calls it) at 1,000 and 5,000 hosts, in the same run and on
the same HostStates and RequestSpec shapes:

- nova's own default filters, one pass each, summed
  (ComputeCapabilitiesFilter, ImagePropertiesFilter,
  ServerGroupAntiAffinityFilter, ServerGroupAffinityFilter);
- FailoverCapacityFilter for a SAL1 boot with policy ``sal1:1 rack``:
  "plan/request" = snapshot_max_age 0, the failover plan of every rack
  computed for the request (the default); "plan reused" = a plan made by
  an earlier request within snapshot_max_age (the per-request part: the
  candidate's own failover per scenario and the per-host checks).

Cloud: 20 hosts per rack, 256 GB / 64 vCPU each, 4 SAL1 instances of
8 GB per host (groups of 4 with rack anti-affinity) and 6 others; every
host SAL1-certified. The cloud snapshot comes from an in-memory source:
in nova-scheduler it is read from nova's databases (a few queries per
request, per cell; not included), as MemoryLookup stands in for the
member look-up in bench_filters.py.

Part 2 -- how often the greedy bound says "no fit" where the exact solver
finds one: random small clouds (3-8 hosts in 2-3 racks, 4-14 instances,
sizes 1-6 GB, some in rack or host anti-affinity groups), every rack
failure of each, greedy vs exact.

Run: .venv/bin/python benchmarks/bench_capacity.py [--repeat N]
"""

import argparse
import gc
import logging
import os
import random
import statistics
import sys
import time

os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', '1')
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

import nova_ha.sim.novastack  # noqa: E402,F401 -- monkey patching first
from nova import objects  # noqa: E402
from nova.scheduler.filters import affinity_filter  # noqa: E402
from nova.scheduler.filters import compute_capabilities_filter  # noqa: E402
from nova.scheduler.filters import image_props_filter  # noqa: E402
from nova.tests.unit.scheduler import fakes  # noqa: E402
from oslo_config import cfg  # noqa: E402
from oslo_utils import uuidutils  # noqa: E402

import nova.conf  # noqa: E402,F401
from nova_ha.capacity import model  # noqa: E402
from nova_ha.capacity import solver  # noqa: E402
from nova_ha.scheduler import lookup  # noqa: E402
from nova_ha.scheduler import request  # noqa: E402
from nova_ha.scheduler.filters import capacity  # noqa: E402

SIZES = (1000, 5000)
PER_RACK = 20
GB = 1024
LEVELS = ('host', 'rack', 'power_domain', 'availability_zone')


def build(n_hosts, rng):
    objects.register_all()
    racks = max(1, n_hosts // PER_RACK)
    rack_aggs = [objects.Aggregate(id=r + 1, name='rack-r%d' % r, hosts=[],
                                   metadata={'ha:rack': 'r%d' % r,
                                             'ha:sal': '1'})
                 for r in range(racks)]
    host_states, hosts, insts = [], [], []
    group_n = 0
    for i in range(n_hosts):
        name = 'host%05d' % i
        r = min(i // PER_RACK, racks - 1)
        rack_aggs[r].hosts.append(name)
        used = 0
        for k in range(4):
            # Groups of 4 members spread over 4 racks (rack rule).
            g = 'g%d' % ((group_n + k) % (max(1, n_hosts) // 4))
            insts.append(model.Instance(
                uuidutils.generate_uuid(), name, (2, 8 * GB, 20), sal=1,
                priority=rng.randint(0, 1000), group=g,
                rules=[model.Rule('rack', 1, 'bench')]))
            used += 8 * GB
        group_n += 1
        used += 6 * 16 * GB            # 6 other instances of 16 GB
        hosts.append(model.Host(name, (64 - 20, 256 * GB - used, 1000),
                                sal=1, domains={'rack': 'r%d' % r}))
        host_states.append(fakes.FakeHostState(
            name, name, {'aggregates': [rack_aggs[r]],
                         'free_ram_mb': 256 * GB - used,
                         'free_disk_mb': 10 ** 6, 'vcpus_total': 64,
                         'vcpus_used': 20}))
    cloud = model.Cloud(hosts, insts, LEVELS)
    return host_states, cloud


def new_spec():
    group = objects.InstanceGroup(
        uuid=uuidutils.generate_uuid(), policy='anti-affinity',
        policies=['anti-affinity'], members=[], hosts=[], rules={})
    return objects.RequestSpec(
        instance_uuid=uuidutils.generate_uuid(), instance_group=group,
        scheduler_hints={'ha_anti_affinity_level': ['rack']},
        flavor=objects.Flavor(vcpus=2, memory_mb=8 * GB, root_gb=20,
                              ephemeral_gb=0, swap=0,
                              extra_specs={'ha:sal': '1'}),
        image=objects.ImageMeta(properties=objects.ImageMetaProps()),
        ignore_hosts=[], force_hosts=[], force_nodes=[])


def time_pass(filt, hosts, spec):
    gc.disable()
    try:
        t0 = time.perf_counter()
        passed = list(filt.filter_all(hosts, spec))
        return time.perf_counter() - t0, len(passed)
    finally:
        gc.enable()


def measure(n_hosts, repeat, rng):
    host_states, cloud = build(n_hosts, rng)
    nova_filters = [
        compute_capabilities_filter.ComputeCapabilitiesFilter(),
        image_props_filter.ImagePropertiesFilter(),
        affinity_filter.ServerGroupAntiAffinityFilter(),
        affinity_filter.ServerGroupAffinityFilter()]
    old_lookup = request.set_lookup(lookup.MemoryLookup())
    old_source = capacity.set_source(lambda ctxt, levels, az: cloud)
    cfg.CONF.set_override('tolerate', {'sal1': '1 rack'}, group='capacity')
    cfg.CONF.set_override('levels', list(LEVELS), group='topology')
    filt = capacity.FailoverCapacityFilter()
    try:
        nova_t, cold_t, warm_t = [], [], []
        passed = {}
        for _ in range(repeat):
            total = 0.0
            for f in nova_filters:
                t, passed['nova'] = time_pass(f, host_states, new_spec())
                total += t
            nova_t.append(total)
            cfg.CONF.set_override('snapshot_max_age', 0.0, group='capacity')
            t, passed['cold'] = time_pass(filt, host_states, new_spec())
            cold_t.append(t)
            cfg.CONF.set_override('snapshot_max_age', 3600.0,
                                  group='capacity')
            time_pass(filt, host_states, new_spec())    # fill the cache
            t, passed['warm'] = time_pass(filt, host_states, new_spec())
            warm_t.append(t)
        ev = solver.evaluate(cloud, model.parse_policies(
            {'sal1': '1 rack'}, LEVELS))
        return {'hosts': n_hosts, 'racks': len(ev.results),
                'instances': sum(len(r.placed) + len(r.stranded)
                                 for r in ev.results),
                'fits': ev.fits,
                'nova': (min(nova_t), statistics.median(nova_t)),
                'cold': (min(cold_t), statistics.median(cold_t)),
                'warm': (min(warm_t), statistics.median(warm_t)),
                'passed': passed}
    finally:
        request.set_lookup(old_lookup)
        capacity.set_source(old_source)
        for name in ('tolerate', 'snapshot_max_age'):
            cfg.CONF.clear_override(name, group='capacity')
        cfg.CONF.clear_override('levels', group='topology')


def random_cloud(rng):
    n_hosts = rng.randint(3, 8)
    racks = rng.randint(2, 3)
    hosts = [model.Host('h%d' % i, (64, rng.choice((8, 12, 16)) * GB, 1000),
                        sal=rng.choice((1, 1, 1, 2)),
                        domains={'rack': 'r%d' % (i % racks)})
             for i in range(n_hosts)]
    insts = []
    # Two server groups, each with one rule for all its members (a VNF's
    # members are booted with the same hints).
    rules = {'g%d' % g: model.Rule(rng.choice(('host', 'rack')),
                                   rng.choice((1, 2)), 'bench')
             for g in range(2)}
    for k in range(rng.randint(4, 14)):
        on = hosts[rng.randrange(n_hosts)]
        group = 'g%d' % rng.randint(0, 1) if rng.random() < 0.3 else None
        insts.append(model.Instance(
            'i%d' % k, on.name, (1, rng.choice((1, 2, 3, 4, 6)) * GB, 1),
            sal=1, priority=rng.randint(0, 3), group=group,
            rules=[rules[group]] if group else ()))
    for i in insts:
        h = next(x for x in hosts if x.name == i.host)
        h.free = tuple(a - b for a, b in zip(h.free, i.res))
    return model.Cloud(hosts, insts, LEVELS)


def gap(clouds, seed):
    rng = random.Random(seed)
    pol = model.parse_policies({'sal1': '1 rack'}, LEVELS)[0]
    out = {'scenarios': 0, 'exact_fit': 0, 'greedy_fit': 0, 'gap': 0,
           'budget': 0, 'greedy_s': 0.0, 'exact_s': 0.0, 'exact_max': 0.0}
    for _ in range(clouds):
        cloud = random_cloud(rng)
        for scen in model.scenarios(cloud, pol)[0]:
            out['scenarios'] += 1
            t0 = time.perf_counter()
            g = solver.solve(cloud, scen, force='greedy')
            t1 = time.perf_counter()
            e = solver.solve(cloud, scen, force='exact')
            t2 = time.perf_counter()
            out['greedy_s'] += t1 - t0
            out['exact_s'] += t2 - t1
            out['exact_max'] = max(out['exact_max'], t2 - t1)
            if not e.exact:
                out['budget'] += 1
            out['exact_fit'] += e.fits
            out['greedy_fit'] += g.fits
            if e.fits and not g.fits:
                out['gap'] += 1
            assert not (g.fits and not e.fits)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--sizes', default=','.join(map(str, SIZES)))
    parser.add_argument('--clouds', type=int, default=2000,
                        help='random small clouds for the gap (default '
                             '2000)')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    rng = random.Random(16)
    print('Part 1: one filtering pass, SAL1 boot, policy sal1:1 rack; '
          'min (median) of %d passes, ms' % args.repeat)
    head = '%6s %5s %6s | %17s | %19s | %7s | %17s | %7s' % (
        'hosts', 'racks', 'HA', 'nova filters (4)', 'capacity plan/req',
        'ratio', 'plan reused', 'ratio')
    print(head)
    print('-' * len(head))
    for n in [int(s) for s in args.sizes.split(',')]:
        r = measure(n, args.repeat, rng)
        print('%6d %5d %6d | %7.1f (%7.1f) | %8.1f (%8.1f) | %6.1fx | '
              '%7.1f (%7.1f) | %6.2fx   passed %d/%d/%d' % (
                  n, r['racks'], r['instances'], r['nova'][0] * 1e3,
                  r['nova'][1] * 1e3, r['cold'][0] * 1e3, r['cold'][1] * 1e3,
                  r['cold'][0] / r['nova'][0], r['warm'][0] * 1e3,
                  r['warm'][1] * 1e3, r['warm'][0] / r['nova'][0],
                  r['passed']['nova'], r['passed']['cold'],
                  r['passed']['warm']))
    print('ratio = capacity filter min / sum of the 4 nova filters\' min; '
          'the cloud snapshot read (nova DB) is not included.')
    print()
    print('Part 2: greedy bound vs exact solver, every rack failure of %d '
          'random small clouds' % args.clouds)
    g = gap(args.clouds, 1616)
    n = g['scenarios']
    print('%9s | %9s | %10s | %17s | %13s | %12s | %12s' % (
        'scenarios', 'exact fit', 'greedy fit', 'gap (greedy no,',
        'exact budget', 'greedy mean', 'exact mean/max'))
    print('%9s | %9s | %10s | %17s | %13s | %12s | %12s' % (
        '', '', '', 'exact yes)', 'exceeded', 'ms', 'ms'))
    print('%9d | %9d | %10d | %6d (%5.2f%%)   | %13d | %12.3f | %5.2f/%6.1f'
          % (n, g['exact_fit'], g['greedy_fit'], g['gap'],
             100.0 * g['gap'] / max(1, g['exact_fit']), g['budget'],
             1e3 * g['greedy_s'] / n, 1e3 * g['exact_s'] / n,
             1e3 * g['exact_max']))
    print('gap % = of the scenarios the exact solver fits; greedy never '
          'claims a fit the exact solver refutes (checked).')
    return 0


if __name__ == '__main__':
    sys.exit(main())
