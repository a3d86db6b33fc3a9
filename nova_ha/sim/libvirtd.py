"""A private libvirtd (QEMU driver, TCG) for tests, the simulator and the
instance-HA benchmark.

:class:`LibvirtdProcess` runs Debian's ``libvirtd`` in *session* mode with
every path (sockets, pid files, domain state, logs) under one temporary
directory, so it shares nothing with a system libvirtd and several can run
side by side::

    with LibvirtdProcess() as lv:
        conn = libvirt.open(lv.uri)
        dom = conn.defineXML(domain_xml(uuid))    # tiny diskless TCG guest
        dom.create()
        lv.crash(uuid)                            # kill -9 of its qemu
        lv.restart()                              # libvirtd restart

As root, the daemon and its qemu processes run as an unprivileged user
(``nobody``; session mode needs a non-root user). The daemon is started by
a small supervisor (``python -m nova_ha.sim.libvirtd``) that is a *child
subreaper*: qemu processes, which libvirtd daemonizes, are re-parented to
it and reaped at once. Without that, a killed qemu stays a zombie until
PID 1 reaps it -- in a container that can take more than a second, and
libvirt only reports the domain stopped once the process is gone.

:func:`unavailable` says why libvirtd cannot run here (missing binaries or
libvirt-python), or None; tests skip with that reason.
"""

import ctypes
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time

LIBVIRTD = shutil.which('libvirtd') or '/usr/sbin/libvirtd'
QEMU = shutil.which('qemu-system-x86_64') or '/usr/bin/qemu-system-x86_64'
SESSION_USER = 'nobody'
PR_SET_CHILD_SUBREAPER = 36

DOMAIN_XML = """<domain type='qemu'>
  <name>%(name)s</name>
  <uuid>%(uuid)s</uuid>
  <metadata>
    <nova-ha:instance xmlns:nova-ha="https://opendev.org/nova-ha/instance">
      <nova-ha:host>%(host)s</nova-ha:host>
    </nova-ha:instance>
  </metadata>
  <memory unit='MiB'>%(memory)d</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='network'/></os>
  <on_crash>destroy</on_crash>
  <devices><emulator>%(emulator)s</emulator></devices>
</domain>
"""


def domain_name(uuid):
    """Nova's libvirt domain name is instance-<id>; ours is by UUID (the
    simulated Nova has no integer ids to offer)."""
    return 'instance-%s' % uuid


def domain_xml(uuid, name=None, memory_mib=32, host='sim'):
    """A diskless TCG domain: the firmware finds nothing to boot and waits,
    which is all a process needs to crash."""
    return DOMAIN_XML % {'name': name or domain_name(uuid), 'uuid': uuid,
                         'memory': memory_mib, 'emulator': QEMU,
                         'host': host}


def unavailable():
    """Why a private libvirtd cannot run here, or None."""
    try:
        import libvirt  # noqa: F401
    except ImportError:
        return 'libvirt-python is not installed (pip install libvirt-python)'
    for path, what in ((LIBVIRTD, 'libvirtd (Debian libvirt-daemon)'),
                       (QEMU, 'qemu-system-x86_64 (Debian qemu-system-x86)')):
        if not os.access(path, os.X_OK):
            return '%s not found at %s' % (what, path)
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SESSION_USER)
        except KeyError:
            return 'no user %r to run a session libvirtd as' % SESSION_USER
    return None


class LibvirtdProcess:
    """A private session libvirtd under a temporary directory."""

    def __init__(self, base_dir=None, start_timeout=30.0):
        self._own_dir = base_dir is None
        # Short and directly under /tmp: unix socket paths have a 108-byte
        # limit, and the unprivileged daemon must reach the directory (a
        # test runner's nested TMPDIR is often mode 0700).
        self.dir = base_dir or tempfile.mkdtemp(prefix='nhlv-', dir='/tmp')
        self.start_timeout = start_timeout
        self.proc = None
        for sub in ('home', 'run', 'config', 'cache', 'data'):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        if os.geteuid() == 0:
            pw = pwd.getpwnam(SESSION_USER)
            self.uid, self.gid = pw.pw_uid, pw.pw_gid
            os.chmod(self.dir, 0o755)
            for root, dirs, files in os.walk(self.dir):
                for n in dirs + files:
                    os.chown(os.path.join(root, n), self.uid, self.gid)
                os.chown(root, self.uid, self.gid)
        else:
            self.uid, self.gid = os.geteuid(), os.getegid()
        self.socket = os.path.join(self.dir, 'run', 'libvirt', 'libvirt-sock')
        self.uri = 'qemu+unix:///session?socket=%s' % self.socket
        self.log = os.path.join(self.dir, 'libvirtd.log')

    def __repr__(self):
        return '<LibvirtdProcess %s>' % self.uri

    # -- lifecycle -----------------------------------------------------------
    def spawn(self):
        if os.path.exists(self.socket):
            os.unlink(self.socket)
        self.proc = subprocess.Popen(
            [sys.executable, '-m', 'nova_ha.sim.libvirtd', self.dir,
             str(self.uid), str(self.gid)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        return self

    def wait_ready(self):
        import libvirt
        deadline = time.monotonic() + self.start_timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError('libvirtd exited with %s; see %s'
                                   % (self.proc.returncode, self.log))
            if os.path.exists(self.socket):
                try:
                    conn = _quiet_open(libvirt, self.uri)
                    conn.close()
                    return self
                except libvirt.libvirtError as exc:
                    last = exc
            time.sleep(0.05)
        raise RuntimeError('libvirtd did not answer on %s within %.0f s (%s)'
                           % (self.uri, self.start_timeout, last))

    def start(self):
        self.spawn()
        try:
            return self.wait_ready()
        except Exception:
            self.close()    # never leave a daemon behind a failed start
            raise

    def stop(self, timeout=15.0):
        """Stop the supervisor: it stops libvirtd and kills every qemu."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None

    def restart_daemon(self):
        """Restart libvirtd only (its running domains survive, as with
        ``systemctl restart libvirtd``): SIGUSR1 tells the supervisor."""
        pid = self.daemon_pid()
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            new = self.daemon_pid()
            if new and new != pid:
                break
            time.sleep(0.05)
        return self.wait_ready()

    def close(self):
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    # -- helpers -------------------------------------------------------------
    def daemon_pid(self):
        try:
            with open(os.path.join(self.dir, 'run', 'libvirt',
                                   'libvirtd.pid')) as f:
                return int(f.read().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def qemu_pid(self, uuid, name=None):
        """PID of the qemu process of domain `uuid` (None: not running)."""
        path = os.path.join(self.dir, 'run', 'libvirt', 'qemu', 'run',
                            '%s.pid' % (name or domain_name(uuid)))
        try:
            with open(path) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        return pid if os.path.exists('/proc/%d' % pid) else None

    def crash(self, uuid, name=None):
        """kill -9 the domain's qemu process; returns time.time() of the
        kill (the crash instant), or None if it was not running."""
        pid = self.qemu_pid(uuid, name)
        if pid is None:
            return None
        at = time.time()
        os.kill(pid, signal.SIGKILL)
        return at


def destroy(dom):
    """Stop ``dom`` if it runs. A qemu just killed may still look active
    until libvirtd has processed its exit; destroy() then says "domain is
    not running" (VIR_ERR_OPERATION_INVALID), which means stopped too."""
    import libvirt
    if not dom.isActive():
        return
    try:
        dom.destroy()
    except libvirt.libvirtError as exc:
        if exc.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:
            raise


def _quiet_open(libvirt, uri):
    libvirt.registerErrorHandler(lambda ctx, err: None, None)
    return libvirt.open(uri)


# -- the supervisor (python -m nova_ha.sim.libvirtd DIR UID GID) -------------

def _children(pid):
    out = []
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % d) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(')') + 2:].split()
        if int(fields[1]) == pid:
            out.append(int(d))
    return out


def _spawn_daemon(base, uid, gid):
    env = {'PATH': '/usr/sbin:/usr/bin:/sbin:/bin',
           'HOME': os.path.join(base, 'home'),
           'XDG_RUNTIME_DIR': os.path.join(base, 'run'),
           'XDG_CONFIG_HOME': os.path.join(base, 'config'),
           'XDG_CACHE_HOME': os.path.join(base, 'cache'),
           'XDG_DATA_HOME': os.path.join(base, 'data'),
           'LIBVIRT_LOG_OUTPUTS': '3:stderr'}

    def drop():
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        if os.geteuid() == 0 and uid != 0:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)

    log = open(os.path.join(base, 'libvirtd.log'), 'ab')
    return subprocess.Popen([LIBVIRTD, '--timeout', '0'], env=env,
                            cwd=base, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=log, preexec_fn=drop)


def supervise(base, uid, gid):
    """Child subreaper: run libvirtd, reap every orphan (qemu) the moment
    it dies, restart libvirtd on SIGUSR1, stop everything on SIGTERM."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    sigs = {signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGUSR1}
    signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    daemon = _spawn_daemon(base, uid, gid)
    me = os.getpid()
    while True:
        info = signal.sigtimedwait(sigs, 1.0)
        _reap()
        if info is None or info.si_signo == signal.SIGCHLD:
            continue
        if info.si_signo == signal.SIGUSR1:
            daemon.terminate()
            try:
                daemon.wait(10)
            except subprocess.TimeoutExpired:
                daemon.kill()
            daemon = _spawn_daemon(base, uid, gid)
            continue
        break
    daemon.terminate()
    try:
        daemon.wait(10)
    except subprocess.TimeoutExpired:
        daemon.kill()
    for pid in _children(me):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break
    return 0


def _reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


if __name__ == '__main__':
    sys.exit(supervise(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
