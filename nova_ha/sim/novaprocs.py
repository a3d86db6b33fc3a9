"""Nova spread over processes, for the simulated cloud's ``--nova processes``.

The in-process stack (:mod:`nova_ha.sim.novastack`) runs every Nova service
in one Python process: one core at most, whatever the machine has. That is
the right default for a laptop demo and for tests, but a benchmark of
recovery times then measures the GIL. This module runs the same services as
a real deployment does, one process each, on the real infrastructure
services of the machine:

- placement, nova-api (each served on a 127.0.0.1 port), nova-conductor,
  nova-scheduler and one nova-compute (fake virt driver) per simulated host,
  each started by :mod:`nova_ha.sim.novaproc`;
- the API, cell0, cell1 and placement databases on a MariaDB or PostgreSQL
  server (``database_url``, a server URL without a database name), created
  for this sim and dropped when it stops;
- RPC over RabbitMQ (``transport_url``), in a virtual host of its own when
  ``rabbitmqctl`` is available, so that two sims never share a queue.

Powering a host off kills its nova-compute process (SIGKILL, nothing is
flushed); powering it on starts a new one. The fake virt driver keeps its
instances in memory, so a restarted nova-compute always comes back with an
empty hypervisor, as after a reboot.

It exposes the few members of nova's test stack that
:class:`nova_ha.sim.cloud.SimCloud` uses (``setUp``, ``doCleanups``,
``admin_api``, ``computes``, ``restart_compute_service``, ``glance``), so the
cloud drives either kind the same way.
"""

import logging
import os
import shutil
import subprocess
import sys
import time
import urllib.parse
import uuid

from nova_ha.sim.cloud import SimError
from nova_ha.sim.cloud import free_port
from nova_ha.sim import nova_internals
from nova_ha.urls import redact

LOG = logging.getLogger(__name__)

DEFAULT_DATABASE_URL = 'mysql+pymysql://root@127.0.0.1:3306'
DEFAULT_TRANSPORT_URL = 'rabbit://guest:guest@127.0.0.1:5672/'


class ProcessNovaError(SimError):
    """A service or database of the multi-process Nova did not come up."""


class _Service:
    """One child process running a Nova or Placement service."""

    def __init__(self, name, argv, log_file, env=None):
        self.name = name
        self.argv = argv
        self.log_file = log_file
        self.env = env
        self.proc = None

    def start(self):
        log = open(self.log_file, 'ab')
        try:
            self.proc = subprocess.Popen(
                [sys.executable, '-m', 'nova_ha.sim.novaproc'] + self.argv,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=self.env, start_new_session=True)
        finally:
            log.close()
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self):
        if self.proc is not None and self.proc.poll() is not None:
            raise ProcessNovaError(
                '%s exited with status %s; its log: %s (last lines: %s)'
                % (self.name, self.proc.returncode, self.log_file,
                   _tail(self.log_file)))

    def kill(self):
        """SIGKILL: a power loss flushes nothing."""
        if self.running():
            self.proc.kill()
            self.proc.wait()

    def signal_stop(self):
        if self.running():
            self.proc.terminate()

    def terminate(self, timeout=10):
        if self.running():
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _cpu_seconds(pid):
    """user+system CPU of pid and its descendants (oslo.service forks
    conductor and scheduler workers)."""
    tick = os.sysconf('SC_CLK_TCK')
    total = 0.0
    try:
        with open('/proc/%d/stat' % pid) as f:
            fields = f.read().rsplit(')', 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / tick
        # A child is listed under the thread that forked it, which need
        # not be the main one (oslo.service forks its workers from one).
        children = []
        for task in os.listdir('/proc/%d/task' % pid):
            with open('/proc/%d/task/%s/children' % (pid, task)) as f:
                children += [int(c) for c in f.read().split()]
    except (OSError, ValueError, IndexError):
        return total
    return total + sum(_cpu_seconds(c) for c in children)


def _tail(path, lines=5):
    try:
        with open(path, 'rb') as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4000))
            text = f.read().decode('utf-8', 'replace')
    except OSError:
        return ''
    return ' | '.join(text.strip().splitlines()[-lines:])


class ComputeProcess:
    """What the cloud sees of one host's nova-compute."""

    def __init__(self, owner, host):
        self.owner = owner
        self.host = host
        self.service = None

    def start(self):
        self.service = self.owner._service(
            'compute-%s' % self.host, 'compute',
            ['--config-file', self.owner._conf('nova.conf'),
             '--config-file', self.owner._compute_conf(self.host)]).start()
        return self

    def stop(self):
        if self.service is not None:
            self.service.kill()


def _token_client(base_url, token, project_id):
    """nova's functional-test API client, sending the sim's token."""
    from nova_ha.sim import nova_internals
    api_client = nova_internals.api_client()

    class Client(api_client.TestOpenStackClient):
        def request(self, url, method='GET', body=None, headers=None):
            headers = dict(headers or {}, **{'X-Auth-Token': token})
            return super().request(url, method=method, body=body,
                                   headers=headers)
    api = Client('admin', base_url, project_id=project_id,
                 roles=['reader', 'member', 'admin'])
    api.microversion = 'latest'
    return api


class ProcessNova:
    """Start/stop Nova as processes (see the module docstring)."""

    def __init__(self, host_names, state_dir, api_port, token, project_id,
                 enabled_filters, available_filters,
                 database_url=DEFAULT_DATABASE_URL,
                 transport_url=DEFAULT_TRANSPORT_URL, placement_port=None,
                 nova_options=None):
        self.host_names = list(host_names)
        self.dir = os.path.join(state_dir, 'nova')
        self.api_port = api_port
        self.placement_port = placement_port or free_port()
        self.token = token
        self.project_id = project_id
        self.enabled_filters = list(enabled_filters)
        # more nova.conf options: {(section, name): value}
        self.nova_options = dict(nova_options or {})
        self.available_filters = list(available_filters)
        self.database_url = database_url.rstrip('/')
        self.transport_url = transport_url
        self.prefix = 'nha_sim_%s' % uuid.uuid4().hex[:8]
        self.vhost = None
        self.services = []
        self.computes = {}
        self.admin_api = None
        self._cleanups = []

    # -- what SimCloud uses --------------------------------------------------
    @property
    def glance(self):
        from nova_ha.sim import nova_internals
        return nova_internals.glance_fixture()

    def setUp(self):
        t0 = time.monotonic()
        os.makedirs(self.dir, exist_ok=True)
        self._create_vhost()
        self._create_databases()
        self._write_configs()
        self._sync_databases()
        placement = self._service(
            'placement', 'placement',
            ['--port', str(self.placement_port),
             '--placement-config-dir', self.dir],
            env=dict(os.environ, NOVA_HA_SIM_TOKEN=self.token)).start()
        api = self._service(
            'api', 'api', ['--port', str(self.api_port),
                           '--project-id', self.project_id,
                           '--config-file', self._conf('nova.conf')],
            env=dict(os.environ, NOVA_HA_SIM_TOKEN=self.token)).start()
        self._service('conductor', 'conductor',
                      ['--config-file', self._conf('nova.conf')]).start()
        self._service('scheduler', 'scheduler',
                      ['--config-file', self._conf('nova.conf')]).start()
        self._wait_http(placement, self.placement_port)
        self._wait_http(api, self.api_port)
        for host in self.host_names:
            self.computes[host] = ComputeProcess(self, host).start()
        self.admin_api = _token_client(
            'http://127.0.0.1:%d/v2.1' % self.api_port, self.token,
            self.project_id)
        self._wait_computes()
        LOG.info('multi-process Nova up in %.1f s (%d computes)',
                 time.monotonic() - t0, len(self.host_names))

    def doCleanups(self):
        # SIGTERM to all at once, then one shared grace period: nova's
        # graceful shutdown can take a minute per service otherwise.
        for service in self.services:
            service.signal_stop()
        deadline = time.monotonic() + 5
        for service in self.services:
            service.terminate(max(0.1, deadline - time.monotonic()))
        self.services = []
        while self._cleanups:
            fn, args = self._cleanups.pop()
            try:
                fn(*args)
            except Exception as exc:      # the others must still run
                LOG.warning('cleanup %s failed: %s', fn.__name__,
                            ' '.join(str(exc).split())[:500])

    def restart_compute_service(self, compute, keep_hypervisor_state=True):
        """A new nova-compute process for compute.host. Its fake hypervisor
        starts empty whatever keep_hypervisor_state says (it lived in the
        old process's memory)."""
        compute.stop()
        new = ComputeProcess(self, compute.host).start()
        self.computes[compute.host] = new
        return new

    def pids(self):
        """{service name: pid} of the running services."""
        return {s.name: s.proc.pid for s in self.services if s.running()}

    def cpu_seconds(self):
        """CPU seconds used by the live services and their workers."""
        return sum(self.cpu_by_service().values())

    def cpu_by_service(self):
        """{service: CPU seconds} of the live services and their workers;
        every nova-compute counts under 'compute'."""
        totals = {}
        for service in self.services:
            if service.running():
                kind = service.argv[0]
                totals[kind] = (totals.get(kind, 0.0)
                                + _cpu_seconds(service.proc.pid))
        return totals

    # -- processes -----------------------------------------------------------
    def _conf(self, name):
        return os.path.join(self.dir, name)

    def _service(self, name, kind, argv, env=None):
        service = _Service(name, [kind] + argv,
                           os.path.join(self.dir, '%s.log' % name), env=env)
        self.services.append(service)
        return service

    def _wait_http(self, service, port, timeout=120):
        import socket
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            service.check_alive()
            with socket.socket() as s:
                s.settimeout(0.5)
                if s.connect_ex(('127.0.0.1', port)) == 0:
                    return
            time.sleep(0.2)
        raise ProcessNovaError('%s did not listen on 127.0.0.1:%d within '
                               '%d s; its log: %s' % (
                                   service.name, port, timeout,
                                   service.log_file))

    def _wait_computes(self, timeout=300):
        """Every compute up and mapped to cell1: an operator runs
        discover_hosts after adding computes (os-hypervisors lists only
        mapped ones)."""
        want = set(self.host_names)
        deadline = time.monotonic() + timeout
        while True:
            for service in self.services:
                service.check_alive()
            up = {s['host'] for s in self.admin_api.get_services(
                binary='nova-compute') if s['state'] == 'up'}
            mapped = set()
            if want <= up:
                self._manage('cell_v2', 'discover_hosts')
                mapped = {h['hypervisor_hostname'] for h in
                          self.admin_api.api_get(
                              '/os-hypervisors').body['hypervisors']}
                if want <= mapped:
                    return
            if time.monotonic() > deadline:
                raise ProcessNovaError(
                    'computes not up and mapped within %d s: missing %s'
                    % (timeout, sorted(want - (up & mapped))))
            time.sleep(1)

    # -- infrastructure ------------------------------------------------------
    def _db(self, name):
        url = '%s/%s_%s' % (self.database_url, self.prefix, name)
        if url.startswith('mysql'):
            url += '?charset=utf8'
        return url

    def _server_engine(self):
        """An autocommit engine on the database server, no database."""
        import sqlalchemy as sa
        maintenance_db = ('/postgres' if self.database_url.startswith(
            'postgresql') else '/')
        return sa.create_engine(self.database_url + maintenance_db,
                                isolation_level='AUTOCOMMIT')

    def _create_databases(self):
        import sqlalchemy as sa
        names = ['%s_%s' % (self.prefix, n)
                 for n in ('api', 'cell0', 'cell1', 'placement')]
        created = []
        engine = self._server_engine()
        try:
            with engine.connect() as conn:
                for name in names:
                    conn.execute(sa.text('CREATE DATABASE %s' % name))
                    created.append(name)
        except Exception as exc:
            if created:     # nothing half-done left behind
                self._drop_databases(created)
            cause = getattr(exc, 'orig', None) or exc   # the driver's words
            raise ProcessNovaError('cannot create the sim\'s databases on %s '
                                   '(--database-url): %s' % (
                                       redact(self.database_url),
                                       ' '.join(str(cause).split())))
        finally:
            engine.dispose()
        self._cleanups.append((self._drop_databases, (names,)))

    def _drop_databases(self, names):
        import sqlalchemy as sa
        force = (' WITH (FORCE)' if self.database_url.startswith('postgresql')
                 else '')
        engine = self._server_engine()
        try:
            with engine.connect() as conn:
                for name in names:
                    conn.execute(sa.text('DROP DATABASE IF EXISTS %s%s'
                                         % (name, force)))
        finally:
            engine.dispose()

    def _create_vhost(self):
        ctl = shutil.which('rabbitmqctl')
        parsed = urllib.parse.urlsplit(self.transport_url)
        if not ctl or parsed.scheme != 'rabbit' or parsed.path not in (
                '', '/'):
            return
        vhost = self.prefix
        user = urllib.parse.unquote(parsed.username or 'guest')
        try:
            for cmd in (['add_vhost', vhost],
                        ['set_permissions', '-p', vhost, user, '.*', '.*',
                         '.*']):
                subprocess.run([ctl, '-q'] + cmd, check=True,
                               capture_output=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as exc:
            LOG.warning('no RabbitMQ virtual host of its own for this sim '
                        '(%s); using %s as given', exc, self.transport_url)
            return
        self.vhost = vhost
        self.transport_url = urllib.parse.urlunsplit(
            parsed._replace(path='/' + vhost))
        self._cleanups.append((subprocess.run, (
            [ctl, '-q', 'delete_vhost', vhost],)))

    def _write_configs(self):
        from nova_ha.sim import novastack
        quota = ('instances', 'cores', 'ram', 'server_groups',
                 'server_group_members')
        lines = [
            '[DEFAULT]',
            'host = controller',
            'transport_url = %s' % self.transport_url,
            # MediumFakeDriver whose node UUID survives a restart.
            'compute_driver = nova_ha_fake.StableMediumFakeDriver',
            'state_path = %s' % self.dir,
            # nova's default report interval; the evacuator forces a
            # failed host's service down itself.
            'report_interval = 10',
            'service_down_time = 60',
            'use_rootwrap_daemon = false',
            '[wsgi]',
            'api_paste_config = %s' % novastack.api_paste_config(),
            '[api]',
            'auth_strategy = keystone',
            '[api_database]',
            'connection = %s' % self._db('api'),
            '[database]',
            'connection = %s' % self._db('cell1'),
            '[placement]',
            'auth_type = admin_token',
            'endpoint = http://127.0.0.1:%d' % self.placement_port,
            'endpoint_override = http://127.0.0.1:%d' % self.placement_port,
            'token = admin',
            '[filter_scheduler]',
        ] + ['available_filters = %s' % f for f in self.available_filters] + [
            'enabled_filters = %s' % ','.join(self.enabled_filters),
            '[quota]',
        ] + ['%s = -1' % q for q in quota] + [
            '[oslo_messaging_notifications]',
            'driver = noop',
            '[oslo_concurrency]',
            'lock_path = %s' % os.path.join(self.dir, 'locks'),
            '[glance]',
            'api_servers = http://127.0.0.1:9292',
            '',
        ]
        # Extra options go last: oslo.config reads a section again where
        # it reappears, and the last value of an option wins.
        for (section, name), value in sorted(self.nova_options.items()):
            lines += ['[%s]' % section, '%s = %s' % (name, value)]
        with open(self._conf('nova.conf'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
        with open(self._conf('placement.conf'), 'w') as f:
            f.write('\n'.join([
                '[placement_database]',
                'connection = %s' % self._db('placement'),
                'sync_on_startup = true',
                '[api]',
                'auth_strategy = noauth2',
                '']))

    def _compute_conf(self, host):
        """The host's own config: its name and its own state_path, which
        holds its node identity (``compute_id``). nova-compute refuses to
        start again without that file ("No local node identity found, but
        this is not our first startup"), and nova's fake drivers never
        write it: a host returned to service after a failure would never
        come back."""
        path = self._conf('compute-%s.conf' % host)
        if not os.path.exists(path):
            state = os.path.join(self.dir, 'hosts', host)
            os.makedirs(state, exist_ok=True)
            with open(os.path.join(state, 'compute_id'), 'w') as f:
                f.write(nova_internals.node_uuid(host) + '\n')
            with open(path, 'w') as f:
                f.write('[DEFAULT]\nhost = %s\nstate_path = %s\n'
                        % (host, state))
        return path

    def _manage(self, *args):
        cmd = [sys.executable, '-c', 'import sys; from nova.cmd.manage import '
               'main; sys.argv[0] = "nova-manage"; sys.exit(main())',
               '--config-file', self._conf('nova.conf')] + list(args)
        env = dict(os.environ)
        nova_internals.select_threading_mode(env)   # the release's mode
        result = subprocess.run(cmd, capture_output=True, text=True, env=env,
                                timeout=600)
        if result.returncode != 0:
            raise ProcessNovaError('nova-manage %s failed (%d): %s' % (
                ' '.join(args), result.returncode,
                (result.stderr or result.stdout).strip()[-2000:]))
        return result.stdout

    def _sync_databases(self):
        self._manage('api_db', 'sync')
        self._manage('cell_v2', 'map_cell0', '--database_connection',
                     self._db('cell0'))
        self._manage('cell_v2', 'create_cell', '--name', 'cell1')
        self._manage('db', 'sync')

