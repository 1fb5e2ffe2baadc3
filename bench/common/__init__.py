"""What every bench shares: the prelude (environment, Django setup, loopback-only database and
Redis), the child-process helpers, and the output helpers (``log``, ``pct``, ``fmt_ms``, ...).

    bench.common.env     ROOT, BenchError, bench_env, django_setup, redis_check, redis_flush, quick_parse
    bench.common.db      BenchDatabase, bench_database, database_recreate, database_drop, tables_truncate, rows, one,
                         migrations_pending, meta_read, meta_write
    bench.common.procs   Child, free_port, http_wait, gunicorn_start, stop_on_signals, default_signals
    bench.common.report  log, checks_log, pct, fmt_ms, fmt_x, load_average, verdict
    bench.common.load    the HTTP load of the web benches: Conn, LoadResult, cell_run
    bench.common.options cache_url_option
    bench.common.cpu     CpuMeter, CpuUse, cpu_between (where the CPU went during a cell, from /proc)
"""
