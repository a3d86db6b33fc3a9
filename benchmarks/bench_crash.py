"""Crash-safety soak of recovery on the simulated cloud (prints counts; not
a test). Issue 12, finding 3.

Each run: 20 servers on one host, power loss, kill -9 of the leading
evacuator (2 evacuators) at a random moment 0.3-3 s after the fault, the
killed one restarted; then the outcome on Nova's and the journal's word
(tests/functional/crash.py: every server ACTIVE exactly once off the failed
host, none in REBUILD/ERROR, one done evacuation each, journal == Nova).
A fresh simulated cloud every --per-cloud runs.

Run: .venv/bin/python benchmarks/bench_crash.py [--runs 20] [--seed N]
"""

import argparse
import collections
import os
import pathlib
import random
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from tests.functional import crash  # noqa: E402
from tests.functional import procs  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--runs', type=int, default=20)
    parser.add_argument('--per-cloud', type=int, default=10)
    parser.add_argument('--seed', type=int, default=None)
    parser.add_argument('--time-budget', type=float, default=None,
                        help='seconds after which no new run starts (the '
                             'counts printed are of the runs done)')
    args = parser.parse_args()
    if args.runs < 1 or args.per_cloud < 1:
        parser.error('--runs and --per-cloud must be >= 1')
    seed = args.seed if args.seed is not None else int(time.time())
    rnd = random.Random(seed)
    outcomes = collections.Counter()
    kinds = collections.Counter()
    phases = collections.Counter()
    failed_phases = collections.Counter()
    took = []
    details = []
    t_start = time.monotonic()
    run = 0
    harness_errors = []
    workdir = tempfile.mkdtemp(prefix='bench-crash-')
    clouds = 0
    while run < args.runs and len(harness_errors) < 10 and (
            args.time_budget is None or
            time.monotonic() - t_start < args.time_budget):
        clouds += 1
        cloud_dir = os.path.join(workdir, 'cloud%d' % clouds)
        os.makedirs(cloud_dir)
        sim = procs.Sim(os.path.join(cloud_dir, 'sim'), hosts=6,
                        racks=3, sal=1, evacuators=2)
        pair = None
        try:
            pair, log_counts = crash.start_pair(sim, pathlib.Path(cloud_dir))
            for _ in range(min(args.per_cloud, args.runs - run)):
                if args.time_budget is not None and \
                        time.monotonic() - t_start > args.time_budget:
                    break
                problems, phase, secs = crash.one_run(
                    sim, pair, log_counts, rnd, run)
                phases[phase] += 1
                if problems:
                    outcomes['failed'] += 1
                    failed_phases[phase] += 1
                    kinds.update({k for k, _ in problems})
                    details.append((run, phase, problems[:3]))
                else:
                    outcomes['ok'] += 1
                if secs is not None:
                    took.append(secs)
                print('run %2d  killed %-22s %s' % (
                    run, phase, 'ok' if not problems else
                    'FAILED %s' % problems[:2]), flush=True)
                run += 1
                if problems:
                    break      # a fresh cloud for the next run
        except Exception as exc:   # the harness, not a run's outcome
            harness_errors.append('%s: %s' % (type(exc).__name__,
                                              str(exc)[:300]))
            print('harness error (fresh cloud): %s' % harness_errors[-1],
                  flush=True)
        finally:
            if pair is not None:
                pair.stop()
            sim.stop()
    print()
    print('kill -9 of the leader 0.3-3 s after a %d-server host failure, '
          '2 evacuators, seed %d, %.0f s' % (
              crash.SERVERS, seed, time.monotonic() - t_start))
    print('%-40s %6s' % ('', 'count'))
    print('%-40s %6d' % ('runs', sum(outcomes.values())))
    print('%-40s %6d' % ('every rule held', outcomes['ok']))
    print('%-40s %6d' % ('runs with a problem', outcomes['failed']))
    for kind in crash.KINDS:
        print('%-40s %6d' % ('  ' + kind, kinds[kind]))
    print()
    print('%-26s %6s %6s' % ('killed during', 'runs', 'failed'))
    for phase, n in sorted(phases.items()):
        print('%-26s %6d %6d' % (phase, n, failed_phases[phase]))
    if took:
        print()
        print('fault -> recovery closed: median %.1f s, max %.1f s'
              % (statistics.median(took), max(took)))
    for run, phase, problems in details:
        print('run %d (%s): %s' % (run, phase, problems))
    for err in harness_errors:
        print('harness error (not a run): %s' % err)
    if outcomes['failed'] or harness_errors:
        print('state directories and logs kept in %s' % workdir)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if outcomes['failed'] else 0


if __name__ == '__main__':
    sys.exit(main())
