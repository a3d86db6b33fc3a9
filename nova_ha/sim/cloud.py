"""The simulated cloud: a real Nova in process, one virtual BMC per host,
fault injection, and HTTP endpoints other processes can use.

What is real: Nova (API, conductor, scheduler, placement, fake-virt
nova-compute services that report their state every second), the IPMI 2.0
protocol spoken by each host's virtual BMC on a loopback UDP port, the HTTP
compute API, and asynchronous RPC casts (an evacuation returns before it has
finished, as in a real cloud). What is simulated: the hosts themselves. A
host is a power state, a nova-compute service, and a set of network planes.

Faults (``inject``) and their effects:

=================  ======================================================
``power_loss``     power off: nova-compute stops, every plane goes silent,
                   the BMC reports off
``hang``           nova-compute stops, every plane goes silent, the BMC
                   still reports on (a BMC power-off then really turns the
                   host off)
``service_crash``  only nova-compute stops; the host and its planes live
``mgmt_partition`` the management plane is cut: nova-compute (which talks
                   to the control plane over it) stops reporting; other
                   planes and the BMC still answer
``bmc_unreachable`` the BMC process is frozen and answers nothing
=================  ======================================================

Faults combine (``hang`` then ``bmc_unreachable`` is a silent host whose BMC
is dead). ``heal`` clears every fault: a host that is powered off is powered
back on (nova-compute starts with an empty hypervisor, as after a reboot);
otherwise a stopped nova-compute restarts with its instances.

Heartbeats per plane: each host answers ``plane_up(plane)`` and
``process_states()``; the heartbeat agents the sim runs per host (in a child
process, :mod:`nova_ha.sim.agents`) are told every change
(``SimCloud.add_host_listener`` is the seam for anything else that needs to
react to a change).
"""

import json
import logging
import os
import random
import secrets
import socket
import sys
import threading
import time

from nova_ha.sim import layout as sim_layout
from nova_ha.sim import vbmc as vbmc_mod

LOG = logging.getLogger(__name__)

FAULTS = ('power_loss', 'hang', 'service_crash', 'mgmt_partition',
          'bmc_unreachable')
PLANES = ('management', 'storage')
STATE_FILE = 'state.json'
# inprocess: every Nova service in this process (embedded, the default);
# processes: one process per service on a database server and RabbitMQ
# (nova_ha.sim.novaprocs).
NOVA_KINDS = ('inprocess', 'processes')
# nova's functional fixtures act for this project id.
PROJECT_ID = '6f70656e737461636b20342065766572'


class SimError(Exception):
    """A request the simulated cloud refuses (bad host, fault, port...)."""


def _ephemeral_low():
    try:
        with open('/proc/sys/net/ipv4/ip_local_port_range') as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(kind=socket.SOCK_STREAM, address='127.0.0.1'):
    """A free port BELOW the kernel's ephemeral range.

    Daemons are restarted on these ports (an evacuator killed and started
    again, a BMC): a port from the ephemeral range may meanwhile become
    some client socket's source port, and the restart fails with "Address
    already in use". Ports below the range are never handed out that way.
    """
    low, high = 10000, _ephemeral_low() - 1
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randint(low, high) if high > low else 0
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind((address, port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise SimError('no free port on %s between %d and %d'
                   % (address, low, high))


def check_port_free(port, kind=socket.SOCK_STREAM, address='127.0.0.1'):
    with socket.socket(socket.AF_INET, kind) as s:
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((address, port))
        except OSError as exc:
            proto = 'tcp' if kind == socket.SOCK_STREAM else 'udp'
            raise SimError('port %d/%s on %s is in use (%s)'
                           % (port, proto, address, exc.strerror))


class SimHost:
    """One simulated compute host."""

    def __init__(self, cloud, name, bmc_port, bmc_user, bmc_password):
        self.cloud = cloud
        self.name = name
        self.power = 'on'
        self.faults = set()
        self.bmc_port = bmc_port
        self.bmc_user = bmc_user
        self.bmc_password = bmc_password
        self.bmc = None
        self.topology = {}

    # -- what heartbeat agents and observers read ---------------------------
    def plane_up(self, plane):
        if self.power != 'on' or 'hang' in self.faults:
            return False
        if plane == 'management' and 'mgmt_partition' in self.faults:
            return False
        return True

    def compute_running(self):
        return self.cloud.compute_running(self.name)

    def process_states(self):
        """What the host's watchdog would see (sent in heartbeats)."""
        if self.power != 'on':
            return {}
        crashed = 'service_crash' in self.faults
        return {'nova-compute': 'dead' if crashed else 'running'}

    def as_dict(self):
        return {
            'name': self.name,
            'power': self.power,
            'faults': sorted(self.faults),
            'compute_running': self.compute_running(),
            'planes': {p: self.plane_up(p) for p in PLANES},
            'bmc': {'driver': 'ipmi', 'address': '127.0.0.1',
                    'port': self.bmc_port, 'username': self.bmc_user,
                    'password': self.bmc_password},
            'topology': dict(self.topology),
        }


def _enabled_filters():
    """nova's default filters and all of nova-ha's."""
    from nova_ha.scheduler import filters as ha_filters
    from nova_ha.sim import novastack
    return tuple(novastack.NOVA_DEFAULT_FILTERS) + tuple(
        cls.__name__ for cls in ha_filters.all_filters())


def _stack_class(host_names):
    """Nova's functional stack, configured as a running cloud.

    Imported lazily: importing nova takes seconds, and the CLI's small
    commands (inject, heal, status) should not pay for it.
    """
    from nova_ha.sim import novastack

    class SimStack(novastack.NovaStackMixin,
                   novastack.integrated_helpers._IntegratedTestBase):
        COMPUTE_HOSTS = tuple(host_names)
        ENABLED_FILTERS = _enabled_filters()
        CAST_AS_CALL = False          # casts are asynchronous, as in a cloud
        SERVICE_REPORT_INTERVAL = 1   # computes report every second ...
        SERVICE_DOWN_TIME = 3         # ... and are down after 3 s of silence
        SIM_TUNING = True             # harness speed-ups (novastack)

        def runTest(self):  # a TestCase needs one; this one runs no test
            pass

        def _setup_services(self):
            # A cloud to fail over in, not a tenant's quota.
            self.flags(instances=-1, cores=-1, ram=-1, server_groups=-1,
                       server_group_members=-1, group='quota')
            super()._setup_services()

    return SimStack


class NovaServiceLogs:
    """The in-process Nova's log, one file per Nova service in the state
    directory (``nova-api.log``, ``nova-conductor.log``,
    ``nova-scheduler.log``, ``nova-compute.log``; anything else of Nova's
    in ``nova.log``) -- nova's test fixtures would otherwise swallow it.
    (``--nova processes``: each service process writes its own
    ``STATE_DIR/nova/<service>.log``.)"""

    # (file, logger name prefixes): the first match wins.
    SERVICES = (
        ('nova-api.log', ('nova.api', 'nova.compute.api', 'nova.wsgi',
                          'nova.policy', 'nova.quota')),
        ('nova-conductor.log', ('nova.conductor',)),
        ('nova-scheduler.log', ('nova.scheduler',)),
        ('nova-compute.log', ('nova.compute', 'nova.virt',
                              'nova.network')),
        ('nova.log', ('nova',)),
    )

    def __init__(self, state_dir):
        self.dir = state_dir
        self.handlers = []

    @classmethod
    def service_of(cls, logger_name):
        for name, prefixes in cls.SERVICES:
            for prefix in prefixes:
                if logger_name == prefix or \
                        logger_name.startswith(prefix + '.'):
                    return name
        return None

    def install(self):
        os.makedirs(self.dir, exist_ok=True)
        fmt = logging.Formatter('%(asctime)s %(process)d %(levelname)s '
                                '%(name)s [%(threadName)s] '
                                '%(nova_ha_instance)s%(message)s')
        for name, _ in self.SERVICES:
            handler = logging.FileHandler(os.path.join(self.dir, name))
            handler.setFormatter(fmt)
            handler.setLevel(logging.INFO)
            handler.addFilter(
                lambda record, name=name: self.service_of(record.name) ==
                name)
            handler.addFilter(_instance_tag)
            self.handlers.append(handler)
        nova_log = logging.getLogger('nova')
        for handler in self.handlers:
            nova_log.addHandler(handler)
        return self

    def remove(self):
        nova_log = logging.getLogger('nova')
        for handler in self.handlers:
            nova_log.removeHandler(handler)
            handler.close()
        self.handlers = []


def _instance_tag(record):
    """``[instance: UUID] `` of a nova log record (oslo.log passes the
    instance as an extra, not in the message)."""
    uuid = getattr(record, 'instance_uuid', None)
    inst = getattr(record, 'instance', None)
    if uuid is None and inst is not None:
        uuid = inst.get('uuid') if isinstance(inst, dict) else \
            getattr(inst, 'uuid', None)
    record.nova_ha_instance = '[instance: %s] ' % uuid if uuid else ''
    return True


class SimCloud:
    """Start/stop the whole simulated cloud and act on its hosts."""

    def __init__(self, hosts=3, racks=1, power_domains=None, azs=None,
                 sal=None, state_dir=None, api_port=0, control_port=0,
                 token=None, bmc_user='admin', bmc_password=None,
                 evacuators=1, heartbeat_interval=0.2,
                 watchdog_restart_delay=0.0, nova='inprocess',
                 database_url=None, transport_url=None, nova_options=None):
        if nova not in NOVA_KINDS:
            raise SimError('--nova must be one of %s, got %r'
                           % (', '.join(NOVA_KINDS), nova))
        if nova == 'inprocess' and (database_url or transport_url
                                    or nova_options):
            raise SimError('--database-url, --transport-url and '
                           '--nova-option need --nova processes')
        self.nova_options = dict(nova_options or {})
        self.nova_kind = nova
        self.database_url = database_url
        self.transport_url = transport_url
        if hosts < 1:
            raise SimError('--hosts must be >= 1, got %d' % hosts)
        if racks < 1 or racks > hosts:
            raise SimError('--racks must be between 1 and --hosts (%d), '
                           'got %d' % (hosts, racks))
        self.host_names = ['compute%02d' % i for i in range(1, hosts + 1)]
        self.racks = racks
        self.power_domains = power_domains
        self.azs = azs
        self.sal = sal
        self.state_dir = state_dir
        for port in (api_port, control_port):
            if port:
                check_port_free(port)
        self.api_port = api_port or free_port()
        self.control_port = control_port or free_port()
        self.token = token or secrets.token_hex(16)
        self.hosts = {
            name: SimHost(self, name, free_port(socket.SOCK_DGRAM),
                          bmc_user, bmc_password or secrets.token_hex(8))
            for name in self.host_names}
        # Heartbeats: every agent sends each plane to every evacuator; the
        # evacuators' listen ports are chosen here and written into the
        # nova-ha.conf files the sim generates for them.
        if evacuators < 1:
            raise SimError('--evacuators must be >= 1, got %d' % evacuators)
        # The agent's process watchdog: restart a crashed nova-compute
        # after this many seconds (0: leave it dead until healed).
        self.watchdog_restart_delay = watchdog_restart_delay
        self.heartbeat_key = secrets.token_hex(32)
        self.heartbeat_interval = heartbeat_interval
        self.evacuator_listen = [
            {plane: ('127.0.0.1', free_port(socket.SOCK_DGRAM))
             for plane in PLANES} for _ in range(evacuators)]
        self.agents = None
        self.stack = None
        self._root_handlers = []
        self._lock = threading.RLock()
        self._listeners = []
        self._servers = []
        self.started = False
        self.shutdown_requested = threading.Event()
        self._nova_logs = None

    # -- lifecycle -----------------------------------------------------------
    def start(self):
        from nova_ha.sim import http as sim_http
        t0 = time.monotonic()
        # Nova's fixtures swap the root log handlers while the stack runs
        # and restore the ones they found at cleanup; remember ours.
        self._root_handlers = list(logging.getLogger().handlers)
        self.stack = self._new_stack()
        if self.nova_kind == 'processes':
            # Importing nova's test fixtures adds a stdout handler to the
            # root logger (the in-process stack's fixtures swap it out): a
            # command line tool's stdout is not a log.
            root = logging.getLogger()
            for h in list(root.handlers):
                if h not in self._root_handlers:
                    root.removeHandler(h)
        try:
            self.stack.setUp()
            # oslo.log (set up by nova's fixtures) turns uncaught exceptions
            # into log records; a command line tool must show them.
            sys.excepthook = sys.__excepthook__
            if self.nova_kind == 'inprocess' and self.state_dir:
                self._nova_logs = NovaServiceLogs(self.state_dir).install()
            topo = sim_layout.layout(
                self.stack.admin_api, self.host_names, racks=self.racks,
                power_domains=self.power_domains, azs=self.azs, sal=self.sal)
            for name, t in topo.items():
                self.hosts[name].topology = t
            control_url = 'http://127.0.0.1:%d' % self.control_port
            for host in self.hosts.values():
                host.bmc = vbmc_mod.VBMCProcess(
                    host.bmc_port, host.bmc_user, host.bmc_password,
                    control_url=control_url, host=host.name)
            self._servers.append(sim_http.serve_control(self,
                                                        self.control_port))
            if self.nova_kind == 'inprocess':
                # (--nova processes: the API process serves itself.)
                self._servers.append(sim_http.serve_nova_api(
                    self.stack.api_fixture.app(), self.api_port, self.token,
                    PROJECT_ID, placement_get=self._placement_get()))
            for host in self.hosts.values():
                host.bmc.spawn()
            for host in self.hosts.values():
                host.bmc.wait_ready()
            self._start_agents()
        except Exception:
            self.stop()
            raise
        self.started = True
        if self.state_dir:
            self.write_evacuator_configs()
        self.write_state()
        LOG.info('simulated cloud up in %.1f s', time.monotonic() - t0)
        return self

    def _placement_get(self):
        """(url, version) -> requests response of the in-process placement
        (nova's PlacementFixture), or None."""
        fixture = getattr(self.stack, 'placement_fixture', None) or \
            getattr(getattr(self.stack, 'placement', None), 'fixture', None)
        if fixture is None:
            return None
        return lambda url, version: fixture._fake_get(None, url,
                                                      version=version)

    @property
    def placement_endpoint(self):
        """The placement API as the evacuators reach it (the sim has no
        service catalog): ``--nova processes``, the placement process,
        which admits the sim's token as its admin; in-process, the reads
        the API port serves from nova's placement fixture."""
        if self.nova_kind == 'processes':
            return 'http://127.0.0.1:%d' % self.stack.placement_port
        from nova_ha.sim import http as sim_http
        return 'http://127.0.0.1:%d%s' % (self.api_port,
                                          sim_http.PLACEMENT_PATH)

    def _new_stack(self):
        if self.nova_kind == 'inprocess':
            return _stack_class(self.host_names)('runTest')
        from nova_ha.sim import novaprocs
        from nova_ha.sim import novastack
        if not self.state_dir:
            raise SimError('--nova processes needs a state directory')
        kw = {}
        if self.database_url:
            kw['database_url'] = self.database_url
        if self.transport_url:
            kw['transport_url'] = self.transport_url
        if self.nova_options:
            kw['nova_options'] = self.nova_options
        return novaprocs.ProcessNova(
            self.host_names, self.state_dir, self.api_port, self.token,
            PROJECT_ID, _enabled_filters(), novastack.AVAILABLE_FILTERS,
            **kw)

    def nova_cpu_seconds(self):
        """CPU seconds Nova has used so far (for benchmarks)."""
        if self.nova_kind == 'inprocess':
            return time.process_time()
        return self.stack.cpu_seconds()

    def nova_cpu_by_service(self):
        """{service: CPU seconds} with ``--nova processes``; the in-process
        Nova is one process: {'nova': seconds}."""
        if self.nova_kind == 'inprocess':
            return {'nova': time.process_time()}
        return self.stack.cpu_by_service()

    def _start_agents(self):
        """One heartbeat agent per host, in a child process (see
        nova_ha.sim.agents: a thread here would stall with Nova)."""
        from nova_ha.sim import agents as sim_agents
        targets = {plane: [listen[plane] for listen in self.evacuator_listen]
                   for plane in PLANES}
        hosts = {}
        for host in self.hosts.values():
            # SAL1 hosts beat every 100 ms so that a 0.45 s window (four
            # missed beats) confirms their failure; others every 200 ms.
            interval = (min(0.1, self.heartbeat_interval)
                        if host.topology.get('sal') == 1
                        else self.heartbeat_interval)
            hosts[host.name] = dict(self._agent_view(host),
                                    interval=interval)
        self.agents = sim_agents.AgentProcess(self.heartbeat_key, targets,
                                              hosts)

    @staticmethod
    def _agent_view(host):
        return {'planes': {p: host.plane_up(p) for p in PLANES},
                'processes': host.process_states()}

    def stop(self):
        if self.agents is not None:
            self.agents.close()
            self.agents = None
        for host in self.hosts.values():
            if host.bmc:
                host.bmc.stop()
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self._servers = []
        if self._nova_logs is not None:
            self._nova_logs.remove()
            self._nova_logs = None
        if self.stack is not None:
            # Nova's fixtures put back the root handlers they found (one of
            # them writes to stdout) before nova's last cleanups log; route
            # nova's own loggers to our handlers until the end.
            nova_log = logging.getLogger('nova')
            nova_log.propagate = False
            for h in self._root_handlers:
                nova_log.addHandler(h)
            try:
                self.stack.doCleanups()
            finally:
                self.stack = None
                for h in self._root_handlers:
                    nova_log.removeHandler(h)
                nova_log.propagate = True
                root = logging.getLogger()
                for h in list(root.handlers):
                    root.removeHandler(h)
                for h in self._root_handlers:
                    root.addHandler(h)
        if self.state_dir:
            try:
                os.unlink(os.path.join(self.state_dir, STATE_FILE))
            except FileNotFoundError:
                pass
        self.started = False

    def request_shutdown(self):
        self.shutdown_requested.set()

    # -- state file ----------------------------------------------------------
    @property
    def api_endpoint(self):
        return 'http://127.0.0.1:%d/v2.1' % self.api_port

    def state(self):
        return {
            'pid': os.getpid(),
            'api': {'endpoint': self.api_endpoint, 'token': self.token,
                    'project_id': PROJECT_ID,
                    'auth': 'X-Auth-Token: <token> (admin)'},
            'control': 'http://127.0.0.1:%d' % self.control_port,
            # Images of nova's Glance fixture (the sim has no Glance API).
            'images': [self.stack.glance.image1['id']] if self.stack else [],
            'nova': {'kind': self.nova_kind,
                     'pids': (self.stack.pids() if self.stack is not None
                              and self.nova_kind == 'processes'
                              else {'all': os.getpid()})},
            'hosts': {n: h.as_dict() for n, h in self.hosts.items()},
            'heartbeat': {
                'planes': list(PLANES),
                'interval': self.heartbeat_interval,
                'evacuators': [
                    {p: '%s:%d' % a for p, a in listen.items()}
                    for listen in self.evacuator_listen]},
            'evacuator_configs': [
                os.path.join(self.state_dir, 'evacuator-%d.conf' % (i + 1))
                for i in range(len(self.evacuator_listen))]
            if self.state_dir else [],
        }

    def _write_secret_file(self, name, text):
        path = os.path.join(self.state_dir, name)
        tmp = path + '.tmp'
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as f:
            f.write(text)
        os.replace(tmp, path)
        return path

    def write_state(self):
        if not self.state_dir:
            return
        os.makedirs(self.state_dir, exist_ok=True)
        # The state file holds BMC passwords and the API token.
        self._write_secret_file(STATE_FILE, json.dumps(
            self.state(), indent=2, sort_keys=True))

    def write_evacuator_configs(self):
        """Files an evacuator needs to run against this cloud: the
        heartbeat key, a fencing inventory of the virtual BMCs, and one
        nova-ha.conf per evacuator (its own heartbeat listen ports; a
        shared SQLite journal)."""
        import yaml
        d = self.state_dir
        key_file = self._write_secret_file('heartbeat.key',
                                           self.heartbeat_key + '\n')
        inventory = {'hosts': {
            h.name: {'driver': 'ipmi', 'address': '127.0.0.1',
                     'port': h.bmc_port, 'username': h.bmc_user,
                     'password': h.bmc_password}
            for h in self.hosts.values()}}
        inv_file = self._write_secret_file(
            'fencing-inventory.yaml', yaml.safe_dump(inventory))
        # `source STATE_DIR/openrc`: openstack and nova-ha commands as the
        # README shows them (OS_IDENTITY_ENDPOINT_OVERRIDE: see
        # nova_ha.sim.http.identity_version).
        base = self.api_endpoint.rsplit('/v2.1', 1)[0]
        self._write_secret_file('openrc', '\n'.join([
            '# Generated by nova-ha-sim: source it, then run openstack and '
            'nova-ha commands.',
            'export OS_AUTH_TYPE=admin_token',
            'export OS_ENDPOINT=%s' % self.api_endpoint,
            'export OS_TOKEN=%s' % self.token,
            'export OS_IDENTITY_ENDPOINT_OVERRIDE=%s/identity/v3' % base,
            'export OS_COMPUTE_API_VERSION=2.latest',
            'export NOVA_HA_CONFIG=%s' % os.path.join(d, 'evacuator-1.conf'),
            '']))
        for i, listen in enumerate(self.evacuator_listen, 1):
            lines = [
                '# Generated by nova-ha-sim for evacuator %d.' % i,
                '[DEFAULT]',
                'log_file = %s' % os.path.join(d, 'evacuator-%d.log' % i),
                '',
                '[evacuator]',
                'name = evacuator-%d' % i,
                '',
                '[nova]',
                'auth_type = admin_token',
                'endpoint = %s' % self.api_endpoint,
                'token = %s' % self.token,
                '',
            ] + ([
                '[capacity]',
                '# (the sim has no service catalog)',
                'placement_endpoint = %s' % self.placement_endpoint,
                '',
            ] if self.placement_endpoint else []) + [
                '[heartbeat]',
                'planes = %s' % ','.join(PLANES),
                'key_file = %s' % key_file,
            ] + ['listen = %s=%s:%d' % (p, a[0], a[1])
                 for p, a in listen.items()] + [
                '',
                '[fencing]',
                'inventory_file = %s' % inv_file,
                'command_timeout = 1.0',
                'fence_timeout = 10.0',
                '',
                '[journal]',
                'connection = sqlite:///%s' % os.path.join(
                    d, 'journal.sqlite'),
                'auto_upgrade = true',
                '',
                '[coordination]',
                '# Leader election among the evacuators (embedded: file '
                'locks in a shared directory).',
                'backend_url = file://%s' % os.path.join(d, 'coordination'),
                '',
            ]
            self._write_secret_file('evacuator-%d.conf' % i,
                                    '\n'.join(lines))

    # -- hosts ---------------------------------------------------------------
    def host(self, name):
        try:
            return self.hosts[name]
        except KeyError:
            raise SimError('unknown host %r; hosts are %s'
                           % (name, ', '.join(self.host_names)))

    def add_host_listener(self, callback):
        """callback(host) after any change of a host's power or faults."""
        self._listeners.append(callback)

    def _changed(self, host):
        if self.agents is not None:
            self.agents.update(host.name, **self._agent_view(host))
        for cb in self._listeners:
            try:
                cb(host)
            except Exception:
                LOG.exception('host listener failed for %s', host.name)
        self.write_state()

    def compute_running(self, name):
        compute = self.stack.computes.get(name) if self.stack else None
        return bool(compute) and not getattr(compute, '_ha_stopped', False)

    def _stop_compute(self, name):
        compute = self.stack.computes[name]
        if not getattr(compute, '_ha_stopped', False):
            compute.stop()
            compute._ha_stopped = True

    def _start_compute(self, name, keep_instances):
        compute = self.stack.computes[name]
        if getattr(compute, '_ha_stopped', False):
            # A new service object, as a real restart creates a new process;
            # after a power cycle the hypervisor comes back empty.
            self.stack.restart_compute_service(
                compute, keep_hypervisor_state=keep_instances)

    def _reconcile_compute(self, host, rebooted):
        should_run = (host.power == 'on' and not host.faults & {
            'hang', 'service_crash', 'mgmt_partition'})
        if should_run:
            self._start_compute(host.name, keep_instances=not rebooted)
        else:
            self._stop_compute(host.name)

    def inject(self, name, fault):
        if fault not in FAULTS:
            raise SimError('unknown fault %r; faults are %s'
                           % (fault, ', '.join(FAULTS)))
        with self._lock:
            host = self.host(name)
            host.faults.add(fault)
            if fault == 'power_loss':
                host.power = 'off'
            if fault == 'bmc_unreachable':
                host.bmc.pause()
            self._reconcile_compute(host, rebooted=False)
            self._changed(host)
            if fault == 'service_crash' and self.watchdog_restart_delay > 0:
                timer = threading.Timer(self.watchdog_restart_delay,
                                        self._watchdog_restart, [name])
                timer.daemon = True
                timer.start()
        return host.as_dict()

    def _watchdog_restart(self, name):
        """What nova-ha-agent's watchdog does to a dead nova-compute."""
        with self._lock:
            host = self.hosts[name]
            if 'service_crash' not in host.faults or self.stack is None:
                return
            host.faults.discard('service_crash')
            self._reconcile_compute(host, rebooted=False)
            self._changed(host)
        LOG.info('watchdog restarted nova-compute on %s', name)

    def heal(self, name):
        with self._lock:
            host = self.host(name)
            if 'bmc_unreachable' in host.faults:
                host.bmc.resume()
            host.faults.clear()
            rebooted = host.power == 'off'
            host.power = 'on'
            self._reconcile_compute(host, rebooted=rebooted)
            self._changed(host)
        return host.as_dict()

    def set_power(self, name, power):
        """What a BMC power command does to the host."""
        if power not in ('on', 'off'):
            raise SimError('power must be on or off, got %r' % (power,))
        with self._lock:
            host = self.host(name)
            if host.power == power:
                return host.as_dict()
            host.power = power
            if power == 'on':
                # The host boots: a power-loss or hang is over.
                host.faults -= {'power_loss', 'hang'}
            self._reconcile_compute(host, rebooted=(power == 'on'))
            self._changed(host)
        return host.as_dict()
