"""Registrations made when the app is ready (see discovery.apps)."""
