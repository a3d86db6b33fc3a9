"""CPU cost of starting nova-ha's command lines (help and argument errors
must not load the database, messaging and eventlet libraries).

Runs each command line ``--runs`` times in a child process and prints the
median and the max of the child's CPU time (user + system, from
``getrusage(RUSAGE_CHILDREN)``), with OpenStackClient's own ``server list
--help`` as the baseline of ``openstack ha ...`` (the part nova-ha cannot
change). Goal: ``nova-ha --help`` < 0.3 CPU-s.

Usage: python benchmarks/bench_cli.py [--runs 5]
"""

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)


def commands():
    py = [sys.executable, '-m', 'nova_ha.cmd.cli']
    out = [('nova-ha --help', py + ['--help']),
           ('nova-ha recovery show --help', py + ['recovery', 'show',
                                                  '--help']),
           ('nova-ha fence --help', py + ['fence', '--help']),
           ('nova-ha maintenance --help', py + ['maintenance', '--help'])]
    osc = shutil.which('openstack', path=BIN) or shutil.which('openstack')
    if osc:
        out += [('openstack ha host list --help',
                 [osc, 'ha', 'host', 'list', '--help']),
                ('openstack server list --help (baseline: OSC alone)',
                 [osc, 'server', 'list', '--help'])]
    return out


def cpu_of(argv, env):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit('%s failed (%d): %s' % (' '.join(argv),
                                                 proc.returncode,
                                                 proc.stderr.decode()))
    return ((after.ru_utime - before.ru_utime)
            + (after.ru_stime - before.ru_stime))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--runs', type=int, default=5)
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep +
               os.environ.get('PYTHONPATH', ''))
    rows = []
    for name, argv in commands():
        cpu_of(argv, env)      # warm the page cache and .pyc files
        cpu = [cpu_of(argv, env) for _ in range(args.runs)]
        rows.append((name, statistics.median(cpu), max(cpu)))
    width = max(len(r[0]) for r in rows)
    print('%-*s  %10s  %8s' % (width, 'command', 'median CPU-s', 'max'))
    for name, median, worst in rows:
        print('%-*s  %10.3f  %8.3f' % (width, name, median, worst))
    print('(%d runs each; goal: nova-ha --help < 0.3 CPU-s)' % args.runs)


if __name__ == '__main__':
    main()
