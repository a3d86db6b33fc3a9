"""Throw-away databases on the MariaDB and PostgreSQL servers of the
machine (127.0.0.1, default ports; NOVA_HA_TEST_{MYSQL,PG}_{HOST,PORT,USER,
PASSWORD} override), for tests of the journal on a server database. A
backend whose server is not reachable makes the test skip, with the reason.
"""

import os
import uuid

import pytest

MYSQL = dict(host=os.environ.get('NOVA_HA_TEST_MYSQL_HOST', '127.0.0.1'),
             port=int(os.environ.get('NOVA_HA_TEST_MYSQL_PORT', 3306)),
             user=os.environ.get('NOVA_HA_TEST_MYSQL_USER', 'root'),
             password=os.environ.get('NOVA_HA_TEST_MYSQL_PASSWORD', ''))
PG = dict(host=os.environ.get('NOVA_HA_TEST_PG_HOST', '127.0.0.1'),
          port=int(os.environ.get('NOVA_HA_TEST_PG_PORT', 5432)),
          user=os.environ.get('NOVA_HA_TEST_PG_USER', 'postgres'),
          password=os.environ.get('NOVA_HA_TEST_PG_PASSWORD', ''))

BACKENDS = ('sqlite', 'mysql', 'postgresql')
_unreachable = {}


def _mysql_admin():
    import pymysql
    return pymysql.connect(connect_timeout=3, autocommit=True, **MYSQL)


def _pg_admin():
    import psycopg2
    kw = dict(PG)
    if not kw['password']:
        del kw['password']
    conn = psycopg2.connect(dbname='postgres', connect_timeout=3, **kw)
    conn.autocommit = True
    return conn


def _admin(backend):
    """An autocommit admin connection, or pytest.skip if unreachable."""
    if backend in _unreachable:
        pytest.skip(_unreachable[backend])
    try:
        return _mysql_admin() if backend == 'mysql' else _pg_admin()
    except Exception as exc:  # server absent: skip, with the reason
        where = MYSQL if backend == 'mysql' else PG
        _unreachable[backend] = (
            '%s server not reachable at %s:%s (%s: %s)'
            % ('MariaDB' if backend == 'mysql' else 'PostgreSQL',
               where['host'], where['port'], type(exc).__name__,
               ' '.join(str(exc).split())))
        pytest.skip(_unreachable[backend])


def _db_name(label):
    worker = os.environ.get('PYTEST_XDIST_WORKER', 'gw')
    return ('nha_%s_%s_%s' % (worker, label, uuid.uuid4().hex[:10]))[:60]


class Database:
    """A fresh empty database on one backend; ``drop()`` removes it."""

    def __init__(self, backend, label, tmp_path_factory):
        self.backend = backend
        self.name = _db_name(label)
        if backend == 'sqlite':
            path = tmp_path_factory.mktemp('journal') / (self.name + '.db')
            self.url = 'sqlite:///%s' % path
            return
        conn = _admin(backend)
        try:
            cur = conn.cursor()
            if backend == 'mysql':
                cur.execute('CREATE DATABASE `%s` CHARACTER SET utf8mb4'
                            % self.name)
                auth = MYSQL['user'] + (
                    ':' + MYSQL['password'] if MYSQL['password'] else '')
                self.url = ('mysql+pymysql://%s@%s:%s/%s?charset=utf8mb4'
                            % (auth, MYSQL['host'], MYSQL['port'],
                               self.name))
            else:
                cur.execute('CREATE DATABASE "%s"' % self.name)
                auth = PG['user'] + (
                    ':' + PG['password'] if PG['password'] else '')
                self.url = ('postgresql+psycopg2://%s@%s:%s/%s'
                            % (auth, PG['host'], PG['port'], self.name))
        finally:
            conn.close()

    def drop(self):
        if self.backend == 'sqlite':
            return
        conn = _admin(self.backend)
        try:
            cur = conn.cursor()
            if self.backend == 'mysql':
                cur.execute('DROP DATABASE IF EXISTS `%s`' % self.name)
            else:
                cur.execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)'
                            % self.name)
        finally:
            conn.close()
