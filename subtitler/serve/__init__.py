"""`subtitler serve`: a self-hosted Whisper job server speaking Tiyaro's asynchronous protocol.

Imported only by the `serve` command (FastAPI and uvicorn stay out of every other command).

    server.py   refuses an unsafe or unusable setup, listens, runs uvicorn
    app.py      the ASGI application: routes, /health, /ready, errors, access log
    tiyaro.py   Tiyaro's routes: upload URL, PUT, submit, poll, cancel, list
    inputs.py   a job's openai-whisper options, checked
    auth.py     API keys (hashes, constant-time) and signed upload URLs
    store.py    jobs and uploads in SQLite, their files on disk: they survive a restart
    workers.py  engines loaded once; threads running jobs through subtitler's job path
    retention.py  finished jobs and their files deleted after --retention
    webhooks.py   signed POSTs when a job ends, retried, kept across restarts
    metrics.py    /metrics in Prometheus text format
    logs.py       the JSON access log
    limits.py     header and body timeouts, body size limits
    shutdown.py   SIGTERM drains: no new work, running jobs get --grace to finish
"""
