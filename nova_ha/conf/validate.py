"""Start-up checks of a parsed configuration: every value, every name.

oslo.config converts and range-checks an option only when it is first
read, and reports a bad value as ``Value for option tick from
LocationInfo(location=<Locations.user: (5, True)>, ...) is not valid``. A
daemon that reads some options only when a host fails would start, take the
leadership and fail at the worst moment. :func:`check_values` reads every
registered option once, at start-up, and raises :class:`ConfigValueError`
with one readable line::

    [evacuator] tick = -1: should be greater than or equal to 0.01 (/etc/nova-ha/nova-ha.conf)

:func:`unknown_names` lists sections and options of the configuration files
that nothing registers (a typo starts silently with the default otherwise),
each with the closest known name.
"""

import difflib
import glob
import os

from oslo_config import cfg

# Sections whose options are registered on demand by the code that uses
# them (so they are not registered when the check runs): their known names
# come from these oslo.config.opts namespaces (etc/oslo-config-generator).
_LIBRARY_NAMESPACES = ('oslo.log', 'oslo.messaging')


class ConfigValueError(ValueError):
    """A configuration value is unusable: ``str()`` is one line naming the
    section, the option and the value."""

    def __init__(self, group, name, value, reason, source=None):
        self.group, self.name, self.value = group, name, value
        self.reason = reason
        text = '[%s] %s = %s: %s' % (group or 'DEFAULT', name,
                                     '(not set)' if value is None else value,
                                     reason)
        if source:
            text += ' (%s)' % source
        super().__init__(text)


def config_files(conf):
    """The files ``conf`` was parsed from, config-dir files included."""
    files = list(conf.config_file or ())
    dirs = getattr(conf, 'config_dir', None) or ()
    if isinstance(dirs, str):
        dirs = [dirs]
    for d in dirs:
        files += sorted(glob.glob(os.path.join(d, '*.conf')))
    return files


def file_values(conf):
    """{section: {name: (last raw value, file)}} of the configuration
    files (unreadable files are left to oslo.config's own error)."""
    out = {}
    for path in config_files(conf):
        sections = {}
        try:
            cfg.ConfigParser(path, sections).parse()
        except (OSError, cfg.ParseError):
            continue
        for section, opts in sections.items():
            for name, values in opts.items():
                out.setdefault(section, {})[name] = (
                    values[-1] if values else '', path)
    return out


def _reason(exc):
    text = str(exc)
    marker = 'is not valid: '
    if marker in text:
        text = text.split(marker, 1)[1]
    text = text.strip().rstrip('.')
    if text.startswith('invalid literal for int()'):
        return 'not an integer'
    if text.startswith('could not convert string to float'):
        return 'not a number'
    return text[:1].lower() + text[1:] if text else exc.__class__.__name__


def _groups(conf):
    """[(group name or None, [option names])] of every registered option."""
    out = [(None, [])]
    for key in conf:
        try:
            value = conf[key]
        except (cfg.Error, ValueError):
            out[0][1].append(key)
            continue
        if isinstance(value, cfg.ConfigOpts.GroupAttr):
            out.append((key, list(value)))
        elif isinstance(value, cfg.ConfigOpts.SubCommandAttr):
            continue
        else:
            out[0][1].append(key)
    return out


def check_values(conf, groups=None):
    """Read every registered option of ``conf`` (of ``groups`` only when
    given); raise ConfigValueError for the first unusable value."""
    raw = None
    for group, names in _groups(conf):
        if groups is not None and group not in groups:
            continue
        owner = conf if group is None else conf[group]
        for name in names:
            try:
                getattr(owner, name)
            except cfg.RequiredOptError:
                continue      # required plugin options: their user says so
            except (ValueError, cfg.Error) as exc:
                if raw is None:
                    raw = file_values(conf)
                section = raw.get(group or 'DEFAULT', {})
                value, source = section.get(name, (None, None))
                if value is None:
                    opt = _opt(conf, group, name)
                    for dep in getattr(opt, 'deprecated_opts', ()) or ():
                        old = raw.get(dep.group or group or 'DEFAULT', {})
                        if (dep.name or name) in old:
                            value, source = old[dep.name or name]
                            break
                raise ConfigValueError(group, name, value, _reason(exc),
                                       source) from None


def _opt(conf, group, name):
    try:
        return conf._get_opt_info(name, group)['opt']
    except (cfg.Error, KeyError):
        return None


def _known(conf):
    """{section: set(option names, deprecated names and dashes included)}
    of every registered option."""
    known = {}
    for group, names in _groups(conf):
        section = known.setdefault(group or 'DEFAULT', set())
        for name in names:
            section.add(name)
            opt = _opt(conf, group, name)
            if opt is None:
                continue
            section.add(opt.dest)
            for dep in opt.deprecated_opts or ():
                known.setdefault(dep.group or group or 'DEFAULT',
                                 set()).add((dep.name or name)
                                            .replace('-', '_'))
    return known


def _nova_ha_known(known):
    """Every nova-ha section (one file serves every nova-ha program, each
    of which registers only the groups it reads)."""
    from nova_ha.conf import opts
    for group, group_opts in opts.list_opts():
        name = getattr(group, 'name', group) or 'DEFAULT'
        section = known.setdefault(name, set())
        for opt in group_opts:
            section.add(opt.dest)


def _library_known(known, namespace):
    """Add the options of a library nova-ha's daemons use."""
    from stevedore import named
    mgr = named.NamedExtensionManager(
        'oslo.config.opts', names=[namespace],
        on_load_failure_callback=lambda *a: None)
    for ext in mgr:
        try:
            listed = ext.plugin()
        except Exception:   # noqa: BLE001 -- a broken library: no names
            continue
        for group, opts in listed:
            name = getattr(group, 'name', group) or 'DEFAULT'
            section = known.setdefault(name, set())
            for opt in opts:
                section.add(opt.dest)
                for dep in opt.deprecated_opts or ():
                    known.setdefault(dep.group or name, set()).add(
                        (dep.name or opt.name).replace('-', '_'))


def _auth_plugin_known(conf, known, section, raw):
    """keystoneauth registers the auth plugin's options (auth_url,
    token...) only when the client is built: add those of the plugin that
    the section names."""
    auth_type = raw.get(section, {}).get('auth_type',
                                         raw.get(section, {}).get(
                                             'auth_plugin'))
    if not auth_type:
        return
    try:
        from keystoneauth1 import loading
        opts = loading.get_auth_plugin_conf_options(auth_type[0])
    except Exception:   # noqa: BLE001 -- an unknown plugin: keystoneauth says
        return
    for opt in opts:
        known.setdefault(section, set()).add(opt.dest)
        for dep in opt.deprecated_opts or ():
            known[section].add((dep.name or opt.name).replace('-', '_'))


def _closest(name, candidates):
    match = difflib.get_close_matches(name, sorted(candidates), n=1,
                                      cutoff=0.6)
    return match[0] if match else None


def _dynamic_sections():
    from nova_ha.conf import heartbeat
    return {'watch:': {o.dest for o in heartbeat.WATCH_OPTS}}


def unknown_names(conf, dynamic_sections=None):
    """Warnings, one line each, for the sections and options of the
    configuration files that no registered option reads, naming the
    closest known name. Sections starting with one of
    ``dynamic_sections`` (``[watch:NAME]``) are checked against their
    registered template (``[watch:nova-compute]``'s options): a dict
    {prefix: option names}, default the ``[watch:NAME]`` sections."""
    raw = file_values(conf)
    if not raw:
        return []
    if dynamic_sections is None:
        dynamic_sections = _dynamic_sections()
    known = _known(conf)
    _nova_ha_known(known)
    libraries = list(_LIBRARY_NAMESPACES)

    def is_known(section, name=None):
        # load a library's names (oslo.messaging's cost 0.5 s) only when
        # nova-ha's own do not explain a name
        while True:
            if section in known and (name is None or name in known[section]):
                return True
            if not libraries:
                return False
            _library_known(known, libraries.pop(0))

    for prefix, names in dynamic_sections.items():
        known[prefix] = set(names)
    prefixes = tuple(dynamic_sections)
    warnings = []
    for section in sorted(raw):
        names = raw[section]
        key = next((p for p in prefixes if section.startswith(p)), section)
        if not is_known(key):
            hint = _closest(section, [s for s in known
                                      if not s.startswith(prefixes)])
            warnings.append('unknown section [%s] (%s) is ignored%s' % (
                section, names[next(iter(names))][1] if names else '?',
                '; did you mean [%s]?' % hint if hint else ''))
            continue
        if 'auth_type' in known[key] or 'auth_plugin' in known[key]:
            _auth_plugin_known(conf, known, key,
                               {key: {n: v for n, v in names.items()}})
        for name, (value, path) in sorted(names.items()):
            if is_known(key, name):
                continue
            hint = _closest(name, known[key])
            warnings.append('unknown option [%s] %s (%s) is ignored%s' % (
                section, name, path,
                '; did you mean %s?' % hint if hint else ''))
    return warnings


def check(conf, prog):
    """check_values for a command's ``main``: None when every value is
    usable, else exit code 2 after one line on stderr."""
    import sys
    try:
        check_values(conf)
    except ConfigValueError as exc:
        print('%s: configuration error: %s' % (prog, exc), file=sys.stderr)
        return 2
    return None


def warn_unknown(conf, prog, log=None):
    """unknown_names, each a warning (``log.warning``, else stderr)."""
    import sys
    for line in unknown_names(conf):
        if log is not None:
            log.warning('%s', line)
        else:
            print('%s: warning: %s' % (prog, line), file=sys.stderr)
