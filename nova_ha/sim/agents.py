"""The simulated hosts' heartbeat agents, in a process of their own.

The sim's Nova keeps its process's interpreter lock busy (API, conductor,
scheduler and every nova-compute are threads of one process). Heartbeat
agents sending from a thread of that process were held back for more than a
SAL1 confirmation window (0.45 s) whenever Nova was busy on a loaded
machine, and the evacuator rightly saw every host fall silent at once. The
agents therefore run here, in a child process (one AgentGroup thread, one
socket, as ``benchmarks/bench_heartbeat.py`` does), and the sim tells it
every change of a host's planes and processes.

Protocol on the child's stdin, one JSON document a line:

1. ``{"key": HEX, "targets": {plane: [[addr, port], ...]},
   "hosts": {name: {"interval": s, "planes": {plane: bool},
   "processes": {name: state}}}}``
2. then any number of ``{"host": name, "planes": {...},
   "processes": {...}}`` updates.

The child answers ``ready`` on stdout once its agents beat, and stops when
its stdin closes (the sim stopped, or died).
"""

import json
import logging
import subprocess
import sys
import threading

from nova_ha.sim import cloud as sim_cloud

LOG = logging.getLogger(__name__)


class AgentProcess:
    """The parent's handle on the child process."""

    def __init__(self, key, targets, hosts):
        """hosts: {name: {'interval': s, 'planes': {...},
        'processes': {...}}}."""
        self._lock = threading.Lock()
        self._proc = subprocess.Popen(
            [sys.executable, '-m', 'nova_ha.sim.agents'],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            bufsize=1)
        self._send({'key': key, 'targets': {
            p: [list(a) for a in addrs] for p, addrs in targets.items()},
            'hosts': hosts})
        line = self._proc.stdout.readline().strip()
        if line != 'ready':
            self.close()
            raise sim_cloud.SimError(
                'heartbeat agent process did not start (said %r)' % line)

    def _send(self, doc):
        with self._lock:
            self._proc.stdin.write(json.dumps(doc) + '\n')
            self._proc.stdin.flush()

    def update(self, host, planes, processes):
        try:
            self._send({'host': host, 'planes': planes,
                        'processes': processes})
        except (OSError, ValueError):
            # ValueError: stdin already closed by close().
            LOG.error('heartbeat agent process gone (exit code %s): %s '
                      'not told', self._proc.poll(), host)

    def close(self, timeout=10):
        if self._proc.poll() is None:
            try:
                self._proc.stdin.close()
            except OSError:
                pass
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()


def _child():
    from nova_ha.heartbeat import agent as hb_agent

    conf = json.loads(sys.stdin.readline())
    state = {name: {'planes': dict(h['planes']),
                    'processes': dict(h['processes'])}
             for name, h in conf['hosts'].items()}
    targets = {p: [tuple(a) for a in addrs]
               for p, addrs in conf['targets'].items()}
    group = hb_agent.AgentGroup()
    for name, h in conf['hosts'].items():
        group.add(hb_agent.Agent(
            name, targets, conf['key'], interval=h['interval'],
            plane_enabled=lambda p, n=name: state[n]['planes'].get(p, False),
            process_states=lambda n=name: state[n]['processes']))
    group.start()
    print('ready', flush=True)
    try:
        for line in sys.stdin:
            doc = json.loads(line)
            # Replace whole dicts: the sender thread reads them unlocked.
            state[doc['host']] = {'planes': dict(doc['planes']),
                                  'processes': dict(doc['processes'])}
    finally:
        group.close()


if __name__ == '__main__':
    _child()
