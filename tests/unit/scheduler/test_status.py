"""nova-ha-status upgrade check on hand-made Nova data (see the functional
test for the same checks through the real Nova API)."""

import json

from nova_ha.cmd import status
from nova_ha import topology


def view(aggregates=(), hosts=('h1', 'h2', 'h3'), flavors=()):
    return status.NovaView(list(aggregates), hosts, list(flavors))


def flavor(name, **specs):
    return {'id': name, 'name': name, 'extra_specs': specs}


def checks(v):
    return status.Checks(lambda: v, levels=topology.DEFAULT_LEVELS)


GOOD_AGGS = [
    {'name': 'rack-r1', 'hosts': ['h1'], 'metadata': {'ha:rack': 'r1'}},
    {'name': 'rack-r2', 'hosts': ['h2', 'h3'], 'metadata': {'ha:rack': 'r2'}},
    {'name': 'sal1', 'hosts': ['h1'], 'metadata': {'ha:sal': '1'}},
]


def test_all_good():
    c = checks(view(GOOD_AGGS, flavors=[flavor('gold', **{'ha:sal': '1'}),
                                        flavor('plain')]))
    for _, fn in c._upgrade_checks:
        assert fn(c).code == status.SUCCESS


def test_host_in_two_racks_is_a_failure():
    aggs = GOOD_AGGS + [{'name': 'rack-x', 'hosts': ['h3'],
                         'metadata': {'ha:rack': 'r9'}}]
    result = checks(view(aggs))._check_topology()
    assert result.code == status.FAILURE
    assert 'host h3 is in 2 rack domains: r2 (aggregate rack-r2), r9 ' \
        '(aggregate rack-x)' in result.details


def test_bad_values_and_nesting_are_warnings():
    aggs = GOOD_AGGS + [
        {'name': 'gold', 'hosts': ['h2'], 'metadata': {'ha:sal': 'gold'}},
        {'name': 'pdu1', 'hosts': ['h2'],
         'metadata': {'ha:power_domain': 'pdu1'}},
        {'name': 'pdu2', 'hosts': ['h3'],
         'metadata': {'ha:power_domain': 'pdu2'}}]
    result = checks(view(aggs))._check_topology()
    assert result.code == status.WARNING
    assert "aggregate gold: ha:sal='gold' is not one of 1, 2, 3" in \
        result.details
    assert 'rack r2 spans 2 power_domain domains' in result.details


def test_unknown_keys_warn_and_bad_flavor_values_fail():
    aggs = GOOD_AGGS + [{'name': 'typo', 'hosts': ['h1'],
                         'metadata': {'ha:rakc': 'r1'}}]
    c = checks(view(aggs, flavors=[flavor('f1', **{'ha:sal_level': '1'})]))
    result = c._check_ha_keys()
    assert result.code == status.WARNING
    assert 'aggregate typo: unknown key ha:rakc' in result.details
    assert 'flavor f1 (f1): unknown extra spec ha:sal_level' in result.details
    c = checks(view(GOOD_AGGS, flavors=[flavor('f2', **{'ha:sal': '7'})]))
    result = c._check_ha_keys()
    assert result.code == status.FAILURE
    assert "flavor f2 (f2): extra spec ha:sal='7' is invalid; allowed " \
        "values: 1, 2, 3." in result.details


def test_sal_flavor_without_certified_host():
    aggs = GOOD_AGGS + [{'name': 'sal2-spare', 'hosts': ['not-a-compute'],
                         'metadata': {'ha:sal': '2'}}]
    c = checks(view(aggs, flavors=[flavor('gold', **{'ha:sal': '1'}),
                                   flavor('silver', **{'ha:sal': '2'}),
                                   flavor('strict', **{'ha:sal': '1'})]))
    assert c._check_sal_flavors().code == status.SUCCESS   # h1 is SAL 1
    c = checks(view(GOOD_AGGS[:2], flavors=[
        flavor('silver', **{'ha:sal': '2'})]))
    result = c._check_sal_flavors()
    assert result.code == status.FAILURE
    assert 'flavor silver (silver) has ha:sal=2 but no compute host is ' \
        'certified for SAL 2' in result.details


def test_unreachable_nova_fails_every_check():
    def boom():
        raise ConnectionError('connection refused')
    c = status.Checks(boom, levels=topology.DEFAULT_LEVELS)
    for _, fn in c._upgrade_checks:
        result = fn(c)
        assert result.code == status.FAILURE
        assert 'cannot read the Nova API' in result.details
        assert 'connection refused' in result.details


def test_main_prints_results_and_exit_code(capsys, tmp_path):
    conf = tmp_path / 'nova-ha.conf'
    conf.write_text('[topology]\nlevels = host,rack\n')
    aggs = GOOD_AGGS + [{'name': 'rack-x', 'hosts': ['h3'],
                         'metadata': {'ha:rack': 'r9'}}]
    code = status.main(['--config-file', str(conf), 'upgrade', 'check',
                        '--json'], view_factory=lambda conf: view(aggs))
    assert code == status.FAILURE
    out = json.loads(capsys.readouterr().out)
    by_name = {c['check']: c for c in out['checks']}
    assert by_name['Fault-domain topology']['result'] == status.FAILURE
    assert 'host h3 is in 2 rack domains' in \
        by_name['Fault-domain topology']['details']
    conf.write_text('[topology]\nlevels = host,rack,rack\n')
    code = status.main(['--config-file', str(conf), 'upgrade', 'check'],
                       view_factory=lambda conf: view(GOOD_AGGS))
    assert code == status.FAILURE
    assert "[topology] levels names 'rack' twice" in capsys.readouterr().out


def test_upper_case_keys_are_failures():
    aggs = GOOD_AGGS + [{'name': 'certified', 'hosts': ['h1'],
                         'metadata': {'HA:SAL': '1'}}]
    c = checks(view(aggs, flavors=[flavor('f3', **{'HA:SAL': '9'})]))
    result = c._check_ha_keys()
    assert result.code == status.FAILURE
    assert ("flavor f3 (f3): extra spec HA:SAL=9 is ignored: nova-ha keys "
            "are lower case (ha:sal)") in result.details
    assert ("aggregate certified: key HA:SAL=1 is ignored: nova-ha keys are "
            "lower case (ha:sal)") in result.details
