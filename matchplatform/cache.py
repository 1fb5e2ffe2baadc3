"""Django's Redis cache backend, keeping one client per connection pool.

Django's ``RedisCacheClient.get_client`` builds a new ``redis.Redis`` for every cache call, and
redis-py's constructor fills a table of ~165 response callbacks each time: a fifth of a
millisecond of CPU per call, paid by every signed-in request once sessions are read from the
cache. A ``redis.Redis`` is safe to share (it takes a connection from its pool per command),
so this backend builds it once per pool. Everything else is Django's backend."""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.redis import RedisCache, RedisCacheClient

# Django's client keeps its pools and settings in attributes the type stubs do not declare.
_DjangoClient: Any = RedisCacheClient


class _SharedClient(_DjangoClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            if index not in self._pools:
                self._pools[index] = self._pool_class.from_url(self._servers[index], **self._pool_options)
            client = self._clients[index] = self._client(connection_pool=self._pools[index])
        return client


class SharedClientRedisCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = _SharedClient
