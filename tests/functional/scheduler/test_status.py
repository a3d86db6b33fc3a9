"""nova-ha-status upgrade check against the real Nova API over HTTP."""

import contextlib
import io
import json
import os
import tempfile

from nova import utils as nova_utils

from nova_ha.cmd import status
from nova_ha.sim import cloud as sim_cloud
from nova_ha.sim import http as sim_http
from nova_ha.sim import layout
from tests.functional.scheduler import base


class TestStatusCheck(base.SchedulerTestCase):

    COMPUTE_HOSTS = ('host1', 'host2', 'host3')
    HOST_WEIGHTS = None

    def serve_api(self):
        port = sim_cloud.free_port()
        token = 'status-check-token'
        server = sim_http.serve_nova_api(self.api_fixture.app(), port, token,
                                         sim_cloud.PROJECT_ID)
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        fd, path = tempfile.mkstemp(suffix='.conf')
        self.addCleanup(os.unlink, path)
        with os.fdopen(fd, 'w') as f:
            f.write('[nova]\nauth_type = admin_token\n'
                    'endpoint = http://127.0.0.1:%d/v2.1\ntoken = %s\n'
                    '[topology]\nlevels = host,rack,power_domain,'
                    'availability_zone\n' % (port, token))
        return path

    def run_check(self, config):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = status.main(['--config-file', config, 'upgrade', 'check',
                                '--json'])
        return code, {c['check']: c for c in
                      json.loads(out.getvalue())['checks']}

    def test_reports_topology_keys_and_sal_problems(self):
        config = self.serve_api()
        self.rack_layout(racks=3, sal={'host1': 2})
        self.flavor({'ha:sal': '2'}, name='silver')
        code, checks = self.run_check(config)
        self.assertEqual(status.SUCCESS, code, checks)

        # host2 also in another rack; a typo on an aggregate; a SAL 1
        # flavor nobody is certified for; flavor specs that predate nova's
        # validation (microversion < 2.86 does not validate).
        layout.create_aggregate(self.admin_api, 'rack-x', ['host2'],
                                {'ha:rack': 'r9', 'ha:rakc': 'r1'})
        gold = self.flavor({'ha:sal': '1'}, name='gold')
        old = self.flavor(name='old')
        with nova_utils.temporary_mutation(self.admin_api,
                                           microversion='2.85'):
            self.admin_api.post_extra_spec(
                old, {'extra_specs': {'ha:sal': '7', 'ha:sal_level': '1'}})
        code, checks = self.run_check(config)
        self.assertEqual(status.FAILURE, code)
        topo = checks['Fault-domain topology']
        self.assertEqual(status.FAILURE, topo['result'])
        self.assertIn('host host2 is in 2 rack domains: r2 (aggregate '
                      'rack-r2), r9 (aggregate rack-x)', topo['details'])
        keys = checks['ha: aggregate keys and flavor extra specs']
        self.assertEqual(status.FAILURE, keys['result'])
        self.assertIn("flavor old (%s): extra spec ha:sal='7' is invalid; "
                      "allowed values: 1, 2, 3." % old, keys['details'])
        self.assertIn('flavor old (%s): unknown extra spec ha:sal_level'
                      % old, keys['details'])
        self.assertIn('aggregate rack-x: unknown key ha:rakc',
                      keys['details'])
        sal = checks['SAL flavors have certified hosts']
        self.assertEqual(status.FAILURE, sal['result'])
        self.assertIn('flavor gold (%s) has ha:sal=1 but no compute host is '
                      'certified for SAL 1' % gold, sal['details'])
        self.assertNotIn('silver', sal['details'])
