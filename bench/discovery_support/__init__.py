"""The discovery bench's own helpers: the set-based seed, the bench URLconf (the stand-in and
the plain suggestions views), the HTTP load clients and the queue phases."""
