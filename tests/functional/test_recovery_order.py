"""Recovery items from the real Nova API: SAL, priority, ha:recovery=none,
server group, and the order the evacuator follows."""

from nova_ha import nova_ops
from nova_ha import journal as journal_mod
from tests.functional import base


class TestRecoveryOrder(base.NovaHATestCase):

    COMPUTE_HOSTS = ('host1', 'host2')
    HOST_WEIGHTS = {'host1': 100, 'host2': 10}

    def _flavor(self, name, specs):
        flavor_id = self._create_flavor(name=name, vcpu=1, memory_mb=256,
                                        disk=1)
        self.admin_api.post_extra_spec(flavor_id, {'extra_specs': specs})
        return flavor_id

    def test_items_and_order(self):
        sal1_low = self._flavor('sal1-low', {'ha:sal': '1',
                                             'ha:recovery_priority': '1'})
        sal1_high = self._flavor('sal1-high', {'ha:sal': '1',
                                               'ha:recovery_priority': '900'})
        sal3 = self._flavor('sal3', {'ha:sal': '3'})
        plain = self._flavor('plain', {})
        skip = self._flavor('skip', {'ha:recovery': 'none'})
        group = self.admin_api.post_server_groups(
            {'name': 'g', 'policy': 'anti-affinity'})
        names = {}
        for name, flavor in (('a-sal3', sal3), ('b-plain', plain),
                             ('c-sal1-low', sal1_low), ('d-skip', skip),
                             ('e-sal1-high', sal1_high)):
            server = self._build_server(name=name, flavor_id=flavor,
                                        networks='none')
            server = self.api.post_server(
                {'server': server,
                 'os:scheduler_hints': {'group': group['id']}
                 if name == 'e-sal1-high' else {}})
            self._wait_for_state_change(server, 'ACTIVE')
            names[server['id']] = name

        items = nova_ops.NovaOps(self.nova_client()).instances_on('host1')
        by_name = {i['name']: i for i in items}
        self.assertEqual(set(names.values()), set(by_name))
        self.assertEqual(1, by_name['e-sal1-high']['sal'])
        self.assertEqual(900, by_name['e-sal1-high']['priority'])
        self.assertEqual(group['id'], by_name['e-sal1-high']['server_group'])
        self.assertIsNone(by_name['b-plain']['sal'])
        self.assertEqual('skipped', by_name['d-skip']['state'])
        self.assertIn('ha:recovery=none', by_name['d-skip']['last_error'])

        url = 'sqlite:///%s/j.sqlite' % self.useFixture(
            base.novastack.nova_fixtures.fixtures.TempDir()).path
        journal_mod.upgrade(url)
        j = journal_mod.Journal(url)
        self.addCleanup(j.close)
        rec, _ = j.open_recovery('host1', reason='HOST_DOWN')
        j.add_recovery_items(rec.id, items)
        order = [i.name for i in j.list_recovery_items(
            rec.id, states=['pending'])]
        # SAL1 first, higher ha:recovery_priority first, then SAL3, then
        # instances of flavors without a SAL.
        self.assertEqual(['e-sal1-high', 'c-sal1-low', 'a-sal3', 'b-plain'],
                         order)
