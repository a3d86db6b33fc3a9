"""Ironic driver against a real standalone Ironic (API + conductor, SQLite,
noauth) started once per test session: fake-hardware nodes, and an ipmi
hardware-type node whose BMC is a virtual BMC."""

import uuid

import pytest

from nova_ha.fencing import testing
from nova_ha.fencing.base import Outcome
from tests.functional.fencing.conftest import ipmi_entry
from tests.functional.fencing.conftest import make_fencer
from tests.functional.fencing.conftest import PASSWORD
from tests.functional.fencing.conftest import USER


def tag():
    return uuid.uuid4().hex[:8]


@pytest.fixture
def ironic(ironic_service):
    return ironic_service.client()


def settings(svc):
    return {'auth_type': 'none', 'endpoint': svc.endpoint}


def fake_node(client, name, instance_name=None, power='on'):
    node = client.node.create(driver='fake-hardware', name=name)
    if instance_name:
        client.node.update(node.uuid, [{
            'op': 'add', 'path': '/instance_info/display_name',
            'value': instance_name}])
    client.node.set_power_state(node.uuid, power)
    return node


def wait_power(client, node, want, timeout=20):
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.node.get(node, fields=['power_state']).power_state == want:
            return True
        time.sleep(0.1)
    return False


def test_fake_hardware_node_by_name(ironic_service, ironic):
    t = tag()
    node = fake_node(ironic, 'compute-%s' % t)
    assert wait_power(ironic, node.uuid, 'power on')
    # Nova knows the host by its FQDN, the node is named with the short one
    f = make_fencer({'compute-%s.example.org' % t: {'driver': 'ironic'}},
                    ironic=settings(ironic_service))
    assert f.status('compute-%s.example.org' % t).power_state == 'on'
    r = f.fence('compute-%s.example.org' % t)
    assert r.outcome is Outcome.FENCED, r.reason
    assert r.elapsed < 5.0       # ~0.15 s idle
    assert ironic.node.get(node.uuid).power_state == 'power off'
    assert f.power_on('compute-%s.example.org' % t).power_state == 'on'


def test_node_by_instance_info_hostname(ironic_service, ironic):
    t = tag()
    node = fake_node(ironic, 'rack3-slot%s' % t, 'compute-%s' % t)
    assert wait_power(ironic, node.uuid, 'power on')
    f = make_fencer({'compute-%s' % t: {'driver': 'ironic'}},
                    ironic=settings(ironic_service))
    r = f.fence('compute-%s' % t)
    assert r.outcome is Outcome.FENCED, r.reason
    assert ironic.node.get(node.uuid).power_state == 'power off'


def test_node_by_configured_uuid_and_name(ironic_service, ironic):
    t = tag()
    a = fake_node(ironic, 'node-a-%s' % t)
    b = fake_node(ironic, 'node-b-%s' % t)
    assert wait_power(ironic, b.uuid, 'power on')
    f = make_fencer({'c1': {'driver': 'ironic', 'node': a.uuid},
                     'c2': {'driver': 'ironic', 'node': 'node-b-%s' % t}},
                    ironic=settings(ironic_service))
    assert f.fence('c1').outcome is Outcome.FENCED
    assert f.fence('c2').outcome is Outcome.FENCED
    assert ironic.node.get(b.uuid).power_state == 'power off'


def test_ambiguous_and_missing_nodes_fail_with_names(ironic_service, ironic):
    t = tag()
    fake_node(ironic, 'compute-%s.dc1.example.org' % t)
    fake_node(ironic, 'compute-%s.dc2.example.org' % t)
    f = make_fencer({'compute-%s' % t: {'driver': 'ironic'},
                     'compute-none-%s' % t: {'driver': 'ironic'},
                     'c3': {'driver': 'ironic', 'node': 'no-node-%s' % t}},
                    ironic=settings(ironic_service), retries=0)
    r = f.fence('compute-%s' % t)
    assert r.outcome is Outcome.FAILED
    assert 'dc1' in r.reason and 'dc2' in r.reason
    r = f.fence('compute-none-%s' % t)
    assert r.outcome is Outcome.FAILED and 'no node' in r.reason
    r = f.fence('c3')
    assert r.outcome is Outcome.FAILED and 'not found' in r.reason


def test_ipmi_hardware_type_to_virtual_bmc(ironic_service, ironic, vbmc):
    """Ironic's conductor runs ipmitool against our virtual BMC."""
    bmc = vbmc()
    t = tag()
    node = ironic.node.create(
        driver='ipmi', name='compute-%s' % t, driver_info={
            'ipmi_address': '127.0.0.1', 'ipmi_port': bmc.port,
            'ipmi_username': USER, 'ipmi_password': PASSWORD})
    f = make_fencer({'compute-%s' % t: {'driver': 'ironic'}},
                    ironic=settings(ironic_service), power_off_timeout=20,
                    fence_timeout=25, poll_interval=0.2)
    r = f.fence('compute-%s' % t)
    assert r.outcome is Outcome.FENCED, r.reason
    assert ironic.node.get(node.uuid).power_state == 'power off'
    # The virtual BMC itself says off (read with our own ipmi driver).
    direct = make_fencer({'bmc': ipmi_entry(bmc)})
    assert direct.status('bmc').power_state == 'off'


def test_ironic_not_answering_is_unreachable():
    port = testing.free_port()
    f = make_fencer({'c1': {'driver': 'ironic', 'node': 'x'}},
                    ironic={'auth_type': 'none',
                            'endpoint': 'http://127.0.0.1:%d' % port},
                    command_timeout=0.5, fence_timeout=1.5)
    r = f.fence('c1')
    assert r.outcome is Outcome.UNREACHABLE, r.reason
    assert 'did not answer' in r.reason


def test_bmc_failure_behind_ironic_is_failed_with_ironic_reason(
        ironic_service, ironic, vbmc):
    """The conductor's power action fails (wrong BMC password in Ironic's
    driver_info): FAILED with Ironic's last_error, not a timeout."""
    bmc = vbmc()
    t = tag()
    wrong = 'Ironic-Wrong-Pw-%s' % t
    ironic.node.create(
        driver='ipmi', name='compute-%s' % t, driver_info={
            'ipmi_address': '127.0.0.1', 'ipmi_port': bmc.port,
            'ipmi_username': USER, 'ipmi_password': wrong})
    f = make_fencer({'compute-%s' % t: {'driver': 'ironic'}},
                    ironic=settings(ironic_service), power_off_timeout=20,
                    fence_timeout=30, retries=0, poll_interval=0.2)
    r = f.fence('compute-%s' % t)
    assert r.outcome is Outcome.FAILED, r.reason
    assert 'power off failed' in r.reason, r.reason
    assert r.elapsed < 15, r.elapsed        # ended by Ironic's error
    assert wrong not in r.reason
