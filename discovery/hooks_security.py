"""Registrations made when the app is ready (see discovery.apps): every database connection,
opened or taken from the pool, gets the row-security scope of the code that asked for it
(``system`` outside requests) before its first query. The request's scope is set by
``discovery.row_security.RowSecurityMiddleware`` (MIDDLEWARE, the settings' row-security block)."""

from django.db.backends.signals import connection_created

from discovery.row_security import on_connection_created

connection_created.connect(on_connection_created, dispatch_uid="discovery.row_security")
