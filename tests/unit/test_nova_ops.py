"""nova_ha.nova_ops: one Nova wrapper, the evacuator's resource view and
the drain's dict view over the same calls."""

import types

from novaclient import exceptions as nova_exc

from nova_ha import nova_ops


class Res(types.SimpleNamespace):
    def to_dict(self):
        return dict(vars(self))


class Servers:
    def __init__(self, known):
        self.known = known

    def get(self, uuid):
        if uuid not in self.known:
            raise nova_exc.NotFound(404)
        return self.known[uuid]


class Services:
    def __init__(self, services):
        self.services = services
        self.calls = []

    def list(self, host=None, binary=None):
        return [s for s in self.services
                if host is None or s.host == host]

    def enable(self, service_id):
        self.calls.append(('enable', service_id))

    def disable_log_reason(self, service_id, reason):
        self.calls.append(('disable', service_id, reason))


def client():
    return types.SimpleNamespace(
        servers=Servers({'s1': Res(id='s1', status='ACTIVE')}),
        services=Services([Res(id='a', host='c1', status='enabled',
                               forced_down=False),
                           Res(id='b', host='c2', status='disabled',
                               forced_down=False)]),
        server_groups=types.SimpleNamespace(list=lambda all_projects: [
            Res(id='g1', name='vnf', members=['s1', 's2'])]))


def test_client_made_on_first_use_only():
    made = []
    ops = nova_ops.NovaOps(factory=lambda: made.append(1) or client())
    assert made == []
    assert ops.server('s1').status == 'ACTIVE'
    assert ops.client is ops.nova and made == [1]


def test_server_views():
    ops = nova_ops.NovaOps(client())
    assert ops.server('gone') is None and ops.server_dict('gone') is None
    assert ops.server_dict('s1') == {'id': 's1', 'status': 'ACTIVE'}


def test_service_views():
    ops = nova_ops.NovaOps(client())
    assert sorted(ops.compute_services()) == ['c1', 'c2']
    assert [s['id'] for s in ops.compute_service_dicts()] == ['a', 'b']
    assert ops.compute_service('c2')['status'] == 'disabled'
    assert ops.compute_service('c9') is None
    ops.disable_service('a', 'x' * 300)
    ops.enable_service_id('b')
    assert ops.nova.services.calls == [('disable', 'a', 'x' * 255),
                                       ('enable', 'b')]


def test_server_group_views():
    ops = nova_ops.NovaOps(client())
    assert ops.server_groups() == {'s1': 'g1', 's2': 'g1'}
    assert ops.server_group_dicts()['s2']['name'] == 'vnf'


def test_time_parsing():
    assert str(nova_ops.parse_time('2026-01-02T03:04:05.123456Z')) == \
        '2026-01-02 03:04:05'
