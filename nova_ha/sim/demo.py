"""The README demo: a simulated cloud, servers across racks, BMC states.

Everything here goes through the same interfaces an operator or a VNF
manager would use: python-novaclient over HTTP against the sim's Nova API,
and IPMI 2.0 over UDP against each host's virtual BMC.
"""

import os
import tempfile
import time


from nova_ha.evacuator import placement_plan
from nova_ha.sim import cli
from nova_ha.sim import client as sim_client
from nova_ha.sim.cloud import SimCloud


class Clock:
    def __init__(self):
        self.t0 = time.monotonic()

    def __call__(self, text):
        print('[%6.2f s] %s' % (time.monotonic() - self.t0, text), flush=True)


def bmc_power(state_dir, host):
    """Read a host's power state from its BMC over IPMI, with nova-ha's own
    fencing driver and the inventory the sim generated."""
    from nova_ha.fencing import fencer
    from nova_ha.fencing import inventory
    inv = inventory.load(os.path.join(state_dir, 'fencing-inventory.yaml'))
    status = fencer.Fencer(inv).status(host)
    return status.power_state or 'unknown (%s)' % status.reason


def wait_active(nova, server_ids, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        servers = [nova.servers.get(s) for s in server_ids]
        if all(s.status == 'ACTIVE' for s in servers):
            return servers
        bad = [s for s in servers if s.status == 'ERROR']
        if bad:
            raise RuntimeError('server %s went to ERROR' % bad[0].name)
        time.sleep(0.2)
    raise RuntimeError('servers not ACTIVE after %d s' % timeout)


def wait_monitoring(conf_file, evacuator, timeout=60):
    """Until the evacuator runs and is past its start-up grace (a fault
    inside it waits for the grace to end: the demo's timeline would show
    the grace, not the detection)."""
    import configparser
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read(conf_file)
    log = parser['DEFAULT']['log_file']
    grace = float(parser.get('evacuator', 'startup_grace', fallback='3.0'))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if evacuator.poll() is not None:
            raise RuntimeError('nova-ha-evacuator exited with %s; see %s'
                               % (evacuator.returncode, log))
        try:
            with open(log) as f:
                running = 'running; heartbeats' in f.read()
        except OSError:
            running = False
        if running:
            break
        time.sleep(0.1)
    else:
        raise RuntimeError('nova-ha-evacuator not running after %d s; see '
                           '%s' % (timeout, log))
    time.sleep(grace + 0.5)


def placement_table(nova, state, prefix):
    servers = sorted((s for s in nova.servers.list()
                      if s.name.startswith(prefix)), key=lambda s: s.name)
    print('  %-10s %-10s %-5s %-13s %s' % ('SERVER', 'HOST', 'RACK',
                                          'POWER DOMAIN', 'STATUS'))
    for s in servers:
        host = getattr(s, 'OS-EXT-SRV-ATTR:host')
        topo = state['hosts'][host]['topology']
        print('  %-10s %-10s %-5s %-13s %s' % (
            s.name, host, topo['rack'], topo['power_domain'], s.status))
    return {s.name: getattr(s, 'OS-EXT-SRV-ATTR:host') for s in servers}


def _evacuate_label(entry, name):
    """'evacuate app-2 -> compute05 (planned)': the target the evacuator
    planned and nova-scheduler validated; or no target host."""
    detail = entry.detail or ''
    if '(%s)' % placement_plan.PLANNED in detail:
        return 'evacuate ' + detail
    return 'evacuate %s (no target host)' % name


def wait_recovery(journal, host, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for rec in journal.list_recoveries(host=host):
            if rec.state in ('done', 'incomplete', 'failed'):
                return rec
        time.sleep(0.1)
    raise RuntimeError('no finished recovery of %s after %d s'
                       % (host, timeout))


def _noise(line):
    """oslo.service's eventlet deprecation banner, not nova-ha output."""
    return ('Eventlet' in line or 'eventlet' in line or not line.strip()
            or line.startswith(('we strongly', 'If you are', 'framework.',
                                'https://')))


def report_demo(conf_file, state_dir, say):
    """``nova-ha report`` on the demo's journal: its table, and its
    timeline chart written to the state dir's report/ (kept after the
    demo)."""
    import subprocess
    import sys

    chart = os.path.join(state_dir, REPORT_DIR, 'recoveries.svg')
    os.makedirs(os.path.dirname(chart), exist_ok=True)
    say('HA report: nova-ha report --chart %s' % chart)
    print()
    proc = subprocess.run(
        [sys.executable, '-m', 'nova_ha.cmd.cli', '--config-file',
         conf_file, 'report', '--chart', chart],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=120)
    for line in proc.stdout.splitlines():
        if not _noise(line) and not line.startswith('chart: '):
            print('  ' + line)
    print()
    if proc.returncode != 0:
        raise RuntimeError('nova-ha report failed (exit %d)'
                           % proc.returncode)
    say('recovery timeline chart (kept after the demo): %s' % chart)
    return chart


def drain_demo(nova, state, conf_file, flavor, say):
    """Maintenance: drain the host of another VNF member, live."""
    import subprocess
    import sys

    servers = {s.name: getattr(s, 'OS-EXT-SRV-ATTR:host')
               for s in nova.servers.list()}
    host = servers['vnf-a-2']
    for i in (1, 2):
        nova.servers.create('web-%d' % i, state['images'][0], flavor,
                            nics='none', availability_zone='nova:' + host)
    wait_active(nova, [s.id for s in nova.servers.list()
                       if s.name.startswith('web-')])
    say('MAINTENANCE of %s (rack %s): nova-ha maintenance start %s --wait'
        % (host, state['hosts'][host]['topology']['rack'], host))
    print()
    cmd = [sys.executable, '-m', 'nova_ha.cmd.cli', '--config-file',
           conf_file, 'maintenance', 'start', host, '--reason',
           'demo: firmware upgrade', '--wait']
    proc = subprocess.run(cmd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=300)
    for line in proc.stdout.splitlines():
        if not _noise(line):
            print('  ' + line)
    print()
    say('after the drain (the member stayed in its rack):')
    print()
    placement_table(nova, state, 'vnf-a')
    print()
    subprocess.run([sys.executable, '-m', 'nova_ha.cmd.cli',
                    '--config-file', conf_file, 'maintenance', 'complete',
                    host], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=120)
    say('maintenance of %s completed: nova-compute enabled again' % host)


REPORT_DIR = 'report'


def _cleanup(state_dir):
    """Remove the demo's state, keeping report/ (the chart)."""
    import shutil
    for name in os.listdir(state_dir):
        if name == REPORT_DIR:
            continue
        path = os.path.join(state_dir, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass
    if not os.listdir(state_dir):
        os.rmdir(state_dir)


def run(hosts=8, racks=4):
    import datetime
    import subprocess
    import sys

    from nova_ha import journal as journal_mod

    say = Clock()
    state_dir = tempfile.mkdtemp(prefix='nova-ha-demo-')
    try:
        say('starting the simulated cloud: %d SAL1-certified hosts in %d '
            'racks, one virtual BMC and one heartbeat agent each'
            % (hosts, racks))
        cli._setup_logging(os.path.join(state_dir, 'sim.log'))
        cloud = SimCloud(hosts=hosts, racks=racks, state_dir=state_dir,
                         sal={'compute%02d' % i: 1
                              for i in range(1, hosts + 1)})
        cloud.start()
        evacuator = None
        try:
            state = sim_client.load_state(state_dir)
            conf_file = state['evacuator_configs'][0]
            say('Nova API at %s; starting nova-ha-evacuator --config-file %s'
                % (state['api']['endpoint'], conf_file))
            evacuator = subprocess.Popen(
                [sys.executable, '-m', 'nova_ha.cmd.evacuator',
                 '--config-file', conf_file],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            nova = sim_client.nova_client(state)
            flavor = nova.flavors.create('vnf.sal1', 512, 1, 1)
            flavor.set_keys({'ha:sal': '1', 'ha:recovery_priority': '10'})
            group = nova.server_groups.create(name='vnf-a',
                                              policy='anti-affinity')
            # One multi-create request: the scheduler spreads the members
            # within the request, one per rack (FaultDomainAntiAffinity).
            nova.servers.create('vnf-a', state['images'][0], flavor,
                                nics='none', min_count=4, max_count=4,
                                scheduler_hints={
                                    'group': group.id,
                                    'ha_anti_affinity_level': 'rack'})
            wait_active(nova, nova.server_groups.get(group.id).members)
            say('VNF vnf-a: 4 members, flavor vnf.sal1 (ha:sal=1), '
                'hint ha_anti_affinity_level=rack')
            print()
            before = placement_table(nova, state, 'vnf-a')
            print()
            victim = before['vnf-a-1']
            # Four more instances on that host: the recovery spreads them
            # (nova_ha.evacuator.placement_plan) instead of piling them on
            # the least-loaded host.
            nova.servers.create('app', state['images'][0], flavor,
                                nics='none', min_count=4, max_count=4,
                                availability_zone='nova:' + victim)
            wait_active(nova, [s.id for s in nova.servers.list()
                               if s.name.startswith('app-')])
            say('4 more instances (app-1..4) on %s' % victim)
            journal = journal_mod.Journal(
                'sqlite:///' + os.path.join(state_dir, 'journal.sqlite'))
            wait_monitoring(conf_file, evacuator)
            say('POWER LOSS on %s (rack %s); its BMC says %s until now'
                % (victim, state['hosts'][victim]['topology']['rack'],
                   bmc_power(state_dir, victim)))
            fault_at = datetime.datetime.now(datetime.timezone.utc)
            cloud.inject(victim, 'power_loss')
            rec = wait_recovery(journal, victim)
            say('recovery %d of %s: %s' % (rec.id, victim, rec.state))
            print()
            print('  timeline (seconds after the power loss):')
            names = {s.id: s.name for s in nova.servers.list()}
            for entry in journal.timeline(rec.id):
                step, _, uuid = entry.step.partition(':')
                label = {'last_heartbeat': 'last heartbeat received',
                         'detected': 'HOST_DOWN confirmed (all planes '
                                     'silent)',
                         'fenced': 'fenced: power read off via IPMI',
                         'forced_down': 'nova-compute forced down + '
                                        'disabled',
                         'listed': 'instances listed',
                         'evacuate': _evacuate_label(
                             entry, names.get(uuid, uuid)),
                         'active': entry.detail or uuid,
                         'finished': 'recovery finished',
                         'done': None}.get(step, entry.step)
                if label:
                    print('  %+7.3f s  %s' % (
                        (entry.at - fault_at).total_seconds(), label))
            spread = placement_plan.spread_text(
                journal.list_recovery_items(rec.id))
            if spread:
                print('  spread: %s' % spread)
            print()
            say('final placement (rack anti-affinity kept):')
            print()
            placement_table(nova, state, 'vnf-a')
            print()
            print('  %s BMC power: %s; alarms:' % (
                victim, bmc_power(state_dir, victim)))
            for alarm in journal.list_alarms(status='all'):
                print('    %s %-9s %-10s %s rack=%s: %s' % (
                    alarm.created_at.strftime('%H:%M:%S'), alarm.severity,
                    alarm.type, alarm.host, alarm.rack, alarm.message[:60]))
            journal.close()
            print()
            report_demo(conf_file, state_dir, say)
            print()
            drain_demo(nova, state, conf_file, flavor, say)
        finally:
            say('stopping the evacuator and the simulated cloud')
            if evacuator is not None:
                evacuator.terminate()
                evacuator.wait(30)
            cloud.stop()
    finally:
        _cleanup(state_dir)
    say('done')
    return 0
