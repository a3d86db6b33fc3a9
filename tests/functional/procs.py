"""Separate processes for functional tests: the simulated cloud and the
evacuator, started the way an operator starts them."""

import os
import subprocess
import sys
import time

from nova_ha.sim import client as sim_client

PY = sys.executable


def wait_for(predicate, timeout, interval=0.1, what='condition'):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError('timed out after %.1f s waiting for %s'
                                 % (timeout, what))
        time.sleep(interval)


def run(*args, timeout=60):
    return subprocess.run([PY, '-m'] + list(args), capture_output=True,
                          text=True, timeout=timeout)


class Sim:
    """``nova-ha-sim serve`` in its own process."""

    def __init__(self, state_dir, hosts=6, racks=3, sal=None, evacuators=1,
                 watchdog_restart_delay=None, nova=None):
        self.dir = str(state_dir)
        cmd = [PY, '-m', 'nova_ha.sim.cli', 'serve', '--hosts', str(hosts),
               '--racks', str(racks), '--evacuators', str(evacuators),
               '--state-dir', self.dir]
        if sal:
            cmd += ['--sal', str(sal)]
        if watchdog_restart_delay:
            cmd += ['--watchdog-restart-delay', str(watchdog_restart_delay)]
        if nova:
            cmd += ['--nova', nova]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if 'up in' not in line:
            self.proc.kill()
            raise RuntimeError('nova-ha-sim did not start: %s %s'
                               % (line, self.proc.stderr.read()))
        self.state = sim_client.load_state(self.dir)
        self.nova = sim_client.nova_client(self.state)

    def cli(self, *args):
        res = run('nova_ha.sim.cli', *args, '--state-dir', self.dir)
        assert res.returncode == 0, res.stderr
        return res

    def inject(self, host, fault):
        return self.cli('inject', host, fault)

    def heal(self, host):
        return self.cli('heal', host)

    def host(self, name):
        return sim_client.control(self.state, 'GET', '/hosts/' + name)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


class Evacuator:
    """``nova-ha-evacuator --config-file …`` in its own process."""

    def __init__(self, config_file, extra_args=()):
        self.config_file = config_file
        self.proc = subprocess.Popen(
            [PY, '-m', 'nova_ha.cmd.evacuator', '--config-file',
             config_file] + list(extra_args),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def log_file(self):
        import configparser
        parser = configparser.ConfigParser(strict=False,
                                           interpolation=None)
        parser.read(self.config_file)
        return parser['DEFAULT']['log_file']

    def wait_running(self, timeout=60):
        """Until the daemon has started: journal upgraded, receiver bound,
        election started (it logs 'running; heartbeats'). Tests that read
        the journal or inject a fault must wait for this first."""
        log = self.log_file()

        def running():
            if self.proc.poll() is not None:
                out, err = self.proc.communicate()
                raise AssertionError('evacuator exited %s: %s'
                                     % (self.proc.returncode, err[-2000:]))
            try:
                with open(log) as f:
                    return 'running; heartbeats' in f.read()
            except OSError:
                return False
        wait_for(running, timeout, interval=0.1,
                 what='evacuator %s running' % self.config_file)
        return self

    def nova_ha(self, *args, timeout=60):
        """``nova-ha --config-file <this evacuator's config> ARGS``."""
        return run('nova_ha.cmd.cli', '--config-file', self.config_file,
                   *args, timeout=timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.communicate()

    def kill(self):
        self.proc.kill()
        return self.proc.communicate()


def boot(sim, name, count=1, flavor=None, hints=None, host=None,
         timeout=60):
    """Boot servers through the sim's API and wait until ACTIVE."""
    nova = sim.nova
    if flavor is None:
        try:
            flavor = nova.flavors.find(name='test.small')
        except Exception:
            flavor = nova.flavors.create('test.small', 256, 1, 1)
    kwargs = {}
    if host:
        kwargs['availability_zone'] = 'nova:' + host
    nova.servers.create(name, sim.state['images'][0], flavor, nics='none',
                        min_count=count, max_count=count,
                        scheduler_hints=hints or {}, **kwargs)

    def ready():
        servers = [s for s in nova.servers.list()
                   if s.name == name or s.name.startswith(name + '-')]
        if any(s.status == 'ERROR' for s in servers):
            raise AssertionError('boot of %s failed: %s' % (
                name, [getattr(nova.servers.get(s.id), 'fault', None)
                       for s in servers if s.status == 'ERROR']))
        if len(servers) == count and all(s.status == 'ACTIVE'
                                         for s in servers):
            return servers
    return wait_for(ready, timeout, what='%d x %s ACTIVE' % (count, name))


def boot_retried(sim, name, count, host=None, tries=3, timeout=60,
                 pause=2.0, cleanup_timeout=30):
    """:func:`boot`, retried after a pause: on a heavily shared machine a
    starved sim can report its computes down for a moment (NoValidHost)
    or boot slowly. A failed try's servers are deleted first."""
    for attempt in range(tries):
        try:
            return boot(sim, name, count=count, host=host, timeout=timeout)
        except AssertionError:
            if attempt == tries - 1:
                raise
            for s in sim.nova.servers.list():
                if s.name.startswith(name):
                    s.delete()
            wait_for(lambda: not [s for s in sim.nova.servers.list()
                                  if s.name.startswith(name)],
                     cleanup_timeout, what='failed boot cleaned up')
            time.sleep(pause)


def placement(sim):
    return {s.name: getattr(s, 'OS-EXT-SRV-ATTR:host')
            for s in sim.nova.servers.list()}


def journal(config_file):
    """A Journal on the evacuator's database (read-only use in tests)."""
    from nova_ha import journal as journal_mod
    import configparser
    parser = configparser.ConfigParser(strict=False)
    parser.read(config_file)
    return journal_mod.Journal(parser['journal']['connection'])
