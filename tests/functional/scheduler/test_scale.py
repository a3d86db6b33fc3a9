"""Hard rack anti-affinity, 5,000-host topology, real Nova (issue 18).

The in-process Nova runs two fake-virt computes (host1, host2); its API
database also holds the topology of 5,000 more hosts, racks of 10
(aggregates ``ha:rack=rN``, written in bulk: nova's API would refuse hosts
without a compute service), and its cell database 20 members of an
anti-affinity server group, one on the first host of each of racks 0-19.
host1 is in rack r0, host2 in the last rack.

- A real boot (API, conductor, scheduler, placement) with the hints
  ``group`` and ``ha_anti_affinity_level=rack`` lands on host2 although
  nova's weigher prefers host1: the members' racks come from the real
  databases (nova-ha's NovaDBLookup), at this size.
- The same request, as nova's conductor builds it (nova's own
  ``setup_instance_group`` fills the group's members and hosts), through
  nova's filter handler on HostStates for all 5,002 hosts with the
  aggregates read back from the API database: exactly the hosts outside
  racks 0-19 and the booted member's rack pass.
- A member whose instance mapping is gone (nova's own group.hosts still
  finds it: it asks the cells by uuid) keeps its rack full; before issue
  18's fix nova-ha did not count it and passed that rack.
"""

import os
import time

from nova import context as nova_context
from nova import objects
from nova.db.api import api as api_db
from nova.db.api import models as api_models
from nova.scheduler import filters as nova_filters
from nova.scheduler import host_manager
from nova.scheduler import utils as scheduler_utils
from oslo_utils import uuidutils

from tests.functional.scheduler import base

# NOVA_HA_SCALE_HOSTS=20000 for a manual run at 20,000 hosts.
N_HOSTS = int(os.environ.get('NOVA_HA_SCALE_HOSTS', '5000'))
PER_RACK = 10
MEMBERS = 20
FILTER = 'nova_ha.scheduler.filters.fault_domain.' \
    'FaultDomainAntiAffinityFilter'


def fake_host(i):
    return 'cmp%05d' % i


class TestRackAntiAffinityAtScale(base.SchedulerTestCase):
    COMPUTE_HOSTS = ('host1', 'host2')
    HOST_WEIGHTS = {'host1': 100, 'host2': 50}

    def _bulk_topology(self):
        """Rack aggregates for N_HOSTS hosts (plus host1, host2)."""
        racks = N_HOSTS // PER_RACK
        members_of = {r: [fake_host(r * PER_RACK + i)
                          for i in range(PER_RACK)] for r in range(racks)}
        members_of[0].append('host1')
        members_of[racks - 1].append('host2')
        engine = api_db.get_engine()
        with engine.begin() as conn:
            ids = {}
            for r in range(racks):
                res = conn.execute(api_models.Aggregate.__table__.insert(),
                                   {'uuid': uuidutils.generate_uuid(),
                                    'name': 'rack-r%d' % r})
                ids[r] = res.inserted_primary_key[0]
            conn.execute(api_models.AggregateMetadata.__table__.insert(),
                         [{'aggregate_id': ids[r], 'key': 'ha:rack',
                           'value': 'r%d' % r} for r in range(racks)])
            conn.execute(api_models.AggregateHost.__table__.insert(),
                         [{'aggregate_id': ids[r], 'host': h}
                          for r in range(racks) for h in members_of[r]])
        rack_of = {h: 'r%d' % r for r, hs in members_of.items() for h in hs}
        return rack_of

    def _members(self, ctxt, group_uuid):
        """MEMBERS instances in cell1, one on the first host of racks 0-19."""
        cell = [c for c in objects.CellMappingList.get_all(ctxt)
                if not c.is_cell0()][0]
        uuids = []
        project = self.api_fixture.project_id
        with nova_context.target_cell(ctxt, cell) as cctxt:
            for r in range(MEMBERS):
                u = uuidutils.generate_uuid()
                objects.Instance(context=cctxt, uuid=u,
                                 host=fake_host(r * PER_RACK),
                                 display_name='member-%d' % r,
                                 project_id=project, user_id='vnfm',
                                 vm_state='active').create()
                objects.InstanceMapping(ctxt, instance_uuid=u,
                                        cell_mapping=cell,
                                        project_id=project).create()
                uuids.append(u)
        objects.InstanceGroup.add_members(ctxt, group_uuid, uuids)
        return cell, uuids

    def test_hard_rack_rule_holds_at_5000_hosts(self):
        ctxt = nova_context.get_admin_context()
        # The members written into the cell count against the project.
        self.flags(instances=-1, cores=-1, ram=-1, server_group_members=-1,
                   group='quota')
        t0 = time.monotonic()
        rack_of = self._bulk_topology()
        # nova-scheduler learns aggregates through RPC from nova-api; the
        # bulk insert bypassed the API, so hand them over the same way.
        aggregates = objects.AggregateList.get_all(ctxt)
        self.assertEqual(N_HOSTS // PER_RACK, len(aggregates))
        self.scheduler.manager.host_manager.update_aggregates(aggregates)
        group = self.group()
        cell, members = self._members(ctxt, group['id'])

        # 1. A real boot: host1 (rack r0, holding a member) is nova's
        # choice without nova-ha; the rule sends the server to host2.
        server = self.boot({'ha_anti_affinity_level': 'rack'}, group)[0]
        self.assertEqual('host2', self.host_of(server))
        member_hosts = [fake_host(r * PER_RACK) for r in range(MEMBERS)]
        member_hosts.append('host2')

        # 2. The exact passing set over every host, as nova's conductor
        # builds the request and nova's filter handler runs the filter.
        by_host = {}
        for agg in aggregates:
            for h in agg.hosts:
                by_host.setdefault(h, []).append(agg)
        states = []
        for h in sorted(rack_of):
            hs = host_manager.HostState(h, h, cell.uuid)
            hs.aggregates = by_host[h]
            states.append(hs)
        def rack_spec():
            """A new member's RequestSpec, as nova-scheduler builds it."""
            spec = objects.RequestSpec(
                ctxt, instance_uuid=uuidutils.generate_uuid(),
                instance_group=objects.InstanceGroup.get_by_uuid(
                    ctxt, group['id']),
                scheduler_hints={'group': [group['id']],
                                 'ha_anti_affinity_level': ['rack']},
                flavor=objects.Flavor(extra_specs={}))
            scheduler_utils.setup_instance_group(ctxt, spec)
            return spec

        spec = rack_spec()
        self.assertEqual(sorted(member_hosts),
                         sorted(spec.instance_group.hosts))
        self.assertEqual(MEMBERS + 1, len(spec.instance_group.members))
        handler = nova_filters.HostFilterHandler()
        filters = [cls() for cls in handler.get_matching_classes([FILTER])]

        def run(spec):
            return {hs.host for hs in handler.get_filtered_objects(
                filters, iter(states), spec, 0)}

        full = {rack_of[h] for h in member_hosts}
        expected = {h for h, r in rack_of.items() if r not in full}
        self.assertEqual(expected, run(spec))
        self.assertEqual(N_HOSTS - (MEMBERS + 1) * PER_RACK, len(expected))
        self.assertNotIn('found none there', self.log())

        # 3. A member nova-ha's look-up cannot find (its instance mapping
        # is gone) but nova's group.hosts lists: its rack stays full.
        objects.InstanceMapping.get_by_instance_uuid(
            ctxt, members[5]).destroy()
        spec = rack_spec()
        self.assertIn(fake_host(5 * PER_RACK), spec.instance_group.hosts)
        self.assertEqual(expected, run(spec))
        self.assertIn('server group %s: nova lists %s as running members '
                      'but the member look-up found none there'
                      % (group['id'], fake_host(5 * PER_RACK)), self.log())
        print('%d hosts: set-up and checks %.1f s'
              % (len(states), time.monotonic() - t0))
