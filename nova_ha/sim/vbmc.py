"""A virtual BMC: a real IPMI 2.0 (RMCP+) server on a loopback UDP port.

One process per simulated compute host, so that a BMC can really stop
answering (the simulated cloud sends it SIGSTOP for the ``bmc_unreachable``
fault) and so that pyghmi's process-wide session loop never mixes servers.

The power state is not kept here. In the simulated cloud the vBMC forwards
"get power" and "set power" to the cloud's control API, because powering a
host off must also stop that host's nova-compute service. Standalone (no
``--control-url``), a local model holds the power state; fencing tests use it
to play a slow BMC (``--off-delay``) or one that accepts "off" but never
turns off (``--ignore-off``).

Cipher suites: real BMCs differ. ``--ciphers sha1-strict`` (the default)
behaves like a SHA1-only BMC that refuses a SHA256 proposal with RMCP+
status 0x11, so a client that starts with SHA256 falls back to suite 3.
``--ciphers sha1-lenient`` answers every proposal with suite 3 and status 0,
as pyghmi's reference server does; clients must cope with both.
"""

import argparse
import json
import os
import signal
import sys
import threading
import time
import urllib.request
import uuid

import pyghmi.ipmi.bmc as ipmi_bmc
import pyghmi.ipmi.private.serversession as serversession

# RMCP+ status "no cipher suite match with proposed security algorithms"
# (IPMI 2.0 table 13-15).
RMCP_NO_CIPHER_MATCH = 0x11
# IPMI completion codes.
IPMI_OK = 0x00
IPMI_UNSPECIFIED_ERROR = 0xFF
IPMI_NODE_BUSY = 0xC0

ENV_PASSWORD = 'NOVA_HA_VBMC_PASSWORD'


class LocalPower:
    """Power state held in this process, with optional misbehaviour."""

    def __init__(self, state='on', off_delay=0.0, ignore_off=False):
        self._state = state
        self._pending_off_at = None
        self.off_delay = off_delay
        self.ignore_off = ignore_off
        self._lock = threading.Lock()

    def get(self):
        with self._lock:
            if (self._pending_off_at is not None
                    and time.monotonic() >= self._pending_off_at):
                self._state = 'off'
                self._pending_off_at = None
            return self._state

    def set(self, state):
        with self._lock:
            if state == 'off':
                if self.ignore_off:
                    return
                if self.off_delay > 0:
                    self._pending_off_at = time.monotonic() + self.off_delay
                    return
            self._pending_off_at = None
            self._state = state


class RemotePower:
    """Power state owned by the simulated cloud's control API."""

    def __init__(self, control_url, host, timeout=2.0):
        self.url = '%s/hosts/%s/power' % (control_url.rstrip('/'), host)
        self.timeout = timeout

    def get(self):
        with urllib.request.urlopen(self.url, timeout=self.timeout) as resp:
            return json.load(resp)['power']

    def set(self, state):
        req = urllib.request.Request(
            self.url, data=json.dumps({'power': state}).encode(),
            headers={'Content-Type': 'application/json'}, method='PUT')
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            resp.read()


class VirtualBMC(ipmi_bmc.Bmc):
    """IPMI chassis power control backed by a power model."""

    def __init__(self, authdata, port, power, ciphers='sha1-strict',
                 address='127.0.0.1'):
        super().__init__(authdata, port=port, address=address,
                         bmcuuid=uuid.uuid4())
        self.power = power
        self.ciphers = ciphers

    def get_power_state(self):
        return self.power.get()

    def _set(self, state):
        try:
            self.power.set(state)
        except Exception:
            return IPMI_UNSPECIFIED_ERROR
        return IPMI_OK

    def power_off(self):
        return self._set('off')

    def power_on(self):
        return self._set('on')

    def power_shutdown(self):
        # A soft shutdown would need an OS to obey it; treat as hard off.
        return self._set('off')

    def power_reset(self):
        if self.power.get() != 'on':
            return IPMI_NODE_BUSY
        return IPMI_OK

    def power_cycle(self):
        rc = self._set('off')
        return rc or self._set('on')

    def get_chassis_status(self, session):
        try:
            return super().get_chassis_status(session)
        except Exception:
            # The power model could not be read: say so instead of hanging
            # the client until it times out.
            session.send_ipmi_response(code=IPMI_UNSPECIFIED_ERROR)


def _install_strict_cipher_check():
    """Make SHA256 proposals fail the way a SHA1-only BMC fails them."""
    original = serversession.ServerSession.create_open_session_response

    def create_open_session_response(self, request):
        # request: tag, privilege, 2 reserved, 4-byte session id, then the
        # authentication payload whose 5th byte is the algorithm (1 = SHA1).
        if (getattr(self.bmc, 'ciphers', None) == 'sha1-strict'
                and len(request) > 12 and request[12] != 1):
            self.clientsessionid = request[4:8]
            self.managedsessionid = os.urandom(4)
            return (bytearray([request[0], RMCP_NO_CIPHER_MATCH, 0, 0])
                    + self.clientsessionid)
        return original(self, request)

    serversession.ServerSession.create_open_session_response = (
        create_open_session_response)


class VBMCProcess:
    """A virtual BMC child process (start, pause/resume, stop)."""

    def __init__(self, port, user, password, address='127.0.0.1',
                 control_url=None, host=None, ciphers='sha1-strict',
                 initial_power='on', off_delay=0.0, ignore_off=False):
        self.address = address
        self.port = port
        self.user = user
        self.password = password
        cmd = [sys.executable, '-m', 'nova_ha.sim.vbmc', '--port', str(port),
               '--address', address, '--user', user, '--ciphers', ciphers,
               '--initial-power', initial_power,
               '--off-delay', str(off_delay)]
        if control_url:
            cmd += ['--control-url', control_url, '--host', host]
        if ignore_off:
            cmd.append('--ignore-off')
        self.cmd = cmd
        self.proc = None

    def spawn(self):
        """Start the process; pair with wait_ready() (lets callers start
        many BMCs in parallel)."""
        import subprocess
        env = dict(os.environ, **{ENV_PASSWORD: self.password})
        self.proc = subprocess.Popen(
            self.cmd, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        return self

    def wait_ready(self):
        line = self.proc.stdout.readline()
        if line.strip() != 'ready':
            err = ''
            if self.proc.poll() is not None or self.proc.wait(5) is not None:
                err = self.proc.stderr.read()
            self.stop()
            raise RuntimeError('virtual BMC on port %d did not start: %s'
                               % (self.port, err.strip() or line.strip()))
        return self

    def start(self):
        return self.spawn().wait_ready()

    def pause(self):
        """Stop answering (the process keeps its port, like a hung BMC)."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except Exception:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream:
                    stream.close()


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m nova_ha.sim.vbmc',
        description='Virtual BMC speaking IPMI 2.0 over UDP on loopback. '
                    'The password is read from $%s.' % ENV_PASSWORD)
    parser.add_argument('--port', type=int, required=True)
    parser.add_argument('--address', default='127.0.0.1')
    parser.add_argument('--user', default='admin')
    parser.add_argument('--control-url',
                        help='simulated cloud control API (power owner)')
    parser.add_argument('--host', help='compute host name (with --control-url)')
    parser.add_argument('--ciphers', default='sha1-strict',
                        choices=['sha1-strict', 'sha1-lenient'])
    parser.add_argument('--initial-power', default='on', choices=['on', 'off'])
    parser.add_argument('--off-delay', type=float, default=0.0)
    parser.add_argument('--ignore-off', action='store_true')
    args = parser.parse_args(argv)
    password = os.environ.get(ENV_PASSWORD)
    if not password:
        parser.error('$%s is not set' % ENV_PASSWORD)
    if args.control_url and not args.host:
        parser.error('--control-url needs --host')
    if not args.address.startswith('127.') and args.address != '::1':
        parser.error('the virtual BMC binds to loopback only, not %r'
                     % args.address)

    if args.control_url:
        power = RemotePower(args.control_url, args.host)
    else:
        power = LocalPower(args.initial_power, args.off_delay, args.ignore_off)
    _install_strict_cipher_check()
    try:
        VirtualBMC({args.user: password}, args.port, power,
                   ciphers=args.ciphers, address=args.address)
    except OSError as exc:
        print('vbmc: cannot listen on %s:%d/udp: %s'
              % (args.address, args.port, exc.strerror), file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    print('ready', flush=True)
    try:
        VirtualBMC.listen(timeout=1)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == '__main__':
    sys.exit(main())
