"""``nova-ha-sim``: run and poke the simulated cloud.

::

    nova-ha-sim serve --hosts 6 --racks 3 [--state-dir DIR]
    nova-ha-sim status [--state-dir DIR]
    nova-ha-sim inject HOST FAULT [--state-dir DIR]
    nova-ha-sim heal HOST [--state-dir DIR]
    nova-ha-sim stop [--state-dir DIR]
    nova-ha-sim demo

Exit codes: 0 success, 1 the simulated cloud failed, 2 bad arguments (one
line on stderr).
"""

import argparse
import gc
import logging
import os
import signal
import sys
import time

STATE_DIR_HELP = ('directory of the state file (default $NOVA_HA_SIM_STATE_DIR'
                  ' or ./.nova-ha-sim)')


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line."""

    def error(self, message):
        self.exit(2, '%s: error: %s\n' % (self.prog, message))


def nova_option(text):
    """SECTION.NAME=VALUE -> ((section, name), value)."""
    key, sep, value = text.partition('=')
    section, dot, name = key.strip().rpartition('.')
    if not (sep and dot and section and name):
        raise argparse.ArgumentTypeError(
            'expected SECTION.NAME=VALUE (e.g. '
            'filter_scheduler.host_subset_size=3), got %r' % text)
    return (section, name), value.strip()


def _positive(value):
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError('expected a whole number, got %r'
                                         % value)
    if n < 1:
        raise argparse.ArgumentTypeError('must be >= 1, got %d' % n)
    return n


def _port(value):
    n = _positive(value)
    if n > 65535:
        raise argparse.ArgumentTypeError('not a port number: %d' % n)
    return n


def build_parser():
    from nova_ha.sim.cloud import FAULTS
    parser = _Parser(prog='nova-ha-sim',
                     description='A real Nova in process with simulated '
                                 'hosts, virtual BMCs and fault injection.')
    sub = parser.add_subparsers(dest='command', metavar='COMMAND',
                                parser_class=_Parser)
    sub.required = True

    serve = sub.add_parser('serve', help='start the simulated cloud and '
                           'serve it until SIGINT/SIGTERM')
    serve.add_argument('--hosts', type=_positive, default=3)
    serve.add_argument('--racks', type=_positive, default=1)
    serve.add_argument('--power-domains', type=_positive,
                       help='default: one per rack')
    serve.add_argument('--azs', type=_positive,
                       help='availability zones (default: none)')
    serve.add_argument('--sal', type=int, choices=[1, 2, 3],
                       help='certify every host for this Service '
                            'Availability Level (aggregate ha:sal=N)')
    serve.add_argument('--watchdog-restart-delay', type=float, default=0.0,
                       metavar='SECONDS',
                       help='the agents\' watchdog restarts a crashed '
                            'nova-compute after SECONDS (default 0: it '
                            'stays dead until healed)')
    serve.add_argument('--evacuators', type=_positive, default=1,
                       help='evacuators the heartbeat agents send to; one '
                            'STATE_DIR/evacuator-N.conf is written for each')
    serve.add_argument('--state-dir', help=STATE_DIR_HELP)
    serve.add_argument('--api-port', type=_port, default=0,
                       help='Nova API port on 127.0.0.1 (default: free)')
    serve.add_argument('--control-port', type=_port, default=0,
                       help='control API port on 127.0.0.1 (default: free)')
    serve.add_argument('--token', help='API token (default: random, '
                       'written to the state file)')
    serve.add_argument('--log-file', help='default: STATE_DIR/sim.log')
    serve.add_argument('--nova', choices=['inprocess', 'processes'],
                       default='inprocess',
                       help='inprocess (default): every Nova service in '
                            'this process, nothing else needed; processes: '
                            'one process per Nova service, on a database '
                            'server and RabbitMQ')
    serve.add_argument('--database-url',
                       help='--nova processes: a MariaDB or PostgreSQL '
                            'server URL without a database name (default '
                            'mysql+pymysql://root@127.0.0.1:3306)')
    serve.add_argument('--nova-option', action='append', default=[],
                       type=nova_option, metavar='SECTION.NAME=VALUE',
                       help='--nova processes: one more nova.conf option, '
                            'e.g. filter_scheduler.host_subset_size=3 '
                            '(repeatable)')
    serve.add_argument('--transport-url',
                       help='--nova processes: oslo.messaging URL (default '
                            'rabbit://guest:guest@127.0.0.1:5672/)')

    for name, text in (('status', 'print every host\'s state'),
                       ('stop', 'stop a running simulated cloud')):
        p = sub.add_parser(name, help=text)
        p.add_argument('--state-dir', help=STATE_DIR_HELP)

    inject = sub.add_parser('inject', help='inject a fault into a host; '
                            'faults: %s' % ', '.join(FAULTS))
    inject.add_argument('host')
    inject.add_argument('fault', metavar='FAULT')
    inject.add_argument('--state-dir', help=STATE_DIR_HELP)

    heal = sub.add_parser('heal', help='clear every fault of a host')
    heal.add_argument('host')
    heal.add_argument('--state-dir', help=STATE_DIR_HELP)

    demo = sub.add_parser('demo', help='the README demo')
    demo.add_argument('--hosts', type=_positive, default=8)
    demo.add_argument('--racks', type=_positive, default=4)
    return parser


def _setup_logging(path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter(
        '%(asctime)s %(levelname)s %(name)s %(message)s'))
    root = logging.getLogger()
    # Nova's fixtures capture logging while the stack runs and restore the
    # root handlers afterwards: keep the console clean for the CLI output.
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def cmd_serve(args):
    from nova_ha.sim import client
    from nova_ha.sim.cloud import SimCloud
    state_dir = args.state_dir or client.default_state_dir()
    _setup_logging(args.log_file or os.path.join(state_dir, 'sim.log'))
    cloud = SimCloud(hosts=args.hosts, racks=args.racks,
                     power_domains=args.power_domains, azs=args.azs,
                     state_dir=state_dir, api_port=args.api_port,
                     control_port=args.control_port, token=args.token,
                     evacuators=args.evacuators,
                     watchdog_restart_delay=args.watchdog_restart_delay,
                     nova=args.nova, database_url=args.database_url,
                     transport_url=args.transport_url,
                     nova_options=dict(args.nova_option),
                     sal=({'compute%02d' % i: args.sal
                           for i in range(1, args.hosts + 1)}
                          if args.sal else None))
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *a: cloud.request_shutdown())
    t0 = time.monotonic()
    cloud.start()
    try:
        print('nova-ha-sim: %d hosts in %d racks up in %.1f s; Nova API %s; '
              'state %s' % (args.hosts, args.racks, time.monotonic() - t0,
                            cloud.api_endpoint,
                            os.path.join(state_dir, 'state.json')),
              flush=True)
        while not cloud.shutdown_requested.wait(0.5):
            pass
    finally:
        cloud.stop()
    print('nova-ha-sim: stopped', flush=True)
    # Nothing of the stopped cloud is used any more, but the interpreter's
    # final garbage collection tears Nova's heap down object by object; in
    # eventlet mode (nova 31, 33) that kills every suspended greenthread
    # of its services one at a time: 15-20 s after "stopped" on a loaded
    # machine, against 1 s with the heap left to the process exit.
    gc.freeze()
    return 0


def _print_hosts(hosts):
    from nova_ha.journal import cli as journal_cli
    rows = []
    for h in hosts:
        down = [p for p, up in sorted(h['planes'].items()) if not up]
        rows.append((h['name'], h['topology'].get('rack'), h['power'],
                     'up' if h['compute_running'] else 'stopped',
                     ','.join(down) or None, ','.join(h['faults']) or None))
    print(journal_cli.plain_table(
        ('HOST', 'RACK', 'POWER', 'COMPUTE', 'PLANES DOWN', 'FAULTS'), rows))


def cmd_status(args):
    from nova_ha.sim import client
    state = client.load_state(args.state_dir)
    _print_hosts(client.control(state, 'GET', '/hosts')['hosts'])
    return 0


def cmd_inject(args):
    from nova_ha.sim import client
    from nova_ha.sim.cloud import FAULTS, SimError
    if args.fault not in FAULTS:
        raise SimError('unknown fault %r; faults are %s'
                       % (args.fault, ', '.join(FAULTS)))
    state = client.load_state(args.state_dir)
    host = client.control(state, 'POST', '/hosts/%s/faults' % args.host,
                          {'fault': args.fault})
    print('%s: %s injected; faults now %s' % (
        args.host, args.fault, ','.join(host['faults'])))
    return 0


def cmd_heal(args):
    from nova_ha.sim import client
    state = client.load_state(args.state_dir)
    host = client.control(state, 'DELETE', '/hosts/%s/faults' % args.host)
    print('%s: healed; power %s' % (args.host, host['power']))
    return 0


def cmd_stop(args):
    from nova_ha.sim import client
    state_dir = args.state_dir or client.default_state_dir()
    state = client.load_state(state_dir)
    client.control(state, 'POST', '/shutdown')
    path = os.path.join(state_dir, 'state.json')
    deadline = time.monotonic() + 30
    while os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.2)
    print('nova-ha-sim: stopped')
    return 0


def cmd_demo(args):
    from nova_ha.sim import demo
    return demo.run(hosts=args.hosts, racks=args.racks)


COMMANDS = {'serve': cmd_serve, 'status': cmd_status, 'inject': cmd_inject,
            'heal': cmd_heal, 'stop': cmd_stop, 'demo': cmd_demo}


#: Commands that run Nova in this process (``serve`` hosts the in-process
#: stack, or with ``--nova processes`` builds it through novastack too;
#: ``demo`` runs a SimCloud here).
NOVA_COMMANDS = ('serve', 'demo')


def _command(argv):
    """The subcommand of argv (its first positional argument), or None."""
    for arg in argv:
        if not arg.startswith('-'):
            return arg
    return None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if _command(argv) in NOVA_COMMANDS:
        # Patch (eventlet on nova 31 and 33) before anything else imports
        # the modules eventlet replaces: socketserver, imported first by
        # nova_ha.sim.http, binds the real poll() selector at import, and a
        # control/API server thread that blocks in it never yields, so the
        # stack built after it starves (the sim hung right after the
        # layout). The small commands do not import nova at all.
        from nova_ha.sim import nova_internals
        nova_internals.monkey_patch()
    args = build_parser().parse_args(argv)
    from nova_ha.sim.cloud import SimError
    try:
        return COMMANDS[args.command](args)
    except SimError as exc:
        print('nova-ha-sim: error: %s' % exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == '__main__':
    sys.exit(main())
