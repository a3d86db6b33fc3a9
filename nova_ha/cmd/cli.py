"""``nova-ha``: the operator command line.

Each command group lives with the code it drives and exposes
``add_parser(subparsers)``, which registers its sub-commands and sets
``func`` on each: ``func(args) -> int`` (the exit code). Exit codes: 0 ok,
1 the operation ran and failed (e.g. a fence that did not confirm power
off), 2 bad arguments or configuration, 3 not reachable / not allowed now
(a BMC that does not answer, a host with a recovery in progress).
"""

import argparse
import importlib
import os
import sys

from oslo_config import cfg

# Command groups, in --help order. A module here must stay cheap to import
# (nova-ha --help < 0.3 CPU-s, benchmarks/bench_cli.py): import the
# database, messaging and Nova libraries inside the commands
# (nova_ha.lazy helps).
COMMAND_MODULES = (
    'nova_ha.capacity.cli',
    'nova_ha.evacuator.cli',
    'nova_ha.fencing.cli',
    'nova_ha.journal.cli',
    'nova_ha.maintenance.cli',
    'nova_ha.report.cli',
)


def build_parser():
    parser = argparse.ArgumentParser(
        prog='nova-ha',
        description='nova-ha operator commands.')
    parser.add_argument('--config-file', action='append', default=[],
                        metavar='PATH',
                        help='nova-ha configuration file (repeatable); '
                             'default $NOVA_HA_CONFIG, else '
                             '/etc/nova-ha/nova-ha.conf if present')
    sub = parser.add_subparsers(dest='group', metavar='GROUP')
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def load_config(files):
    """Parse nova-ha's configuration files into the global CONF."""
    import nova_ha.conf  # noqa: F401 -- registers every option group
    default = '/etc/nova-ha/nova-ha.conf'
    if not files and os.environ.get('NOVA_HA_CONFIG'):
        # as `openstack ha ...` (nova_ha/osc/plugin.py)
        files = [os.environ['NOVA_HA_CONFIG']]
    if not files:
        files = [default] if os.path.exists(default) else []
    args = []
    for f in files:
        args += ['--config-file', f]
    cfg.CONF(args, project='nova-ha', default_config_files=[])
    return cfg.CONF


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        conf = load_config(args.config_file)
    except (cfg.Error, OSError) as exc:
        print('nova-ha: configuration error: %s' % exc, file=sys.stderr)
        return 2
    from nova_ha.conf import validate
    refused = validate.check(conf, 'nova-ha')
    if refused:
        return refused
    validate.warn_unknown(conf, 'nova-ha')
    try:
        code = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # `nova-ha recovery show 1 | head`: the reader has what it wanted.
        # Point stdout at /dev/null so that Python's exit flush is quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    return code


if __name__ == '__main__':
    sys.exit(main())
