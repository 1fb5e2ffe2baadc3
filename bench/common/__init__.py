"""What every bench shares: the prelude (environment, Django setup, loopback-only database and
Redis), the child-process helpers, and the output helpers (``log``, ``pct``, ``fmt_ms``, ...).

    bench.common.env     ROOT, BenchError, bench_env, django_setup, redis_check, redis_flush, quick_parse
    bench.common.db      BenchDatabase, bench_database, database_recreate, database_drop, tables_truncate, rows, one
    bench.common.procs   Child, free_port, http_wait, stop_on_signals, default_signals
    bench.common.report  log, pct, fmt_ms, fmt_x, load_average, verdict
"""
