"""What every ``openstack ha`` command shares: ``--ha-config-file``, the
exit codes of the ``nova-ha`` command line, and its error messages."""

from oslo_config import cfg

from nova_ha.journal import cli as journal_cli
from nova_ha.osc import plugin

EXIT_CODES = (
    'Exit codes (as the nova-ha command line): 0 ok; 1 the operation ran '
    'and failed (database or Nova API error, drain incomplete, ID not '
    'found); 2 bad arguments or configuration (unknown host, missing '
    'nova-ha.conf). Code 3 (not reachable / not allowed now) belongs to '
    'nova-ha fence and nova-ha host enable only. See doc/cli.md.')


class HACommand:
    """Mixin of every ``openstack ha`` command (before the cliff class).

    Subclasses implement ``take_action`` and may set ``self.exit_code``
    (the exit status after the output is printed, e.g. 1 for a drain that
    ended incomplete) and ``error_mappers`` (functions ``(exc, prog) ->
    (code, message) or None``, tried in order).
    """

    #: the commands read nova-ha.conf, not Keystone (see plugin docstring)
    auth_required = False
    error_mappers = (journal_cli.error_of,)
    #: extra epilog text, before the exit codes
    exit_detail = ''

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            '--ha-config-file', metavar='<path>', default=None,
            help='nova-ha configuration file (default: $%s, else %s if '
                 'it exists, else option defaults). Its [journal] '
                 'connection locates the journal; maintenance commands '
                 'reach Nova with its [nova] credentials.'
                 % (plugin.CONFIG_ENV, plugin.DEFAULT_CONFIG_FILE))
        return parser

    def get_epilog(self):
        text = ' '.join(t for t in (self.exit_detail, EXIT_CODES) if t)
        base = super().get_epilog()
        return text + ('\n\n' + base if base else '')

    @property
    def ha(self):
        return self.app.client_manager.ha

    def _error(self, message, code):
        self.app.stderr.write(message.rstrip('\n') + '\n')
        return code

    def run(self, parsed_args):
        prog = 'openstack %s' % self.cmd_name
        self.exit_code = 0
        try:
            self.ha.configure(parsed_args.ha_config_file)
        except (cfg.Error, OSError) as exc:
            return self._error('%s: configuration error: %s' % (prog, exc),
                               2)
        try:
            code = super().run(parsed_args)
        except Exception as exc:
            for mapper in self.error_mappers:
                handled = mapper(exc, prog)
                if handled is not None:
                    return self._error(handled[1], handled[0])
            raise
        return self.exit_code or code
