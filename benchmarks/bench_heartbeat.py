"""Heartbeat receiver load: CPU and RSS with 1,000 agents x 2 planes.

The receiver runs in this process (nothing else runs here); the 1,000
simulated agents run in a separate sender process (one AgentGroup thread),
so the CPU and RSS figures are the receiver's alone. All traffic goes to
127.0.0.1. Near the end the sender silences a few hosts (all planes) and
we report how long the receiver took to declare them SILENT (the window
is 4 intervals).

    .venv/bin/python benchmarks/bench_heartbeat.py [--agents 1000]
        [--interval-ms 200] [--seconds 10] [--per-host-keys]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

import psutil

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from nova_ha.heartbeat import agent as hb_agent  # noqa: E402
from nova_ha.heartbeat import protocol  # noqa: E402
from nova_ha.heartbeat import receiver as hb_receiver  # noqa: E402

PLANES = ('management', 'storage')


def sender(args):
    """Child process: read the key and targets from stdin (never argv)."""
    cfg = json.loads(sys.stdin.readline())
    key = bytes.fromhex(cfg['key'])
    targets = {p: [tuple(a) for a in v] for p, v in cfg['targets'].items()}
    killed = {}
    group = hb_agent.AgentGroup()
    procs = {'nova-compute': 'running', 'libvirtd': 'running',
             'ovs-vswitchd': 'running'}
    for i in range(args.agents):
        host = 'compute%04d' % i
        ring = protocol.Keyring(protocol.derive_host_key(key, host)
                                if cfg.get('per_host') else key)
        group.add(hb_agent.Agent(
            host, targets, ring,
            interval=args.interval_ms / 1000.0,
            plane_enabled=lambda p, h=host: h not in killed,
            process_states=lambda: procs))
    group.start()
    print('started', flush=True)
    # Wait for the go signal to kill hosts, then report when we did.
    line = sys.stdin.readline()
    victims = json.loads(line)
    for h in victims:
        killed[h] = time.monotonic()   # CLOCK_MONOTONIC is system-wide
        time.sleep(0.013)              # spread over the beat phases
    print(json.dumps(killed), flush=True)
    sys.stdin.readline()               # wait for "stop"
    group.close()


def udp_rcvbuf_errors():
    """Datagrams the kernel dropped for full receive buffers (all UDP
    sockets of this network namespace), or None if unknown."""
    try:
        with open('/proc/net/snmp') as f:
            rows = [ln.split() for ln in f if ln.startswith('Udp:')]
        return int(rows[1][rows[0].index('RcvbufErrors')])
    except (OSError, ValueError, IndexError):
        return None


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 *
                                                  (len(values) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--agents', type=int, default=1000)
    ap.add_argument('--interval-ms', type=int, default=200)
    ap.add_argument('--seconds', type=float, default=10.0)
    ap.add_argument('--victims', type=int, default=20)
    ap.add_argument('--per-host-keys', action='store_true',
                    help='key_mode = per_host (receiver derives each '
                         'host\'s key)')
    ap.add_argument('--sender', action='store_true', help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.sender:
        return sender(args)

    interval = args.interval_ms / 1000.0
    window = 4 * interval
    key = os.urandom(32)
    me = psutil.Process()
    rss0 = me.memory_info().rss
    recv = hb_receiver.HeartbeatReceiver(
        {p: [('127.0.0.1', 0)] for p in PLANES},
        protocol.HostKeyring(key) if args.per_host_keys
        else protocol.Keyring(key),
        max_clock_skew=2.0, default_window=window)
    silent_at = {}
    lock = threading.Lock()

    def on_event(ev):
        if ev.kind == 'silent':
            with lock:
                silent_at.setdefault(ev.host, {})[ev.plane] = ev.at

    recv.subscribe(on_event)
    recv.start()
    child = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), '--sender',
         '--agents', str(args.agents), '--interval-ms',
         str(args.interval_ms)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        child.stdin.write(json.dumps({
            'key': key.hex(), 'per_host': args.per_host_keys,
            'targets': {p: recv.addresses[p] for p in PLANES}}) + '\n')
        child.stdin.flush()
        assert child.stdout.readline().strip() == 'started'
        # Warm up: every agent heard on every plane.
        deadline = time.monotonic() + 10
        while len(recv.hosts()) < args.agents and \
                time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        c0 = recv.counters()
        drops0 = udp_rcvbuf_errors()
        cpu0 = sum(me.cpu_times()[:2])
        t0 = time.monotonic()
        time.sleep(args.seconds)
        t1 = time.monotonic()
        cpu1 = sum(me.cpu_times()[:2])
        c1 = recv.counters()
        drops1 = udp_rcvbuf_errors()
        rss1 = me.memory_info().rss
        sender_cpu = psutil.Process(child.pid).cpu_times()

        victims = ['compute%04d' % i for i in
                   range(0, args.agents, max(1, args.agents //
                                             max(1, args.victims)))
                   ][:args.victims]
        child.stdin.write(json.dumps(victims) + '\n')
        child.stdin.flush()
        killed = json.loads(child.stdout.readline())
        time.sleep(window + 3 * interval + 0.5)
        child.stdin.write('stop\n')
        child.stdin.flush()
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
        recv.stop()

    elapsed = t1 - t0
    accepted = c1['accepted'] - c0['accepted']
    rejected = sum(c1['rejected'].values()) - sum(c0['rejected'].values())
    expected = args.agents * len(PLANES) / interval
    rate = accepted / elapsed
    cpu = 100.0 * (cpu1 - cpu0) / elapsed
    lat = []
    for h, t in killed.items():
        planes = silent_at.get(h, {})
        if len(planes) == len(PLANES):
            lat.append(max(planes.values()) - t)
    missed = len(killed) - len(lat)
    false_silent = sorted(set(silent_at) - set(killed))

    rows = [
        ('agents x planes', '%d x %d' % (args.agents, len(PLANES)), ''),
        ('keys', 'per host' if args.per_host_keys else 'shared', ''),
        ('interval / window', '%d ms / %d ms' % (args.interval_ms,
                                                 window * 1000), ''),
        ('measured for', '%.1f s' % elapsed, ''),
        ('packets/s expected', '%.0f' % expected, ''),
        ('packets/s accepted', '%.0f' % rate, ''),
        ('shortfall (sender lag or loss)',
         '%.2f %%' % max(0.0, 100.0 * (1 - rate / expected)), ''),
        ('kernel receive-buffer drops',
         '-' if drops0 is None else '%d' % (drops1 - drops0), '0'),
        ('rejected packets', '%d' % rejected, '0'),
        ('receiver CPU (% of one core)', '%.1f %%' % cpu, '<= 25 %'),
        ('receiver process RSS', '%.1f MB' % (rss1 / 1e6), '<= 200 MB'),
        ('  of which since start', '%.1f MB' % ((rss1 - rss0) / 1e6), ''),
        ('sender process CPU (total)', '%.1f s' % (sender_cpu.user +
                                                   sender_cpu.system), ''),
    ]
    if lat:
        rows += [
            ('silenced hosts detected', '%d / %d' % (len(lat), len(killed)),
             'all'),
            ('fault -> SILENT p50', '%.0f ms' % (1000 * statistics.median(
                lat)), '~ window'),
            ('fault -> SILENT p99', '%.0f ms' % (1000 * pct(lat, 99)),
             '~ window'),
            ('fault -> SILENT max', '%.0f ms' % (1000 * max(lat)), ''),
        ]
    rows.append(('live hosts wrongly SILENT', '%d' % len(false_silent), '0'))
    w = max(len(r[0]) for r in rows)
    v = max(len(r[1]) for r in rows)
    print('%-*s  %*s  %s' % (w, 'heartbeat receiver', v, 'value', 'goal'))
    print('-' * (w + v + 14))
    for name, value, goal in rows:
        print('%-*s  %*s  %s' % (w, name, v, value, goal))
    ok = cpu <= 25 and rss1 <= 200e6 and not missed and not false_silent
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
