"""nova's MediumFakeDriver with node UUIDs that survive a restart.

``compute_driver = nova_ha_fake.StableMediumFakeDriver`` (importing this
module makes it ``nova.virt.nova_ha_fake``; nova loads drivers from
``nova.virt`` only), used by the multi-process simulated Nova
(nova_ha/sim/novaprocs.py). nova's fake drivers take a node's UUID from a
``uuidsentinel``, random in every process: a nova-compute started again on
a host (returned to service after a failure) then reports a new node UUID
for the same host and node name, and nova refuses to start it ("Duplicate
compute node record found"). A real driver's node UUID is stable (libvirt
keeps it in ``$state_path/compute_id``); here it is derived from the node
name (nova_internals.node_uuid, also each host's compute_id).
"""

import sys

from nova.virt import fake

from nova_ha.sim.nova_internals import node_uuid

#: ``[DEFAULT] compute_driver`` value of this driver.
DRIVER = 'nova_ha_fake.StableMediumFakeDriver'
sys.modules.setdefault('nova.virt.nova_ha_fake', sys.modules[__name__])


class StableMediumFakeDriver(fake.MediumFakeDriver):

    def get_available_resource(self, nodename):
        resources = super().get_available_resource(nodename)
        resources['uuid'] = node_uuid(nodename)
        return resources

    def get_nodenames_by_uuid(self, refresh=False):
        return {node_uuid(n): n for n in self.get_available_nodes()}
