"""Host drain on a real in-process Nova (issue 7)."""

import io
import contextlib
import os
import tempfile
import time

from oslo_config import cfg

from nova_ha import journal as journal_mod
from nova_ha.conf import maintenance as maint_conf
from nova_ha.maintenance import cli
from nova_ha.maintenance import engine as engine_mod
from nova_ha import nova_ops
from nova_ha.maintenance import policy
from nova_ha.sim import novastack
from tests.functional import base
from tests.functional.maintenance import recorder as recorder_mod


class Collector:
    """Stands in for an oslo.messaging Notifier (same ``info`` call)."""

    def __init__(self):
        self.events = []

    def info(self, ctxt, event_type, payload):
        self.events.append((event_type, payload))

    def types(self):
        return [e for e, _ in self.events]


class DrainTestCase(base.NovaHATestCase):
    COMPUTE_HOSTS = ('host1', 'host2', 'host3')
    CAST_AS_CALL = False        # moves must overlap, as in a cloud
    ENABLED_FILTERS = novastack.NOVA_DEFAULT_FILTERS + (
        'FaultDomainAntiAffinityFilter', 'MigrationPolicyFilter')
    HOLD = 0.3

    def _setup_services(self):
        # nova-compute runs one outgoing live migration at a time by
        # default; let the drain's own limits be what is tested.
        self.flags(max_concurrent_live_migrations=8)
        super()._setup_services()

    def setUp(self):
        super().setUp()
        self.rec = recorder_mod.MoveRecorder(hold=self.HOLD)
        for p in self.rec.patches():
            self.useFixture(p)
        tmp = tempfile.mkdtemp(prefix='nova-ha-drain-')
        self.db_url = 'sqlite:///' + os.path.join(tmp, 'journal.sqlite')
        journal_mod.upgrade(self.db_url)
        self.notes = Collector()
        maint_conf.register_opts(cfg.CONF)
        self.flags(poll_interval=0.1, wait_timeout=60, group='maintenance')
        self.flags(instances=-1, cores=-1, ram=-1, group='quota')

    def engine(self, **kw):
        kw.setdefault('limits', policy.Limits(max_concurrent_moves=4))
        kw.setdefault('move_start_timeout', 30.0)
        return engine_mod.Engine(
            nova_ops.NovaOps(self.nova_client()),
            journal_mod.Journal(self.db_url), notifier=self.notes, **kw)

    def boot_many(self, specs):
        """Boot in parallel. specs: dicts with name and optionally host,
        flavor_id, metadata, group, hints, az. -> {name: server}."""
        posted = {}
        for spec in specs:
            body = self._build_server(
                name=spec['name'], flavor_id=spec.get('flavor_id') or '1',
                networks='none', az=spec.get('az'), host=spec.get('host'))
            if spec.get('metadata'):
                body['metadata'] = spec['metadata']
            req = {'server': body}
            hints = dict(spec.get('hints') or {})
            if spec.get('group'):
                hints['group'] = spec['group']
            if hints:
                req['os:scheduler_hints'] = hints
            posted[spec['name']] = self.admin_api.post_server(req)
        return {n: self._wait_for_state_change(s, 'ACTIVE')
                for n, s in posted.items()}

    def group(self, name, policy_name='soft-anti-affinity'):
        return self.admin_api.post_server_groups(
            {'name': name, 'policy': policy_name})

    def migrations_of(self, server_id):
        return self.admin_api.api_get(
            '/os-migrations?instance_uuid=%s' % server_id).body['migrations']

    def service(self, host):
        return self.admin_api.get_services(host=host,
                                           binary='nova-compute')[0]

    def run_cli(self, argv, eng):
        out, err = io.StringIO(), io.StringIO()
        old = cli.ENGINE_FACTORY
        cli.ENGINE_FACTORY = lambda conf: eng
        try:
            with contextlib.redirect_stdout(out), \
                    contextlib.redirect_stderr(err):
                parser = cli.build_standalone_parser()
                args = parser.parse_args(argv)
                rc = args.func(args)
        finally:
            cli.ENGINE_FACTORY = old
        return rc, out.getvalue(), err.getvalue()


class TestDrainMixedPolicies(DrainTestCase):
    COMPUTE_HOSTS = ('host1', 'host2', 'host3', 'host4', 'host5', 'host6')

    def test_drain_ten_instances_mixed_policies(self):
        topo = self.layout(racks=3)     # r1: host1,2  r2: host3,4  r3: 5,6
        # An AZ holding host1 alone: a server that asked for it has no
        # other valid host.
        agg = self.admin_api.post_aggregate(
            {'aggregate': {'name': 'solo', 'availability_zone': 'solo'}})
        self.admin_api.add_host_to_aggregate(agg['id'], 'host1')
        nolive = self.admin_api.post_flavor({'flavor': {
            'name': 'nolive', 'ram': 512, 'vcpus': 1, 'disk': 1}})
        self.admin_api.post_extra_spec(nolive['id'], {
            'extra_specs': {'ha:live_migration': 'forbidden'}})
        rack_group = self.group('vnf-rack')
        web = self.group('vnf-web')
        rack_hint = {'ha_anti_affinity_level': 'rack'}
        self.boot_many([
            dict(name='rack-2', host='host3', group=rack_group['id'],
                 hints=rack_hint),
            dict(name='rack-3', host='host5', group=rack_group['id'],
                 hints=rack_hint)])
        specs = [dict(name='rack-1', host='host1', group=rack_group['id'],
                      hints=rack_hint)]
        specs += [dict(name='web-%d' % i, host='host1', group=web['id'])
                  for i in range(1, 5)]
        specs += [dict(name='nolive', host='host1', flavor_id=nolive['id']),
                  dict(name='pinned', host='host1',
                       metadata={'ha_pinned': 'true'}),
                  dict(name='solo', az='solo'),
                  dict(name='plain-1', host='host1'),
                  dict(name='plain-2', host='host1')]
        servers = self.boot_many(specs)
        self.assertEqual(10, len(servers))
        for name, s in servers.items():
            self.assertEqual('host1', self.host_of(s), name)

        eng = self.engine()
        t0 = time.monotonic()
        drain = eng.start('host1', reason='BIOS upgrade')
        drain = eng.wait(drain.id, interval=0.1, timeout=120)
        elapsed = time.monotonic() - t0

        self.assertEqual('incomplete', drain.state, drain.detail)
        self.assertIn('pinned (%s)' % servers['pinned']['id'], drain.detail)
        self.assertIn('solo (%s)' % servers['solo']['id'], drain.detail)
        items = {i.name: i for i in eng.journal.list_drain_items(drain.id)}
        if os.environ.get('DRAIN_DEBUG'):
            for i in items.values():
                print(i.name, i.method, i.state, i.attempts,
                      i.started_at and i.started_at.strftime('%S.%f'),
                      i.finished_at and i.finished_at.strftime('%S.%f'),
                      i.reason)
            for u, k, s0, e in self.rec.intervals:
                print('rec', u[:8], k, round(s0 - t0, 2), round(e - t0, 2))
        self.assertEqual({'pinned', 'solo'},
                         {n for n, i in items.items() if i.state == 'blocked'})
        self.assertIn('ha_pinned=true', items['pinned'].reason)
        self.assertIn('No valid host', items['solo'].reason)
        # nothing forced: both stay, the host stays disabled
        self.assertEqual('host1', self.host_of(servers['pinned']))
        self.assertEqual('host1', self.host_of(servers['solo']))
        svc = self.service('host1')
        self.assertEqual('disabled', svc['status'])
        self.assertIn('[nova-ha drain %d]' % drain.id,
                      svc['disabled_reason'])
        self.assertTrue(svc['disabled_reason'].startswith(
            'maintenance: BIOS upgrade'))
        # the rest moved, each exactly once
        for name in set(servers) - {'pinned', 'solo'}:
            self.assertEqual('moved', items[name].state, name)
            self.assertNotEqual('host1', self.host_of(servers[name]), name)
            self.assertEqual(1, len(self.rec.moves_of(servers[name]['id'])),
                             name)
        # rack anti-affinity kept: rack-1 could only go to host2 (rack r1)
        self.assertEqual('host2', self.host_of(servers['rack-1']))
        self.assertEqual('r1', topo['host2']['rack'])
        # the forbidden-live instance was cold-migrated and confirmed
        self.assertEqual('cold', items['nolive'].method)
        migs = self.migrations_of(servers['nolive']['id'])
        self.assertEqual([('migration', 'confirmed')],
                         [(m['migration_type'], m['status']) for m in migs])
        self.assertEqual('ACTIVE', self.admin_api.get_server(
            servers['nolive']['id'])['status'])
        self.assertEqual('live', items['web-1'].method)
        # never two members of one group moving at once (hypervisor view)
        web_ids = {servers['web-%d' % i]['id'] for i in range(1, 5)}
        observed = self.rec.max_concurrency(web_ids)
        self.assertEqual(1, observed)
        self.assertGreater(self.rec.max_concurrency(), 1)  # global overlap
        print('\n10-instance drain: %.1f s; web group max concurrency %d, '
              'all moves %d' % (elapsed, observed,
                                self.rec.max_concurrency()))
        # notifications: start, progress..., end with per-instance outcomes
        types = self.notes.types()
        self.assertEqual('maintenance.host.start', types[0])
        self.assertIn('maintenance.host.progress', types)
        self.assertEqual('maintenance.host.end', types[-1])
        end = self.notes.events[-1][1]
        self.assertEqual('incomplete', end['state'])
        self.assertEqual({'moved': 8, 'blocked': 2, 'waiting': 0,
                          'moving': 0}, end['counts'])
        self.assertEqual(10, len(end['instances']))
        # where the host stands, from the same topology model as the filters
        self.assertEqual('r1', end['location']['rack'])
        self.assertEqual('solo', end['location']['availability_zone'])

        # CLI: status shows it; a second start is refused clearly
        rc, out, err = self.run_cli(['status', 'host1'], eng)
        self.assertEqual(0, rc, err)
        self.assertIn('incomplete', out)
        self.assertIn('blocked', out)
        self.assertIn('pinned', out)
        rc, out, err = self.run_cli(['start', 'host1'], eng)
        self.assertEqual(2, rc)
        self.assertIn('already has an active drain', err)
        rc, out, err = self.run_cli(['start', 'no-such-host'], eng)
        self.assertEqual(2, rc)
        self.assertIn("unknown host 'no-such-host'", err)
        # complete: the host is back in service
        rc, out, err = self.run_cli(['complete', 'host1'], eng)
        self.assertEqual(0, rc, err)
        self.assertEqual('enabled', self.service('host1')['status'])


class TestDrainResume(DrainTestCase):

    def test_restart_mid_drain_moves_nothing_twice(self):
        g = self.group('vnf-a')
        servers = self.boot_many([dict(name='a-%d' % i, host='host1',
                                       group=g['id']) for i in range(4)])
        eng1 = self.engine()
        drain = eng1.start('host1', reason='resume test')
        # run until one move is done and the next is in flight
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            drain, _ = eng1.reconcile(drain.id)
            c = eng1.journal.drain_progress(drain.id)
            if c['moved'] >= 1 and c['moving'] == 1:
                break
            time.sleep(0.05)
        self.assertEqual(1, c['moving'])
        # "crash" after a journal write but before the Nova call: an item
        # is 'moving' in the journal and Nova knows nothing of it.
        waiting = eng1.journal.list_drain_items(drain.id, states='waiting')
        ghost = waiting[0]
        self.assertTrue(eng1.journal.transition_drain_item(
            drain.id, ghost.instance_uuid, 'waiting', 'moving'))
        del eng1    # the process is gone

        eng2 = self.engine(move_start_timeout=1.0)   # a new process
        drain = eng2.wait(drain.id, interval=0.1, timeout=60)
        self.assertEqual('ready', drain.state, drain.detail)
        for name, s in servers.items():
            self.assertNotEqual('host1', self.host_of(s), name)
            self.assertEqual(1, len(self.migrations_of(s['id'])), name)
            self.assertEqual(1, len(self.rec.moves_of(s['id'])), name)
        ids = {s['id'] for s in servers.values()}
        self.assertEqual(1, self.rec.max_concurrency(ids))
        item = {i.instance_uuid: i for i in
                eng2.journal.list_drain_items(drain.id)}[ghost.instance_uuid]
        self.assertEqual(2, item.attempts)   # claimed twice, moved once


class TestDrainAbort(DrainTestCase):
    HOLD = 1.5

    def test_abort_lets_in_flight_finish_and_starts_nothing(self):
        g = self.group('vnf-b')
        servers = self.boot_many([dict(name='b-%d' % i, host='host1',
                                       group=g['id']) for i in range(3)])
        eng = self.engine(refresh_interval=0.0)
        drain = eng.start('host1', reason='abort test')
        self.assertEqual(1, eng.journal.drain_progress(drain.id)['moving'])
        # a VNFM pins a waiting member mid-drain: it is blocked, not moved
        late = eng.journal.list_drain_items(drain.id, states='waiting')[0]
        self.admin_api.api_post('/servers/%s/metadata' % late.instance_uuid,
                                {'metadata': {'ha_pinned': 'true'}})
        eng.reconcile(drain.id)
        late = {i.instance_uuid: i for i in eng.journal.list_drain_items(
            drain.id)}[late.instance_uuid]
        self.assertEqual('blocked', late.state)
        self.assertIn('ha_pinned=true', late.reason)
        rc, out, err = self.run_cli(['abort', 'host1'], eng)
        self.assertEqual(0, rc, err)
        self.assertIn('aborted', out)
        drain = eng.journal.get_drain(drain.id)
        self.assertEqual('aborted', drain.state)
        c = eng.journal.drain_progress(drain.id)
        self.assertEqual({'moved': 1, 'waiting': 1, 'moving': 0,
                          'blocked': 1}, c)
        on_host1 = [n for n, s in servers.items()
                    if self.host_of(s) == 'host1']
        self.assertEqual(2, len(on_host1))
        self.assertEqual(1, len(self.rec.started))
        self.assertEqual('disabled', self.service('host1')['status'])
        # abort again: clear error; complete re-enables the host
        rc, out, err = self.run_cli(['abort', 'host1'], eng)
        self.assertEqual(2, rc)
        self.assertIn('no active drain', err)
        rc, out, err = self.run_cli(['complete', 'host1'], eng)
        self.assertEqual(0, rc, err)
        self.assertEqual('enabled', self.service('host1')['status'])
        self.assertEqual('completed', eng.journal.get_drain(drain.id).state)


class TestDrainPowerOff(DrainTestCase):
    COMPUTE_HOSTS = ('host1', 'host2')

    def test_ready_host_powered_off_then_on_by_complete(self):
        """--power-off through the fencing layer against a virtual IPMI
        BMC (standalone power model); complete powers it on again."""
        import shutil
        import socket

        from nova_ha.fencing import fencer as fencer_mod
        from nova_ha.fencing import inventory
        from nova_ha.fencing import testing as fencing_testing
        from nova_ha.maintenance import power
        from nova_ha.sim.vbmc import VBMCProcess

        if not shutil.which('ipmitool'):
            self.skipTest('ipmitool is not installed (make system-deps); '
                          'the ipmi fencing driver runs it')
        password = 'Drain-Pa55-Qx7'
        bmc = VBMCProcess(fencing_testing.free_port(socket.SOCK_DGRAM),
                          'admin', password).start()
        self.addCleanup(bmc.stop)
        inv = inventory.parse({'hosts': {'host1': {
            'driver': 'ipmi', 'address': '127.0.0.1', 'port': bmc.port,
            'username': 'admin', 'password': password}}})
        fencer = fencer_mod.Fencer(inv, fencer_mod.FenceParams(
            command_timeout=2.0, power_off_timeout=5.0, fence_timeout=10.0,
            poll_interval=0.05, retries=1, retry_backoff=0.1))
        self.addCleanup(fencer.close)
        eng = self.engine(power=power.FencerPower(fencer))

        rc, out, err = self.run_cli(['start', 'host1', '--power-off',
                                     '--wait', '--reason', 'PSU swap'], eng)
        self.assertEqual(0, rc, out + err)
        self.assertIn('ready for maintenance (powered off by nova-ha)', out)
        self.assertEqual('off', fencer.status('host1').power_state)
        drain = eng.journal.list_drains(host='host1')[0]
        self.assertTrue(drain.powered_off_by_nova_ha)
        self.assertEqual(['maintenance.host.start', 'maintenance.host.end'],
                         self.notes.types())
        rc, out, err = self.run_cli(['complete', 'host1'], eng)
        self.assertEqual(0, rc, out + err)
        self.assertEqual('on', fencer.status('host1').power_state)
        self.assertEqual('enabled', self.service('host1')['status'])
        drain = eng.journal.get_drain(drain.id)
        self.assertEqual('completed', drain.state)
        self.assertFalse(drain.powered_off_by_nova_ha)
        self.assertNotIn(password, out + err)

    def test_service_disabled_for_maintenance_starts_a_drain(self):
        svc = self.service('host2')
        self.admin_api.api_put('/os-services/%s' % svc['id'], {
            'status': 'disabled',
            'disabled_reason': 'maintenance: firmware upgrade'})
        eng = self.engine(drain_on_disable=True)
        eng.reconcile_all()
        drain = eng.journal.get_active_drain('host2')
        self.assertIsNotNone(drain)
        self.assertEqual('ready', drain.state)       # nothing on host2
        self.assertEqual('maintenance: firmware upgrade', drain.reason)
        self.assertEqual('service-disable', drain.started_by)
        reason = self.service('host2')['disabled_reason']
        self.assertEqual('maintenance: firmware upgrade [nova-ha drain %d]'
                         % drain.id, reason)
        eng.reconcile_all()                          # no second drain
        self.assertEqual(1, len(eng.journal.list_drains(host='host2')))
        eng.complete('host2')
        self.assertEqual('enabled', self.service('host2')['status'])
        eng.reconcile_all()
        self.assertIsNone(eng.journal.get_active_drain('host2'))
        # a disable for another reason is left alone
        self.admin_api.api_put('/os-services/%s' % svc['id'], {
            'status': 'disabled', 'disabled_reason': 'broken NIC'})
        eng.reconcile_all()
        self.assertIsNone(eng.journal.get_active_drain('host2'))
