"""The failover placement solver: exact vs greedy, priorities, reasons,
policies and scenarios, admission (pure logic, no Nova)."""

import itertools
import random

import pytest

from nova_ha import topology
from nova_ha.capacity import admission
from nova_ha.capacity import model
from nova_ha.capacity import solver

LEVELS = ('host', 'rack', 'power_domain', 'availability_zone')
GB = 1024


def host(name, ram_gb, rack=None, sal=1, vcpu=64, disk=1000, enabled=True):
    return model.Host(name, (vcpu, ram_gb * GB, disk), sal=sal,
                      domains={'rack': rack}, enabled=enabled)


def inst(uuid, on, ram_gb, sal=1, prio=0, group=None, rules=(), vcpu=1,
         auto=True):
    return model.Instance(uuid, on, (vcpu, ram_gb * GB, 1), sal=sal,
                          priority=prio, group=group, rules=rules,
                          name=uuid, auto=auto)


def policy(text, key='sal1'):
    return model.parse_policies({key: text}, LEVELS)[0]


def scenario_failing(cloud, hosts, pol=None):
    return model.Scenario(pol or policy('1 host'), frozenset(hosts),
                          ','.join(hosts))


def test_greedy_strands_where_exact_fits():
    # Two 10 GB hosts; 5+5 | 4+3+3 fits, worst fit (5,5,4,3 then 3) not.
    cloud = model.Cloud(
        [host('dead', 100), host('a', 10), host('b', 10)],
        [inst(u, 'dead', r) for u, r in
         (('i1', 5), ('i2', 5), ('i3', 4), ('i4', 3), ('i5', 3))])
    scen = scenario_failing(cloud, ['dead'])
    greedy = solver.solve(cloud, scen, force='greedy')
    assert not greedy.fits and not greedy.exact
    assert [s.instance.uuid for s in greedy.stranded] == ['i5']
    exact = solver.solve(cloud, scen, force='exact')
    assert exact.fits and exact.exact
    _assert_valid_plan(cloud, scen, exact)
    # The default: greedy first, exact because it is small.
    auto = solver.solve(cloud, scen)
    assert auto.fits and auto.exact


def test_exact_strands_the_lowest_priority():
    cloud = model.Cloud(
        [host('dead', 100), host('a', 8)],
        [inst('low', 'dead', 4, prio=1), inst('high', 'dead', 6, prio=900),
         inst('mid', 'dead', 2, prio=500)])
    res = solver.solve(cloud, scenario_failing(cloud, ['dead']))
    assert res.exact
    assert [s.instance.uuid for s in res.stranded] == ['low']
    assert res.stranded[0].kind == solver.NO_ROOM
    assert 'taken by the re-placement' in res.stranded[0].reason
    assert set(res.placed) == {'high', 'mid'}


def test_reasons_sal_room_rule():
    rule = model.Rule('rack', 1, 'hint ha_anti_affinity_level=rack')
    cloud = model.Cloud(
        [host('dead', 100, rack='r1'), host('a', 16, rack='r2'),
         host('b', 16, rack='r2'), host('u', 64, rack='r3', sal=None)],
        [inst('big', 'dead', 32),
         inst('g1', 'dead', 1, group='g', rules=[rule]),
         inst('g2', 'a', 1, group='g', rules=[rule]),
         inst('sal2', 'dead', 1, sal=2),
         inst('other', 'dead', 1, sal=3)])
    res = solver.solve(cloud, scenario_failing(cloud, ['dead']))
    why = {s.instance.uuid: s for s in res.stranded}
    assert set(why) == {'big', 'g1'}    # sal2 is not policy sal1's
    assert why['big'].kind == solver.NO_ROOM
    assert '32768 MB RAM' in why['big'].reason
    assert why['g1'].kind == solver.RULE
    assert 'rack' in why['g1'].reason and 'server group g' in why['g1'].reason
    # SAL: only an uncertified host survives.
    cloud2 = model.Cloud([host('dead', 8), host('u', 64, sal=None)],
                         [inst('x', 'dead', 1)])
    res2 = solver.solve(cloud2, scenario_failing(cloud2, ['dead']))
    assert res2.stranded[0].kind == solver.SAL


def test_recovery_none_and_disabled_hosts():
    cloud = model.Cloud(
        [host('dead', 8), host('off', 64, enabled=False), host('a', 2)],
        [inst('keep', 'dead', 2), inst('skip', 'dead', 4, auto=False),
         inst('x', 'dead', 1)])
    res = solver.solve(cloud, scenario_failing(cloud, ['dead']))
    assert [s.instance.uuid for s in res.stranded] == ['x']
    assert 'off' not in res.residual


def test_policy_parsing_errors_name_option_and_value():
    with pytest.raises(model.PolicyError) as e:
        model.parse_policies({'sal1': '2 galaxies'}, LEVELS)
    assert "[capacity] tolerate sal1='2 galaxies'" in str(e.value)
    assert "'galaxies'" in str(e.value) and 'rack' in str(e.value)
    with pytest.raises(model.PolicyError) as e:
        model.parse_policies({'sal4': '1 rack'}, LEVELS)
    assert "'sal4'" in str(e.value)
    with pytest.raises(model.PolicyError) as e:
        model.parse_policies({'sal1': 'one rack'}, LEVELS)
    assert "sal1='one rack'" in str(e.value)
    with pytest.raises(model.PolicyError) as e:
        model.parse_policies({'sal1': '1001 hosts'}, LEVELS)
    assert '1001' in str(e.value) and 'range' in str(e.value)
    pols = model.parse_policies({'sal1': '1 rack', 'sal2': '2 hosts',
                                 'all@edge': '1 power_domain',
                                 'sal3': 'none'}, LEVELS)
    assert [(p.sal, p.count, p.level, p.aggregate) for p in pols] == [
        (None, 1, 'power_domain', 'edge'), (1, 1, 'rack', None),
        (2, 2, 'host', None)]


def test_scenarios_racks_host_pairs_aggregate():
    hosts = [host('h%d' % i, 8, rack='r%d' % (i // 2)) for i in range(6)]
    cloud = model.Cloud(hosts, [], LEVELS, aggregates={'edge': {'h0', 'h1',
                                                                'h2'}})
    scens, approx = model.scenarios(cloud, policy('1 rack'))
    assert [s.label for s in scens] == ['rack r0', 'rack r1', 'rack r2']
    assert scens[1].failed == {'h2', 'h3'} and not approx
    scens, _ = model.scenarios(cloud, policy('2 hosts'))
    assert len(scens) == 15
    scens, _ = model.scenarios(cloud, policy('1 host', 'sal1@edge'))
    assert {s.label for s in scens} == {'host h0', 'host h1', 'host h2'}
    scens, approx = model.scenarios(cloud, policy('3 hosts'), max_scenarios=5)
    assert approx and 1 <= len(scens) <= 5
    with pytest.raises(model.PolicyError) as e:
        model.scenarios(cloud, policy('1 host', 'sal1@nowhere'))
    assert "'nowhere'" in str(e.value)


def _assert_valid_plan(cloud, scen, res):
    """Independent check of a plan: room, SAL, rules, nothing on failed."""
    free = {h.name: list(h.free) for h in cloud.hosts.values()}
    placed = {u: cloud.instances[u] for u in res.placed}
    counts = {}
    for i in cloud.instances.values():
        where = res.placed.get(i.uuid, None if i.host in scen.failed
                               else i.host)
        if where is None:
            continue
        for rule in i.rules:
            key = (i.group, rule.level, cloud.domain(where, rule.level))
            counts[key] = counts.get(key, 0) + 1
    for u, h in res.placed.items():
        assert h not in scen.failed and cloud.hosts[h].enabled
        assert cloud.hosts[h].certified_for(placed[u].sal)
        for r in range(3):
            free[h][r] -= placed[u].res[r]
    for h in set(res.placed.values()):
        assert min(free[h]) >= 0, (h, free[h])
    landed = {(placed[u].group, r.level, cloud.domain(h, r.level))
              for u, h in res.placed.items() for r in placed[u].rules}
    for (g, level, d), n in counts.items():
        if (g, level, d) not in landed:
            continue      # the random start may break a rule already
        limit = min(r.max_per_domain for i in cloud.instances.values()
                    if i.group == g for r in i.rules if r.level == level)
        assert d is not None and n <= limit, (g, level, d, n)


def random_cloud(rng, n_hosts=None):
    n_hosts = n_hosts or rng.randint(3, 7)
    racks = rng.randint(2, 3)
    hosts = [host('h%d' % i, rng.choice((8, 12, 16)), rack='r%d' % (
        i % racks), sal=rng.choice((1, 1, 1, 2))) for i in range(n_hosts)]
    insts = []
    rule = model.Rule(rng.choice(('host', 'rack')), rng.choice((1, 2)), 't')
    for k in range(rng.randint(4, 12)):
        on = hosts[rng.randrange(n_hosts)]
        grouped = rng.random() < 0.3
        insts.append(inst('i%d' % k, on.name, rng.choice((1, 2, 3, 4, 6)),
                          prio=rng.randint(0, 3), group='g' if grouped
                          else None, rules=[rule] if grouped else ()))
    # Take the instances' room from their hosts (an over-committed host
    # may go below 0: it receives nothing).
    for i in insts:
        h = next(x for x in hosts if x.name == i.host)
        h.free = tuple(a - b for a, b in zip(h.free, i.res))
    return model.Cloud(hosts, insts, LEVELS)


def test_random_clouds_greedy_sound_and_never_beats_exact():
    rng = random.Random(1616)
    gaps = 0
    for _ in range(150):
        cloud = random_cloud(rng)
        for scen in model.scenarios(cloud, policy('1 rack'))[0]:
            g = solver.solve(cloud, scen, force='greedy')
            e = solver.solve(cloud, scen, force='exact')
            assert e.exact
            _assert_valid_plan(cloud, scen, g)
            _assert_valid_plan(cloud, scen, e)
            # Exact's placed set is lexicographically best in the
            # evacuator's order: never behind greedy's.
            order = solver.to_place(cloud, scen)
            assert [i.uuid in e.placed for i in order] >= \
                [i.uuid in g.placed for i in order]
            if g.fits:
                assert e.fits
            elif e.fits:
                gaps += 1
    # Worst fit is a weak packer on tight random clouds: a gap exists.
    assert gaps >= 1


def test_exact_by_enumeration_on_tiny_clouds():
    """The exact solver's fit/no-fit equals brute force."""
    rng = random.Random(7)
    for _ in range(60):
        cloud = random_cloud(rng, n_hosts=3)
        scen = model.scenarios(cloud, policy('1 host'))[0][0]
        insts = solver.to_place(cloud, scen)
        alive = [h for h in cloud.hosts if h not in scen.failed]
        brute = False
        for combo in itertools.product(alive, repeat=len(insts)):
            st = solver._State(cloud, scen.failed)
            ok = True
            for i, h in zip(insts, combo):
                if not (cloud.hosts[h].certified_for(i.sal)
                        and st.room_ok(i, h) and st.rule_ok(i, h)):
                    ok = False
                    break
                st.place(i, h)
            if ok:
                brute = True
                break
        assert solver.solve(cloud, scen, force='exact').fits == brute


def test_admission_reserved_room_rule_and_own_failover():
    rule = model.Rule('rack', 1, 'hint')
    hosts = [host('a1', 8, rack='r1'), host('a2', 8, rack='r1'),
             host('b1', 8, rack='r2'), host('c1', 8, rack='r3')]
    insts = [inst('x', 'a1', 6), inst('m1', 'a2', 1, group='g',
                                      rules=[rule])]
    cloud = model.Cloud(hosts, insts, LEVELS)
    pols = [policy('1 rack')]
    new = inst('new', None, 4)
    adm = admission.Admission(cloud, pols, new)
    assert adm.evaluation.fits
    # x (6 GB) goes to b1 or c1 if r1 fails: that host's room is reserved.
    target = adm.evaluation.results[0].placed['x']
    assert 'reserved' in adm.refusal(target)
    # On r1 the new instance itself must find room if r1 fails: with x
    # on one of b1/c1, the other has 8 GB left.
    assert adm.refusal('a2') is None
    # A second member of group g may not go where the plan puts m1.
    member = inst('m2', None, 1, group='g', rules=[rule])
    adm2 = admission.Admission(cloud, pols, member)
    m1_target = adm2.evaluation.results[0].placed['m1']
    assert 'server group g' in adm2.refusal(m1_target)
    # Already violated: no protected instance admitted anywhere.
    tight = model.Cloud(hosts[:2] + [host('b1', 2, rack='r2')], insts, LEVELS)
    adm3 = admission.Admission(tight, pols, new)
    assert not adm3.evaluation.fits
    assert 'already violated' in adm3.refusal('b1')
    unprotected = inst('plain', None, 1, sal=None)
    assert admission.Admission(tight, pols, unprotected).refusal(
        'a2') is None


def test_topology_level_known_from_topology_module():
    assert 'failure_domain' in topology.known_levels(LEVELS)
    pols = model.parse_policies({'sal1': '1 failure_domain'}, LEVELS)
    assert pols[0].level == 'failure_domain'


def test_collect_room_rules_and_hints_via_scheduler_parser():
    from nova_ha.capacity import collect
    inv = {'VCPU': {'total': 10, 'reserved': 0, 'allocation_ratio': 4.0},
           'MEMORY_MB': {'total': 8192, 'reserved': 512,
                         'allocation_ratio': 1.0},
           'DISK_GB': {'total': 100, 'reserved': 0,
                       'allocation_ratio': 1.0}}
    assert collect.free_room(inv, {'VCPU': 3, 'MEMORY_MB': 2048}) == (
        37, 5632, 100)
    assert collect.group_rules({'policy': 'anti-affinity',
                                'rules': {'max_server_per_host': 2}}) == [
        model.Rule('host', 2, 'server group policy anti-affinity')]
    assert collect.group_rules({'policy': 'soft-anti-affinity'}) == []
    problems = []
    rules = collect.hint_rules({'ha_anti_affinity_level': ['rack'],
                                'ha_max_per_domain': '2'}, LEVELS,
                               problems, 'vm1')
    assert [(r.level, r.max_per_domain) for r in rules] == [('rack', 2)]
    assert collect.hint_rules({'ha_anti_affinity_level': 'rack',
                               'ha_anti_affinity': 'soft'}, LEVELS,
                              problems, 'vm1') == []
    assert collect.hint_rules({'ha_anti_affinity_level': 'galaxy'}, LEVELS,
                              problems, 'vm2') == []
    assert "vm2" in problems[0] and "'galaxy'" in problems[0]
    inst = collect.instance_of(
        'u1', 'vm', 'h1', {'vcpus': 1, 'ram': 512, 'disk': 1,
                           'extra_specs': {'ha:sal': '1',
                                           'ha:recovery': 'none',
                                           'ha:recovery_priority': '7'}},
        {}, None, LEVELS, problems)
    assert (inst.sal, inst.auto, inst.priority, inst.rules) == (1, False, 7,
                                                                ())
