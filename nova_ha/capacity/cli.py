"""``nova-ha capacity check``: can every protected instance be recovered?

    nova-ha capacity check [--sal S] [--tolerate TOLERANCE] [-f table|json]

For the cloud as it is now (Nova and placement APIs, ``[nova]``
credentials), for each failure scenario of each ``[capacity] tolerate``
policy (or of the one given by --sal/--tolerate): can every
``ha:recovery=auto`` instance it protects on the failed hosts be re-placed
on the surviving hosts (flavor resources, SAL certification, server-group
anti-affinity at its level)? Lists, per scenario that does not fit, the
instances that would be stranded and why.

Exit codes: 0 every scenario fits; 1 some scenario does not fit; 2 bad
arguments or configuration (the message names the option and the value);
3 Nova or placement not reachable.
"""

import argparse
import json
import sys

from oslo_config import cfg

from nova_ha import topology
from nova_ha.capacity import model
from nova_ha.capacity import solver

FIT, NO_FIT, BAD, UNREACHABLE = 0, 1, 2, 3


def add_parser(subparsers):
    p = subparsers.add_parser(
        'capacity', help='failover capacity: can every protected instance '
                         'be re-placed if its hosts fail')
    sub = p.add_subparsers(dest='command', metavar='COMMAND')
    sub.required = True
    c = sub.add_parser('check', help='check the failure-tolerance policies '
                                     'against the cloud as it is now',
                       description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    c.add_argument('--sal', metavar='S',
                   help='only this policy scope: 1, 2, 3 (sal1..sal3), all, '
                        'optionally @AGGREGATE')
    c.add_argument('--tolerate', metavar='TOLERANCE',
                   help='"N hosts", "1 rack", "1 power_domain" ...: check '
                        'this instead of [capacity] tolerate (needs --sal)')
    c.add_argument('-f', '--format', choices=('table', 'json'),
                   default='table')
    c.set_defaults(func=main)


def select_policies(conf, sal=None, tolerate=None):
    """Policies to check (PolicyError names the bad value)."""
    levels = topology.configured_levels(conf)
    scope = None
    if sal is not None:
        scope = str(sal).strip()
        if scope in ('1', '2', '3') or scope.split('@')[0] in ('1', '2', '3'):
            scope = 'sal' + scope
        model.parse_scope(scope, '--sal')
    if tolerate is not None:
        if scope is None:
            raise model.PolicyError('--tolerate=%r needs --sal' % tolerate)
        return model.parse_policies({scope: tolerate}, levels,
                                    '--tolerate')
    policies = model.load_policies(conf, levels)
    if scope is not None:
        policies = [p for p in policies if p.scope == scope]
        if not policies:
            raise model.PolicyError(
                '--sal=%r: [capacity] tolerate has no policy for scope %s '
                '(give --tolerate)' % (sal, scope))
    return policies


def check(cloud, policies, conf):
    return solver.evaluate(cloud, policies, **solver.options(conf))


def as_dict(cloud, evaluation):
    return {
        'fits': evaluation.fits,
        'problems': cloud.problems,
        'policies': [{'policy': text, 'approximate': approx}
                     for text, approx in evaluation.approximate.items()],
        'scenarios': [{
            'policy': r.scenario.policy.text,
            'failure': r.scenario.label,
            'failed_hosts': sorted(r.scenario.failed),
            'fits': r.fits,
            'exact': r.exact,
            'placed': len(r.placed),
            'stranded': [s.as_dict() for s in r.stranded],
        } for r in evaluation.results],
    }


def render_table(cloud, evaluation, out):
    data = as_dict(cloud, evaluation)
    for p in data['policies']:
        n = sum(1 for s in data['scenarios'] if s['policy'] == p['policy'])
        bad = sum(1 for s in data['scenarios']
                  if s['policy'] == p['policy'] and not s['fits'])
        out.write('policy %s: %d scenario(s), %d do not fit%s\n' % (
            p['policy'], n, bad,
            ' (approximate: only the heaviest combinations checked)'
            if p['approximate'] else ''))
    rows = []
    for s in data['scenarios']:
        if s['fits']:
            continue
        for st in s['stranded']:
            rows.append((s['policy'], s['failure'], st['name'], st['uuid'],
                         st['host'], st['kind'], st['reason']))
    if rows:
        from nova_ha.journal import cli as journal_cli
        out.write(journal_cli.plain_table(
            ('POLICY', 'FAILURE', 'INSTANCE', 'UUID', 'HOST', 'WHY',
             'DETAIL'), rows) + '\n')
    inexact = [s for s in data['scenarios'] if not s['exact']]
    if inexact:
        out.write('%d scenario(s) answered by the greedy bound only (too '
                  'large for the exact search)\n' % len(inexact))
    for p in data['problems']:
        out.write('warning: %s\n' % p)
    out.write('FIT\n' if data['fits'] else 'NO FIT\n')


def main(args, cloud=None, out=None, conf=None):
    """``capacity check``; ``cloud`` (tests) skips reading the APIs."""
    conf = conf or cfg.CONF
    out = out or sys.stdout
    try:
        policies = select_policies(conf, args.sal, args.tolerate)
    except (model.PolicyError, topology.TopologyError) as exc:
        print('nova-ha capacity check: %s' % exc, file=sys.stderr)
        return BAD
    if not policies:
        print('nova-ha capacity check: no policy: set [capacity] tolerate '
              'or give --sal and --tolerate', file=sys.stderr)
        return BAD
    if cloud is None:
        from nova_ha.capacity import collect
        try:
            compute_get, placement_get = collect.session_getters(conf)
            cloud = collect.from_api(compute_get, placement_get,
                                     topology.configured_levels(conf))
        except Exception as exc:   # noqa: BLE001 -- reported, exit code 3
            print('nova-ha capacity check: cannot read Nova/placement: %s'
                  % exc, file=sys.stderr)
            return UNREACHABLE
    try:
        evaluation = check(cloud, policies, conf)
    except model.PolicyError as exc:
        print('nova-ha capacity check: %s' % exc, file=sys.stderr)
        return BAD
    if args.format == 'json':
        json.dump(as_dict(cloud, evaluation), out, indent=2, sort_keys=True)
        out.write('\n')
    else:
        render_table(cloud, evaluation, out)
    return FIT if evaluation.fits else NO_FIT
