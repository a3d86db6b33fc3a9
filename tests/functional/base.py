"""Base class for functional tests on a real in-process Nova."""

from nova_ha.sim import novastack
from nova_ha.sim import layout as sim_layout


class NovaHATestCase(novastack.NovaStack):
    """Real Nova (API, conductor, scheduler, placement, fake-virt computes).

    See NovaStackMixin for the class attributes that shape the stack.
    """

    def layout(self, **kwargs):
        """Lay out racks/power domains/AZs/SAL on this stack's hosts.

        Keyword arguments as for :func:`nova_ha.sim.layout.layout`.
        """
        return sim_layout.layout(self.admin_api, list(self.COMPUTE_HOSTS),
                               **kwargs)

    def nova_client(self, version='2.94'):
        """python-novaclient (keystoneauth1 session) against this stack.

        The same client code the daemons use in production; here requests
        reach nova's WSGI app through wsgi-intercept, as admin.
        """
        from keystoneauth1 import loading
        from keystoneauth1 import session
        from novaclient import client

        auth = loading.get_plugin_loader('admin_token').load_from_options(
            endpoint=self.api_fixture.base_url, token='admin')
        sess = session.Session(auth=auth, additional_headers={
            'X-Auth-User': 'admin',
            'X-Auth-Project-Id': self.api_fixture.project_id,
            'X-Roles': 'reader,member,admin'})
        return client.Client(version, session=sess)

    def host_of(self, server):
        server = self.admin_api.get_server(server['id'])
        return server['OS-EXT-SRV-ATTR:host']
