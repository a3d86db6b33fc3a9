"""nova-ha's journal: the SQL store of the evacuator and maintenance loops.

See :mod:`nova_ha.journal.api` for the API and doc/journal.md for the
schema. The usual imports::

    from nova_ha import journal
    journal.upgrade(url)
    j = journal.Journal(url)
"""

import importlib
import os

# Imported on first use (PEP 562): importing a submodule (the command line's
# nova_ha.journal.cli) must not load SQLAlchemy and alembic.
_MIGRATIONS = ('upgrade', 'current', 'head')


def __getattr__(name):
    if name in _MIGRATIONS:
        return getattr(importlib.import_module('nova_ha.journal.migrations'),
                       name)
    if name == '__all__':
        api = importlib.import_module('nova_ha.journal.api')
        return list(api.__all__) + list(_MIGRATIONS)
    here = os.path.dirname(__file__)
    if name.startswith('__') or os.path.exists(
            os.path.join(here, name + '.py')) or os.path.isdir(
            os.path.join(here, name)):
        # dunder names, and submodules: `from nova_ha.journal import cli`
        # asks for the attribute before importing the submodule
        raise AttributeError(name)
    api = importlib.import_module('nova_ha.journal.api')
    try:
        return getattr(api, name)
    except AttributeError:
        raise AttributeError('module %r has no attribute %r'
                             % (__name__, name)) from None
