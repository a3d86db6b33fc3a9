"""Inventory: load-time validation (errors name host and field), host-name
matching (exact, then short name, ambiguity is an error), secrets."""

import os

import pytest
import yaml

from nova_ha.fencing import base
from nova_ha.fencing import inventory
from nova_ha.fencing.drivers import ipmi
from nova_ha.fencing.drivers import ironic
from nova_ha.fencing.drivers import redfish

PW = 'Sup3r-Secret-PW'
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__)))))


def ipmi_host(**kw):
    h = {'driver': 'ipmi', 'address': '10.0.0.10', 'username': 'admin',
         'password': PW}
    h.update(kw)
    return {k: v for k, v in h.items() if v is not None}


def parse(hosts, **top):
    data = {'hosts': hosts}
    data.update(top)
    return inventory.parse(data)


def bad(hosts, host, field, *words, **top):
    with pytest.raises(base.InventoryError) as ei:
        parse(hosts, **top)
    msg = str(ei.value)
    assert ei.value.field == field, msg
    if host is not None:
        assert ei.value.host == host, msg
        assert host in msg
    assert field in msg
    for w in words:
        assert w in msg, msg
    assert PW not in msg and PW not in repr(ei.value)
    return msg


def test_drivers_come_from_entry_points():
    classes = inventory.driver_classes()
    assert classes['ipmi'] is ipmi.IPMIDriver
    assert classes['redfish'] is redfish.RedfishDriver
    assert classes['ironic'] is ironic.IronicDriver
    for cls in classes.values():
        assert {base.CAP_POWER_STATE, base.CAP_POWER_OFF} <= cls.capabilities


def test_valid_ipmi_entry_defaults_port_623():
    inv = parse({'compute-0.example.org': ipmi_host()})
    e = inv.lookup('compute-0.example.org')
    assert (e.driver, e.address, e.port, e.username) == (
        'ipmi', '10.0.0.10', 623, 'admin')
    assert e.password.reveal() == PW


def test_sample_inventory_loads(tmp_path):
    with open(os.path.join(ROOT, 'etc', 'fencing-inventory.yaml.sample')) as f:
        text = f.read()
    data = yaml.safe_load(text)
    # The sample's password files do not exist here: point them at one.
    pw = tmp_path / 'pw'
    pw.write_text(PW + '\n')

    ca = tmp_path / 'ca.pem'
    ca.write_text('x')

    def fix(d):
        if isinstance(d, dict):
            if 'password_file' in d:
                d['password_file'] = str(pw)
            if isinstance(d.get('verify_tls'), str):
                d['verify_tls'] = str(ca)
            for v in d.values():
                fix(v)
    fix(data)
    inv = inventory.parse(data)
    assert len(inv) >= 3
    assert {e.driver for e in inv} == {'ipmi', 'redfish', 'ironic'}


@pytest.mark.parametrize('entry,field,words', [
    (ipmi_host(driver='ipmii'), 'driver', ['unknown driver', 'ipmii']),
    (ipmi_host(driver=None), 'driver', ['missing']),
    (ipmi_host(address=None), 'address', ['missing']),
    (ipmi_host(address='10.0.0.300'), 'address', ['10.0.0.300']),
    (ipmi_host(address='bmc_0 .example'), 'address', []),
    (ipmi_host(address='https://10.0.0.1'), 'address', []),
    (ipmi_host(address=''), 'address', []),
    (ipmi_host(port=0), 'port', ['1-65535']),
    (ipmi_host(port=70000), 'port', ['70000']),
    (ipmi_host(port='abc'), 'port', ['abc']),
    (ipmi_host(port=True), 'port', []),
    (ipmi_host(username=None), 'username', ['missing']),
    (ipmi_host(password=None), 'password', ['missing']),
    (ipmi_host(pasword='x'), 'pasword', ['unknown field']),
    (ipmi_host(privilege='root'), 'privilege', ['ADMINISTRATOR']),
    (ipmi_host(cipher_suite=99), 'cipher_suite', []),
    (ipmi_host(password_file='/nonexistent/pw'), 'password',
     ['not both']),
])
def test_bad_ipmi_entry_names_host_and_field(entry, field, words):
    bad({'compute-1': entry}, 'compute-1', field, *words)


def test_password_file(tmp_path):
    pw = tmp_path / 'bmc.pass'
    pw.write_text(PW + '\n')
    inv = parse({'c1': ipmi_host(password=None, password_file=str(pw))})
    assert inv.lookup('c1').password.reveal() == PW   # newline stripped


def test_password_file_relative_to_inventory(tmp_path):
    (tmp_path / 'bmc.pass').write_text(PW)
    path = tmp_path / 'inv.yaml'
    path.write_text(yaml.safe_dump({'hosts': {'c1': ipmi_host(
        password=None, password_file='bmc.pass')}}))
    assert inventory.load(str(path)).lookup('c1').password.reveal() == PW


def test_password_file_unreadable_or_empty(tmp_path):
    bad({'c1': ipmi_host(password=None, password_file=str(tmp_path / 'no'))},
        'c1', 'password_file', 'cannot read')
    empty = tmp_path / 'empty'
    empty.write_text('')
    bad({'c1': ipmi_host(password=None, password_file=str(empty))},
        'c1', 'password_file', 'empty')


def test_defaults_are_merged_and_overridden(tmp_path):
    pw = tmp_path / 'pw'
    pw.write_text('from-file')
    inv = parse({'c1': {'driver': 'ipmi', 'address': '10.0.0.1'},
                 'c2': {'driver': 'ipmi', 'address': '10.0.0.2',
                        'password': PW, 'username': 'root'}},
                defaults={'username': 'admin', 'password_file': str(pw)})
    assert inv.lookup('c1').password.reveal() == 'from-file'
    assert inv.lookup('c1').username == 'admin'
    assert inv.lookup('c2').password.reveal() == PW
    assert inv.lookup('c2').username == 'root'


@pytest.mark.parametrize('data,field', [
    (None, 'hosts'),
    ([], 'hosts'),
    ({}, 'hosts'),
    ({'hosts': {}}, 'hosts'),
    ({'hosts': ['c1']}, 'hosts'),
    ({'hosts': {'c1': ipmi_host()}, 'hostz': {}}, 'hostz'),
    ({'hosts': {'c1': ipmi_host()}, 'defaults': 'x'}, 'defaults'),
])
def test_bad_structure(data, field):
    with pytest.raises(base.InventoryError) as ei:
        inventory.parse(data)
    assert ei.value.field == field
    assert field in str(ei.value)


def test_bad_host_names():
    bad({'bad host!': ipmi_host()}, 'bad host!', 'host', 'valid host name')
    bad({'c1': 'ipmi'}, 'c1', 'host', 'mapping')


def test_same_host_twice_case_insensitive():
    msg = bad({'Compute-1': ipmi_host(), 'compute-1.': ipmi_host()},
              'compute-1.', 'host', 'twice')
    assert 'Compute-1' in msg


def test_yaml_duplicate_key_refused(tmp_path):
    path = tmp_path / 'inv.yaml'
    path.write_text('hosts:\n  c1: {driver: ipmi, address: 10.0.0.1, '
                    'username: a, password: %s}\n  c1: {driver: ipmi, '
                    'address: 10.0.0.2, username: a, password: %s}\n'
                    % (PW, PW))
    with pytest.raises(base.InventoryError) as ei:
        inventory.load(str(path))
    assert 'duplicate key' in str(ei.value) and "'c1'" in str(ei.value)


def test_yaml_syntax_error_does_not_echo_the_file(tmp_path):
    path = tmp_path / 'inv.yaml'
    path.write_text('hosts:\n  c1:\n    password: "%s\n    driver: [ipmi\n'
                    % PW)
    with pytest.raises(base.InventoryError) as ei:
        inventory.load(str(path))
    assert 'not valid YAML' in str(ei.value)
    assert 'line' in str(ei.value)
    assert PW not in str(ei.value)


def test_missing_file_and_unset_path(tmp_path):
    with pytest.raises(base.InventoryError) as ei:
        inventory.load(str(tmp_path / 'nope.yaml'))
    assert 'cannot read' in str(ei.value)
    with pytest.raises(base.InventoryError) as ei:
        inventory.load('')
    assert 'inventory_file' in str(ei.value)


# -- redfish -------------------------------------------------------------

def rf(**kw):
    h = {'driver': 'redfish', 'address': 'https://10.0.0.11',
         'username': 'root', 'password': PW}
    h.update(kw)
    return {k: v for k, v in h.items() if v is not None}


def test_redfish_defaults_verify_tls_true():
    e = parse({'c1': rf()}).lookup('c1')
    assert e.get('verify_tls') is True
    assert e.get('url') == 'https://10.0.0.11'
    assert e.get('auth') == 'basic'


def test_redfish_address_forms(tmp_path):
    assert parse({'c1': rf(address='10.0.0.5', port=8443)}).lookup(
        'c1').get('url') == 'https://10.0.0.5:8443'
    assert parse({'c1': rf(address='http://bmc1.example.org:8000')}).lookup(
        'c1').get('url') == 'http://bmc1.example.org:8000'
    assert parse({'c1': rf(address='fd00::5')}).lookup(
        'c1').get('url') == 'https://[fd00::5]'
    e = parse({'c1': rf(system_id='abc')}).lookup('c1')
    assert e.get('system_id') == '/redfish/v1/Systems/abc'
    e = parse({'c1': rf(verify_tls=False)}).lookup('c1')
    assert e.get('verify_tls') is False
    ca = tmp_path / 'ca.pem'
    ca.write_text('x')
    e = parse({'c1': rf(verify_tls=str(ca))}).lookup('c1')
    assert e.get('verify_tls') == str(ca)


@pytest.mark.parametrize('entry,field', [
    (rf(address=None), 'address'),
    (rf(address='ftp://10.0.0.1'), 'address'),
    (rf(address='https://10.0.0.1:99999'), 'address'),
    (rf(address='https://10.0.0.1:443', port=8443), 'port'),
    (rf(username=None), 'username'),
    (rf(password=None), 'password'),
    (rf(verify_tls='/nonexistent/ca.pem'), 'verify_tls'),
    (rf(verify_tls=3), 'verify_tls'),
    (rf(auth='digest'), 'auth'),
    (rf(system_id=''), 'system_id'),
    (rf(node='x'), 'node'),
])
def test_bad_redfish_entry(entry, field):
    bad({'c1': entry}, 'c1', field)


# -- ironic --------------------------------------------------------------

IRONIC = {'auth_type': 'none', 'endpoint': 'http://127.0.0.1:6385'}


def test_ironic_entry():
    inv = parse({'c1': {'driver': 'ironic'},
                 'c2': {'driver': 'ironic', 'node': 'node-2'}},
                ironic=IRONIC)
    assert inv.lookup('c2').get('node') == 'node-2'
    assert inv.ironic['endpoint'] == IRONIC['endpoint']


def test_ironic_section_secrets_are_wrapped():
    inv = parse({'c1': {'driver': 'ironic'}}, ironic={
        'auth_type': 'password', 'auth_url': 'http://127.0.0.1:5000/v3',
        'username': 'nova-ha', 'password': PW, 'project_name': 'service'})
    assert isinstance(inv.ironic['password'], inventory.Secret)
    assert PW not in repr(inv.ironic)


@pytest.mark.parametrize('hosts,ironic_section,host,field', [
    ({'c1': {'driver': 'ironic'}}, None, 'c1', 'driver'),
    ({'c1': {'driver': 'ironic', 'address': '10.0.0.1'}}, IRONIC, 'c1',
     'address'),
    ({'c1': {'driver': 'ironic', 'password': PW}}, IRONIC, 'c1',
     'password'),
    ({'c1': {'driver': 'ironic', 'node': ''}}, IRONIC, 'c1', 'node'),
    ({'c1': {'driver': 'ironic'}}, {'auth_type': 'none'}, None,
     'ironic.endpoint'),
    ({'c1': {'driver': 'ironic'}}, {'auth_type': 'bogus'}, None,
     'ironic.auth_type'),
    ({'c1': {'driver': 'ironic'}}, dict(IRONIC, usernam='x'), None,
     'ironic.usernam'),
])
def test_bad_ironic(hosts, ironic_section, host, field):
    top = {'ironic': ironic_section} if ironic_section else {}
    bad(hosts, host, field, **top)


# -- host-name matching --------------------------------------------------

@pytest.fixture
def names():
    return parse({
        'compute-0.dc1.example.org': ipmi_host(address='10.0.0.1'),
        'compute-1': ipmi_host(address='10.0.0.2'),
        'compute-2.dc1.example.org': ipmi_host(address='10.0.0.3'),
        'compute-2.dc2.example.org': ipmi_host(address='10.0.0.4'),
        'compute-3': ipmi_host(address='10.0.0.5'),
        'compute-3.dc1.example.org': ipmi_host(address='10.0.0.6'),
    })


def test_exact_match_case_and_trailing_dot(names):
    assert names.lookup('compute-0.dc1.example.org').address == '10.0.0.1'
    assert names.lookup('COMPUTE-0.dc1.example.org.').address == '10.0.0.1'


def test_short_name_matches_inventory_fqdn(names):
    assert names.lookup('compute-0').host == 'compute-0.dc1.example.org'


def test_fqdn_matches_inventory_short_name(names):
    assert names.lookup('compute-1.dc9.example.org').host == 'compute-1'


def test_fqdn_never_matches_another_fqdn(names):
    with pytest.raises(base.HostNotFound) as ei:
        names.lookup('compute-0.dc2.example.org')
    assert ei.value.host == 'compute-0.dc2.example.org'


def test_ambiguous_short_name_names_both(names):
    with pytest.raises(base.AmbiguousHost) as ei:
        names.lookup('compute-2')
    msg = str(ei.value)
    assert 'compute-2.dc1.example.org' in msg
    assert 'compute-2.dc2.example.org' in msg


def test_exact_match_wins_over_short_candidates(names):
    assert names.lookup('compute-3').address == '10.0.0.5'
    assert names.lookup('compute-3.dc1.example.org').address == '10.0.0.6'
    assert names.lookup('compute-2.dc2.example.org').address == '10.0.0.4'


def test_unknown_host(names):
    with pytest.raises(base.HostNotFound) as ei:
        names.lookup('compute-9')
    assert 'compute-9' in str(ei.value)
    assert 'compute-9' not in names


def test_require_names_every_missing_host(names):
    assert names.missing(['compute-0', 'compute-1', 'compute-2', 'x']) == [
        'compute-2', 'x']
    with pytest.raises(base.InventoryError) as ei:
        names.require(['compute-0', 'compute-9', 'compute-8'])
    assert 'compute-9' in str(ei.value) and 'compute-8' in str(ei.value)
    with pytest.raises(base.InventoryError):
        inventory.parse({'hosts': {'c1': ipmi_host()}},
                        expected_hosts=['c1', 'c2'])


# -- secrets -------------------------------------------------------------

def test_secret_never_shows():
    s = inventory.Secret(PW)
    assert PW not in repr(s) and PW not in str(s) and PW not in '%s' % s
    assert PW not in '{}'.format(s)
    with pytest.raises(TypeError):
        import pickle
        pickle.dumps(s)


def test_entry_and_inventory_reprs_hide_password():
    inv = parse({'c1': ipmi_host()})
    e = inv.lookup('c1')
    assert PW not in repr(e) and PW not in str(e.__dict__)
    assert PW not in repr(list(inv))


def test_errors_never_contain_password():
    for entry in (ipmi_host(port='x'), ipmi_host(address='999.1.1.1'),
                  ipmi_host(driver='nope'), ipmi_host(colour='blue'),
                  ipmi_host(username=None)):
        with pytest.raises(base.InventoryError) as ei:
            parse({'c1': entry})
        assert PW not in str(ei.value) and PW not in repr(ei.value.args)


def test_world_readable_inventory_with_passwords_warns(tmp_path, caplog):
    path = tmp_path / 'inv.yaml'
    path.write_text(yaml.safe_dump({'hosts': {'c1': ipmi_host()}}))
    os.chmod(path, 0o644)
    inventory.load(str(path))
    assert 'chmod 600' in caplog.text and PW not in caplog.text
    caplog.clear()
    os.chmod(path, 0o600)
    inventory.load(str(path))
    assert 'chmod 600' not in caplog.text


def test_driver_that_cannot_be_imported_is_an_error_only_where_used():
    drivers = dict(inventory.driver_classes())
    drivers['vendor'] = ImportError('No module named vendor_bmc')
    inv = inventory.parse({'hosts': {'c1': ipmi_host()}}, drivers=drivers)
    assert len(inv) == 1
    with pytest.raises(base.InventoryError) as ei:
        inventory.parse({'hosts': {'c2': {'driver': 'vendor'}}},
                        drivers=drivers)
    assert ei.value.host == 'c2' and ei.value.field == 'driver'
    assert 'vendor_bmc' in str(ei.value)
