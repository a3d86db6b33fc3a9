"""Leader load: CPU and RSS of the real ``nova-ha-evacuator`` process, as
leader, with 1,000 compute hosts sending heartbeats every 200 ms on every
plane; the bare heartbeat receiver measured the same way for comparison.

What runs (all on 127.0.0.1, nothing shares a process with what is
measured):

* the evacuator: ``python -m nova_ha.cmd.evacuator --config-file ...``,
  unchanged, as leader (``[coordination] backend_url = file://...``), its
  own SQLite journal in a temporary directory, a fencing inventory of the
  1,000 hosts (IPMI addresses on 127.0.0.1 that nothing answers: no host
  fails, so nothing is fenced), and its reconcile loop at the default tick;
* Nova: a stub API in this process that lists the 1,000 hosts as
  nova-compute services (``GET /os-services``) in 25 rack aggregates
  (``GET /os-aggregates``) -- the only calls a leader makes while no host
  fails (every other request is counted and reported, and would show here).
  The simulated cloud (``nova-ha-sim``) runs a real Nova with a
  nova-compute service per host, which does not fit 1,000 hosts on a
  2-core machine; hosts Nova does not list are not recovered by the
  evacuator (it only logs them), so a small sim plus 1,000 unknown agents
  would measure the receiver, not the leader's per-host work;
* the 1,000 agents: ``nova_ha.heartbeat.agent.AgentGroup`` in a separate
  sender process.

CPU is the evacuator's utime+stime from /proc/PID/stat over the sampling
period; RSS is VmRSS from /proc/PID/status at the end (VmHWM: peak).

    .venv/bin/python benchmarks/bench_leader.py [--agents 1000]
        [--interval-ms 200] [--seconds 30] [--settle 10]

Exit status 0 whatever the figures (they are printed; not a timed test),
1 only when the benchmark itself could not run.
"""

import argparse
import contextlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

PLANES = ('management', 'storage')
RACKS = 25
TOKEN = 'bench-leader-token'
LOCK = 'nova-ha-evacuator-leader'    # [coordination] lock_name default
CLK_TCK = os.sysconf('SC_CLK_TCK')
CPU_GOAL = 25.0      # % of one core
RSS_GOAL = 200.0     # MB


def host_name(i):
    return 'compute%04d' % i


# -- the sender process -------------------------------------------------------

def sender(args):
    """Child: read key and targets from stdin (never argv), send until
    stdin says stop."""
    from nova_ha.heartbeat import agent as hb_agent
    from nova_ha.heartbeat import protocol
    cfg = json.loads(sys.stdin.readline())
    key = cfg['key']     # the key_file's text, as the daemons use it
    targets = {p: [tuple(a) for a in v] for p, v in cfg['targets'].items()}
    procs = {'nova-compute': 'running', 'libvirtd': 'running'}
    group = hb_agent.AgentGroup()
    ring = protocol.Keyring(key)
    for i in range(args.agents):
        group.add(hb_agent.Agent(host_name(i), targets, ring,
                                 interval=args.interval_ms / 1000.0,
                                 process_states=lambda: procs))
    group.start()
    print('started', flush=True)
    sys.stdin.readline()
    group.close()


# -- the bare receiver process ------------------------------------------------

def bare_receiver(args):
    """Child: only a HeartbeatReceiver (what bench_heartbeat.py measures
    in-process), with the evacuator's planes and window."""
    from nova_ha.heartbeat import protocol
    from nova_ha.heartbeat import receiver as hb_receiver
    cfg = json.loads(sys.stdin.readline())
    recv = hb_receiver.HeartbeatReceiver(
        {p: [('127.0.0.1', 0)] for p in PLANES},
        protocol.Keyring(cfg['key']), max_clock_skew=2.0,
        default_window=8.0)
    recv.start()
    print(json.dumps(recv.addresses), flush=True)
    sys.stdin.readline()
    print(json.dumps({'hosts': len(recv.hosts()),
                      'counters': recv.counters()}), flush=True)
    recv.stop()


# -- the stub Nova API --------------------------------------------------------

class StubNova:
    """Answers the read calls of a leader with no failed host."""

    def __init__(self, hosts):
        self.hosts = hosts
        self.requests = {}
        self.lock = threading.Lock()
        now = time.strftime('%Y-%m-%dT%H:%M:%S.000000', time.gmtime())
        self.services = {'services': [{
            'id': '00000000-0000-4000-8000-%012d' % i, 'binary':
            'nova-compute', 'host': h, 'zone': 'nova', 'status': 'enabled',
            'state': 'up', 'updated_at': now, 'disabled_reason': None,
            'forced_down': False} for i, h in enumerate(hosts)]}
        per_rack = -(-len(hosts) // RACKS)
        self.aggregates = {'aggregates': [{
            'id': r + 1, 'uuid': '00000000-0000-4000-9000-%012d' % r,
            'name': 'rack-r%02d' % r, 'availability_zone': None,
            'hosts': hosts[r * per_rack:(r + 1) * per_rack],
            'metadata': {'ha:rack': 'r%02d' % r,
                         'ha:power_domain': 'pdu%02d' % r},
            'created_at': now, 'updated_at': None, 'deleted_at': None,
            'deleted': False} for r in range(RACKS)]}
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *a):
                pass

            def _reply(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data)))
                self.send_header('OpenStack-API-Version', 'compute 2.94')
                self.send_header('X-OpenStack-Nova-API-Version', '2.94')
                self.end_headers()
                self.wfile.write(data)

            def _handle(self):
                path = urllib.parse.urlsplit(self.path).path
                if path.startswith('/v2.1'):
                    path = path[len('/v2.1'):]
                with stub.lock:
                    key = '%s %s' % (self.command, path)
                    stub.requests[key] = stub.requests.get(key, 0) + 1
                length = int(self.headers.get('Content-Length') or 0)
                if length:
                    self.rfile.read(length)
                if self.headers.get('X-Auth-Token') != TOKEN:
                    return self._reply(401, {'error': 'bad token'})
                if self.command == 'GET' and path == '/os-services':
                    return self._reply(200, stub.services)
                if self.command == 'GET' and path == '/os-aggregates':
                    return self._reply(200, stub.aggregates)
                if self.command == 'GET' and path in ('', '/'):
                    return self._reply(200, {'version': {
                        'id': 'v2.1', 'status': 'CURRENT',
                        'version': '2.94', 'min_version': '2.1',
                        'links': []}})
                return self._reply(404, {'itemNotFound': {
                    'code': 404, 'message': 'not in the stub: %s' % key}})

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                      Handler)
        self.server.daemon_threads = True
        self.endpoint = 'http://127.0.0.1:%d/v2.1' % \
            self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever,
                         daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


# -- measuring a process -----------------------------------------------------

def cpu_seconds(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    # fields[0] is field 3 (state): utime is field 14, stime field 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_mb(pid):
    out = {}
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith(('VmRSS:', 'VmHWM:')):
                out[line.split(':')[0]] = int(line.split()[1]) / 1024.0
    return out['VmRSS'], out['VmHWM']


def sample(pid, seconds):
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    c1, t1 = cpu_seconds(pid), time.monotonic()
    rss, hwm = memory_mb(pid)
    return {'cpu': 100.0 * (c1 - c0) / (t1 - t0), 'rss': rss, 'hwm': hwm,
            'seconds': t1 - t0}


def free_port():
    with contextlib.closing(socket.socket(socket.AF_INET,
                                          socket.SOCK_DGRAM)) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def closed_tcp_port():
    with contextlib.closing(socket.socket()) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start_sender(args, key, targets):
    child = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), '--sender', '--agents',
         str(args.agents), '--interval-ms', str(args.interval_ms)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    child.stdin.write(json.dumps({'key': key,
                                  'targets': targets}) + '\n')
    child.stdin.flush()
    if child.stdout.readline().strip() != 'started':
        child.kill()
        raise RuntimeError('sender did not start')
    return child


def stop_child(child):
    if child.poll() is None:
        try:
            child.stdin.write('stop\n')
            child.stdin.flush()
        except OSError:
            pass
        try:
            child.wait(15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def write_config(d, args, stub, key):
    import yaml
    key_file = os.path.join(d, 'heartbeat.key')
    with open(key_file, 'w') as f:
        f.write(key + '\n')
    os.chmod(key_file, 0o600)
    bmc_port = closed_tcp_port()
    inv_file = os.path.join(d, 'inventory.yaml')
    with open(inv_file, 'w') as f:
        yaml.safe_dump({'hosts': {
            host_name(i): {'driver': 'ipmi', 'address': '127.0.0.1',
                           'port': bmc_port, 'username': 'admin',
                           'password': 'unused'}
            for i in range(args.agents)}}, f)
    os.chmod(inv_file, 0o600)
    ports = {p: free_port() for p in PLANES}
    conf = os.path.join(d, 'nova-ha.conf')
    with open(conf, 'w') as f:
        f.write('\n'.join([
            '[DEFAULT]',
            'log_file = %s' % os.path.join(d, 'evacuator.log'),
            '[evacuator]',
            'name = bench-leader',
            '[nova]',
            'auth_type = admin_token',
            'endpoint = %s' % stub.endpoint,
            'token = %s' % TOKEN,
            '[heartbeat]',
            'planes = %s' % ','.join(PLANES),
            'key_file = %s' % key_file,
            'interval_ms = %d' % args.interval_ms,
        ] + ['listen = %s=127.0.0.1:%d' % (p, ports[p]) for p in PLANES] + [
            '[fencing]',
            'inventory_file = %s' % inv_file,
            '[journal]',
            'connection = sqlite:///%s' % os.path.join(d, 'journal.sqlite'),
            'auto_upgrade = true',
            '[coordination]',
            'backend_url = file://%s' % os.path.join(d, 'coordination'),
            '']))
    os.chmod(conf, 0o600)
    targets = {p: [['127.0.0.1', ports[p]]] for p in PLANES}
    return conf, targets


def journal_of(d):
    from nova_ha import journal as journal_mod
    return journal_mod.Journal('sqlite:///%s' % os.path.join(
        d, 'journal.sqlite'))


def wait_for(pred, timeout, what):
    """Poll pred(); an exception (the journal not migrated yet) counts as
    not yet, and is named if time runs out."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = pred()
        except Exception as exc:
            value, last = None, exc
        if value:
            return value
        time.sleep(0.25)
    raise RuntimeError('timed out after %.0f s waiting for %s%s'
                       % (timeout, what, ' (last error: %s)' % last
                          if last else ''))


def measure_leader(args, d, key):
    stub = StubNova([host_name(i) for i in range(args.agents)])
    conf, targets = write_config(d, args, stub, key)
    # The agents run first, as on a live cloud: an evacuator that leads
    # before it has heard a host declares it down after startup_grace.
    child = start_sender(args, key, targets)
    t_start = time.monotonic()
    ev = subprocess.Popen([sys.executable, '-m', 'nova_ha.cmd.evacuator',
                           '--config-file', conf],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    j = None
    try:
        time.sleep(1.0)
        if ev.poll() is not None:
            raise RuntimeError('evacuator exited %s: %s'
                               % (ev.returncode, ev.stderr.read()))
        j = wait_for(lambda: os.path.exists(os.path.join(
            d, 'journal.sqlite')) and journal_of(d), 60, 'the journal')
        wait_for(lambda: j.get_leadership(LOCK) is not None, 60,
                 'leadership')

        def all_ok():
            states = j.list_host_states()
            return len([s for s in states if s.state == 'OK']) \
                >= args.agents
        wait_for(all_ok, 120, 'every host OK in the journal')
        ready = time.monotonic() - t_start
        time.sleep(args.settle)
        with stub.lock:
            req0 = dict(stub.requests)
        figures = sample(ev.pid, args.seconds)
        with stub.lock:
            req1 = dict(stub.requests)
        states = j.list_host_states()
        figures.update(
            ready=ready,
            not_ok=sorted('%s=%s' % (s.host, s.state) for s in states
                          if s.state != 'OK'),
            recoveries=len(j.list_recoveries()),
            alarms=[(a.type, a.host) for a in j.list_alarms()],
            fencing=len(j.list_fencing_attempts()),
            leader=j.get_leadership(LOCK).holder,
            pid=ev.pid,
            nova={k: req1.get(k, 0) - req0.get(k, 0) for k in req1
                  if req1.get(k, 0) != req0.get(k, 0)},
            nova_total=req1)
        return figures
    finally:
        stop_child(child)
        if j is not None:
            j.close()
        if ev.poll() is None:
            ev.terminate()
        try:
            _, err = ev.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            ev.kill()
            _, err = ev.communicate()
        stub.stop()
        if 'Traceback' in (err or ''):
            print('evacuator stderr:\n%s' % err, file=sys.stderr)


def measure_bare(args, key):
    recv = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), '--bare-receiver'],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    child = None
    try:
        recv.stdin.write(json.dumps({'key': key}) + '\n')
        recv.stdin.flush()
        targets = json.loads(recv.stdout.readline())
        child = start_sender(args, key, targets)
        time.sleep(args.settle)
        figures = sample(recv.pid, args.seconds)
        recv.stdin.write('report\n')
        recv.stdin.flush()
        figures.update(json.loads(recv.stdout.readline()))
        return figures
    finally:
        if child is not None:
            stop_child(child)
        if recv.poll() is None:
            recv.kill()
        recv.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--agents', type=int, default=1000)
    ap.add_argument('--interval-ms', type=int, default=200)
    ap.add_argument('--seconds', type=float, default=30.0,
                    help='CPU sampling period (default 30)')
    ap.add_argument('--settle', type=float, default=10.0,
                    help='seconds after every host is OK before sampling')
    ap.add_argument('--keep', action='store_true',
                    help='keep the temporary directory (config, log, '
                         'journal)')
    ap.add_argument('--sender', action='store_true', help=argparse.SUPPRESS)
    ap.add_argument('--bare-receiver', action='store_true',
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.sender:
        return sender(args)
    if args.bare_receiver:
        return bare_receiver(args)

    key = os.urandom(32).hex()
    d = tempfile.mkdtemp(prefix='bench-leader-')
    try:
        leader = measure_leader(args, d, key)
        bare = measure_bare(args, key)
    except RuntimeError as exc:
        print('bench_leader: %s (directory %s kept)' % (exc, d),
              file=sys.stderr)
        return 1
    if not args.keep:
        shutil.rmtree(d, ignore_errors=True)
    else:
        print('kept %s' % d)

    def verdict(ok):
        return 'PASS' if ok else 'MISS'
    rows = [
        ('hosts x planes, interval', '%d x %d, %d ms' % (
            args.agents, len(PLANES), args.interval_ms), '', ''),
        ('sampled for', '%.1f s (after %.0f s settle)' % (
            leader['seconds'], args.settle), '', ''),
        ('leader: all hosts OK in journal after', '%.1f s' % leader['ready'],
         '', ''),
        ('leader CPU (% of one core)', '%.1f %%' % leader['cpu'],
         '<= %.0f %%' % CPU_GOAL, verdict(leader['cpu'] <= CPU_GOAL)),
        ('leader RSS (VmRSS)', '%.1f MB' % leader['rss'],
         '<= %.0f MB' % RSS_GOAL, verdict(leader['rss'] <= RSS_GOAL)),
        ('leader peak RSS (VmHWM)', '%.1f MB' % leader['hwm'], '', ''),
        ('bare receiver CPU (% of one core)', '%.1f %%' % bare['cpu'],
         '<= %.0f %%' % CPU_GOAL, verdict(bare['cpu'] <= CPU_GOAL)),
        ('bare receiver RSS (VmRSS)', '%.1f MB' % bare['rss'],
         '<= %.0f MB' % RSS_GOAL, verdict(bare['rss'] <= RSS_GOAL)),
        ('bare receiver hosts heard', '%d' % bare['hosts'], '', ''),
        ('leader: journal leadership holder', leader['leader'],
         'this evacuator', verdict(leader['leader'].endswith(
             '.%d' % leader['pid']))),
        ('leader: hosts not OK', '%d' % len(leader['not_ok']), '0',
         verdict(not leader['not_ok'])),
        ('leader: recoveries / fencing attempts', '%d / %d' % (
            leader['recoveries'], leader['fencing']), '0 / 0',
         verdict(not leader['recoveries'] and not leader['fencing'])),
        ('leader: active alarms', '%d' % len(leader['alarms']), '0',
         verdict(not leader['alarms'])),
    ]
    for req, n in sorted(leader['nova'].items()):
        rows.append(('leader: Nova %s while sampled' % req, '%d' % n, '', ''))
    w = max(len(r[0]) for r in rows)
    v = max(len(r[1]) for r in rows)
    g = max(len(r[2]) for r in rows)
    print('%-*s  %*s  %-*s  %s' % (w, 'leader (nova-ha-evacuator)', v,
                                   'value', g, 'goal', ''))
    print('-' * (w + v + g + 10))
    for name, value, goal, ok in rows:
        print('%-*s  %*s  %-*s  %s' % (w, name, v, value, g, goal, ok))
    if leader['not_ok']:
        print('hosts not OK: %s' % ', '.join(leader['not_ok'][:10]))
    if leader['alarms']:
        print('alarms: %s' % leader['alarms'][:10])
    return 0


if __name__ == '__main__':
    sys.exit(main())
