"""Import on first use, so that a command line prints its help or refuses
bad arguments without importing the database, messaging and Nova
libraries (``nova-ha --help`` costs < 0.3 CPU-s: benchmarks/bench_cli.py).
"""

import importlib


class Module:
    """A module imported when one of its attributes is first read::

        api = lazy.Module('nova_ha.journal.api')
        ...
        api.Journal(url)          # imports nova_ha.journal.api here
    """

    def __init__(self, name):
        self.__dict__['_name'] = name

    def __getattr__(self, attr):
        module = importlib.import_module(self.__dict__['_name'])
        return getattr(module, attr)


class Choices:
    """argparse ``choices`` read from a lazily imported module: the
    container is only iterated when an argument is checked or the
    command's own help printed (``help='... %(choices)s'``)."""

    def __init__(self, get):
        self._get = get

    def __contains__(self, value):
        return value in self._get()

    def __iter__(self):
        return iter(self._get())

    def __len__(self):
        return len(self._get())
