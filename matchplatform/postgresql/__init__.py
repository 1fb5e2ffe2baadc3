"""Django's PostgreSQL backend, noting on the current request when its pool runs dry."""
