#!/usr/bin/env python3
"""The supported-release matrix: ``make matrix`` (README, doc/releases.md).

For each supported OpenStack release, in a virtualenv built from that
release's upper-constraints (vendored in ``upper-constraints/``):

1. the operator's environment: that release's nova and placement, plus the
   test runner (``matrix-requirements.txt``), all with ``-c <uc>``;
2. ``pip install --dry-run -c <uc> .``: nova-ha must change no installed
   package (it may only add new ones); the same without ``-c`` is printed
   for information (an operator who ignores the constraints);
3. ``pip install -c <uc> .`` as an operator would (not editable, nova
   untouched: checked against the environment's freeze afterwards);
4. the scheduler, maintenance and evacuator functional tests, in the
   release's threading mode (eventlet releases run serially: eventlet
   under pytest-xdist hangs);
5. a control-plane install without nova: ``pip install -c <uc> .`` into a
   bare virtualenv, then tests/packaging (``nova-ha-evacuator --help``,
   ``nova-ha-agent --help``, ``nova-ha fence status`` against a virtual
   BMC), run once, with the default release's constraints.

Virtualenvs are cached under ``$NOVA_HA_MATRIX_CACHE`` (default
``~/.cache/nova-ha-matrix``), keyed on a hash of what built them (the
constraints file, matrix-requirements.txt, the nova/placement pins, the
Python version); nova-ha itself is uninstalled and reinstalled on every run.

Usage: tools/matrix.py [--release 2025.1 ...] [--no-tests] [--no-no-nova]
                       [--ci] [TEST ...]
Exit status: 0 when every step of every release passed.
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UC_DIR = os.path.join(ROOT, 'upper-constraints')
MATRIX_REQS = os.path.join(ROOT, 'matrix-requirements.txt')
BASE_FREEZE = 'nova-ha-matrix-base.json'


class Release:
    def __init__(self, name, kind, nova, placement, threading):
        self.name = name
        self.kind = kind
        self.nova = nova
        self.placement = placement
        # 'eventlet': nova's functional fixtures need eventlet (nova 31
        # knows nothing else; nova 33's native threading is experimental
        # and its fixtures fail there); runs serially.
        self.threading = threading

    @property
    def uc(self):
        return os.path.join(UC_DIR, '%s.txt' % self.name)


# Keep in step with the README's supported-releases table and
# doc/releases.md. The default release (make test) is the last one.
RELEASES = [
    Release('2025.1', 'SLURP', 'nova==31.3.1', 'openstack-placement==13.0.1',
            'eventlet'),
    Release('2026.1', 'SLURP', 'nova==33.0.2', 'openstack-placement==15.0.0',
            'eventlet'),
    Release('2026.2', '', 'nova==34.0.0', 'openstack-placement==16.0.0',
            'threading'),
]
DEFAULT_RELEASE = RELEASES[-1].name

# The tests run per release: every private nova internal the harness uses
# exists (tests/unit/test_nova_internals.py), the scheduler filters inside each
# nova (tests/functional/scheduler), a maintenance drain
# (tests/functional/maintenance) and the evacuator end to end
# (tests/functional/test_evacuator*.py, less test_evacuator_ha.py: the
# leader election and takeover between two evacuators depend on no nova
# release and cost the most). The whole suite runs on the default release
# in `make test`.
TESTS = [
    'tests/unit/test_nova_internals.py',
    'tests/functional/scheduler',
    'tests/functional/maintenance',
    'tests/functional/test_evacuator.py',
    'tests/functional/test_evacuator_flapping.py',
    'tests/functional/test_evacuator_guard.py',
    'tests/functional/test_evacuator_notifications.py',
]

# What .ci/run runs per release (`--ci`): TESTS serially on the eventlet
# releases take longer than the CI has (doc/releases.md gives the times),
# so one of each kind: the nova internals, the scheduler filters in
# placement and `nova-ha status`, a maintenance drain with mixed policies,
# and the evacuator fencing a powered-off host and evacuating it.
CI_TESTS = [
    'tests/unit/test_nova_internals.py',
    'tests/functional/scheduler/test_placement.py',
    'tests/functional/scheduler/test_status.py',
    'tests/functional/maintenance/test_drain.py::TestDrainMixedPolicies',
    'tests/functional/test_evacuator.py::'
    'test_host_failure_is_fenced_then_evacuated[power_loss]',
]


def log(msg):
    print(msg, flush=True)


def run(cmd, **kw):
    """Run a command, echoing it; raise with its output when it fails."""
    log('   $ ' + ' '.join(cmd))
    proc = subprocess.run(cmd, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, **kw)
    if proc.returncode:
        out = '\n'.join(line for line in proc.stdout.splitlines()
                        if not line.startswith('WARNING: Location'))
        raise StepFailed('%s exited %d:\n%s' % (cmd[0], proc.returncode,
                                               out[-6000:]))
    return proc.stdout


class StepFailed(Exception):
    pass


def cache_root():
    return os.environ.get('NOVA_HA_MATRIX_CACHE') or os.path.join(
        os.path.expanduser('~'), '.cache', 'nova-ha-matrix')


def digest(*parts):
    h = hashlib.sha256()
    for part in parts:
        if os.path.isfile(part):
            with open(part, 'rb') as f:
                h.update(f.read())
        else:
            h.update(part.encode())
        h.update(b'\0')
    return h.hexdigest()[:12]


def cached_venv(label, key, build):
    """A virtualenv under the cache, rebuilt when its key changes.

    A venv holds absolute paths, so it is built where it stays; the stamp
    file is written last, and a venv without it is thrown away. Older
    venvs of the same label are removed.
    """
    root = cache_root()
    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, '%s-%s' % (label, key))
    stamp = os.path.join(path, '.nova-ha-matrix-ok')
    for name in os.listdir(root):
        if name.startswith(label + '-') and name != os.path.basename(path):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
    if os.path.exists(stamp):
        log('   cached virtualenv %s' % path)
        return path, False
    shutil.rmtree(path, ignore_errors=True)
    run([sys.executable, '-m', 'venv', path])
    pip(path, 'install', '-q', '--upgrade', 'pip')
    build(path)
    with open(stamp, 'w') as f:
        f.write(time.strftime('%Y-%m-%dT%H:%M:%SZ\n', time.gmtime()))
    return path, True


def pip(venv, *args):
    return run([os.path.join(venv, 'bin', 'python'), '-m', 'pip'] +
               list(args))


def freeze(venv):
    out = pip(venv, 'list', '--format', 'json')
    return {canon(p['name']): p['version'] for p in json.loads(out)}


def canon(name):
    return re.sub(r'[-_.]+', '-', name).lower()


def dry_run(venv, constraints):
    """What `pip install .` would do: {name: version} to install."""
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, 'report.json')
        args = ['install', '--dry-run', '--quiet', '--report', report]
        if constraints:
            args += ['-c', constraints]
        pip(venv, *(args + [ROOT]))
        with open(report) as f:
            data = json.load(f)
    return {canon(i['metadata']['name']): i['metadata']['version']
            for i in data['install']}


def changed(before, plan):
    """Installed packages the plan would replace (name: (old, new))."""
    return {n: (before[n], v) for n, v in plan.items()
            if n in before and n != 'nova-ha'}


class Result:
    def __init__(self, name):
        self.name = name
        self.steps = []         # (step, ok, detail)
        self.tests = None       # pytest's closing line
        self.test_seconds = None
        self.build_seconds = None

    @property
    def ok(self):
        return all(ok for _, ok, _ in self.steps)

    def add(self, step, ok, detail):
        self.steps.append((step, ok, detail))
        log('   [%s] %s: %s' % ('ok' if ok else 'FAILED', step, detail))


def check_release(rel, args, result):
    log('\n== %s (%s %s, threading mode: %s)' % (
        rel.name, rel.nova, rel.placement, rel.threading))
    t0 = time.monotonic()

    def build(venv):
        pip(venv, 'install', '-q', '-c', rel.uc, rel.nova, rel.placement,
            '-r', MATRIX_REQS)
        # The operator's environment before nova-ha: what nothing may change.
        with open(os.path.join(venv, BASE_FREEZE), 'w') as f:
            json.dump(freeze(venv), f, indent=1, sort_keys=True)

    key = digest(rel.uc, MATRIX_REQS, rel.nova, rel.placement,
                 sys.version.split()[0])
    venv, built = cached_venv('release-%s' % rel.name, key, build)
    result.build_seconds = time.monotonic() - t0
    result.venv = venv
    current = freeze(venv)
    if 'nova-ha' in current:
        pip(venv, 'uninstall', '-q', '-y', 'nova-ha')
        del current['nova-ha']
    with open(os.path.join(venv, BASE_FREEZE)) as f:
        base = json.load(f)
    # nova-ha's own new dependencies stay from an earlier run: compare with
    # the environment as built ("would add" with the current one).
    installed = dict(current, **base)
    result.add('environment', True, '%s virtualenv, nova %s, placement %s '
               '(%d packages as built)%s' % (
                   'new' if built else 'cached', installed.get('nova'),
                   installed.get('openstack-placement'), len(base),
                   ' in %.0f s' % result.build_seconds if built else ''))

    plan = dry_run(venv, rel.uc)
    bad = changed(installed, plan)
    added = sorted(n for n in plan if n not in current)
    result.add('dry-run -c upper-constraints', not bad,
               'changes %s; would add %d: %s' % (
                   fmt_changes(bad) or 'no installed package', len(added),
                   ', '.join(added)))
    try:
        free = changed(installed, dry_run(venv, None))
        log('   (information) without -c, pip would change: %s' % (
            fmt_changes(free) or 'no installed package'))
    except StepFailed as exc:
        log('   (information) without -c, pip fails: %s' % exc)

    pip(venv, 'install', '-q', '-c', rel.uc, ROOT)
    after = freeze(venv)
    moved = {n: (v, after.get(n)) for n, v in base.items()
             if after.get(n) != v}
    result.add('install -c upper-constraints', not moved and 'nova-ha' in after,
               'nova-ha %s installed; %s' % (
                   after.get('nova-ha'),
                   'changed ' + fmt_changes(moved) if moved
                   else 'no installed package changed'))
    if not args.no_tests:
        run_tests(rel, venv, result, args)


def fmt_changes(changes):
    return ', '.join('%s %s -> %s' % (n, old, new)
                     for n, (old, new) in sorted(changes.items()))


def test_env(rel):
    env = dict(os.environ)
    # The installed nova-ha, not the source tree (pytest appends the
    # rootdir; see --import-mode=append below).
    env.pop('PYTHONPATH', None)
    env['NOVA_HA_NOVA_THREADING'] = rel.threading
    env.pop('OS_NOVA_DISABLE_EVENTLET_PATCHING', None)
    return env


def run_tests(rel, venv, result, args):
    # The venv's pytest script, not `python -m pytest` (which puts the
    # source tree first on sys.path): with --import-mode=append the tests
    # import the installed nova-ha.
    cmd = [os.path.join(venv, 'bin', 'pytest'), '--import-mode=append',
           '-q', '-ra']
    if rel.threading == 'eventlet':
        cmd += ['-p', 'no:xdist']
    else:
        cmd += ['-n', str(args.workers)]
    tests = args.tests or (CI_TESTS if args.ci else TESTS)
    cmd += tests
    log('   $ ' + ' '.join(cmd))
    logfile = os.path.join(cache_root(), 'pytest-%s.log' % rel.name)
    t0 = time.monotonic()
    with open(logfile, 'w') as f:
        proc = subprocess.run(cmd, cwd=ROOT, env=test_env(rel), stdout=f,
                              stderr=subprocess.STDOUT, text=True)
    result.test_seconds = time.monotonic() - t0
    with open(logfile) as f:
        out = f.read()
    summary = [line for line in out.splitlines() if re.search(
        r'\d+ (passed|failed|error)', line)]
    result.tests = summary[-1].strip('= ') if summary else 'no summary'
    ok = proc.returncode == 0
    if not ok:
        log(out[-8000:])
    result.add('functional tests', ok, '%s in %.0f s (log: %s)' % (
        result.tests, result.test_seconds, logfile))


def check_no_nova(args, result):
    rel = next(r for r in RELEASES if r.name == DEFAULT_RELEASE)
    log('\n== control plane without nova (%s upper-constraints)' % rel.name)
    t0 = time.monotonic()
    key = digest(rel.uc, sys.version.split()[0])
    venv, built = cached_venv('no-nova', key, lambda v: None)
    if 'nova-ha' in freeze(venv):
        pip(venv, 'uninstall', '-q', '-y', 'nova-ha')
    pip(venv, 'install', '-q', '-c', rel.uc, ROOT)
    pkgs = freeze(venv)
    leaked = sorted({'nova', 'openstack-placement'} & set(pkgs))
    result.add('install', not leaked, '%d packages, %s in %.0f s' % (
        len(pkgs), 'nova/placement pulled in: %s' % leaked if leaked
        else 'no nova, no placement', time.monotonic() - t0))
    # tests/packaging drives the no-nova venv's console scripts from a
    # test runner that has pytest (the default release's matrix venv, or
    # the caller's interpreter when that one was not built).
    runner = getattr(args, 'runner_python', None) or sys.executable
    env = dict(os.environ, NOVA_HA_NO_NOVA_VENV=venv)
    env.pop('PYTHONPATH', None)
    cmd = [runner, '-m', 'pytest', '-p', 'no:xdist', '-q', '-ra',
           'tests/packaging']
    log('   $ ' + ' '.join(cmd))
    t1 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    summary = [line for line in proc.stdout.splitlines() if re.search(
        r'\d+ (passed|failed|error|skipped)', line)]
    result.tests = summary[-1].strip('= ') if summary else 'no summary'
    result.test_seconds = time.monotonic() - t1
    ok = proc.returncode == 0 and 'skipped' not in result.tests
    if not ok:
        log(proc.stdout[-8000:])
    result.add('tests/packaging', ok, '%s in %.0f s' % (
        result.tests, result.test_seconds))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--release', action='append',
                        choices=[r.name for r in RELEASES],
                        help='only these releases (repeatable)')
    parser.add_argument('--no-tests', action='store_true',
                        help='environments and pip checks only')
    parser.add_argument('--no-no-nova', action='store_true',
                        help='skip the control-plane install without nova')
    parser.add_argument('--workers', type=int, default=2,
                        help='pytest-xdist workers for threading-mode '
                             'releases (default 2)')
    parser.add_argument('--ci', action='store_true',
                        help='the CI subset (CI_TESTS: one test of each '
                             'kind) instead of TESTS')
    parser.add_argument('tests', nargs='*',
                        help='test paths instead of the default subset')
    args = parser.parse_args(argv)
    started = time.monotonic()
    results = []
    for rel in RELEASES:
        if args.release and rel.name not in args.release:
            continue
        result = Result(rel.name)
        results.append(result)
        try:
            check_release(rel, args, result)
        except StepFailed as exc:
            result.add('error', False, str(exc))
        if rel.name == DEFAULT_RELEASE and result.ok:
            args.runner_python = os.path.join(result.venv, 'bin', 'python')
    if not args.no_no_nova:
        result = Result('no-nova')
        results.append(result)
        try:
            check_no_nova(args, result)
        except StepFailed as exc:
            result.add('error', False, str(exc))

    log('\n== release matrix summary (%.0f s)' % (
        time.monotonic() - started))
    log('%-8s %-7s %-48s %s' % ('release', 'result', 'tests', 'test time'))
    for r in results:
        log('%-8s %-7s %-48s %s' % (
            r.name, 'ok' if r.ok else 'FAILED', r.tests or '-',
            '%.0f s' % r.test_seconds if r.test_seconds else '-'))
    failed = [r.name for r in results if not r.ok]
    if failed:
        log('MATRIX FAILED: %s' % ', '.join(failed))
        return 1
    log('matrix passed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
