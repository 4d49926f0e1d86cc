"""Recognition as a service: the worker protocol (`protocol`), the worker process (`worker`, `hotline asr serve`)
and the gateway's side, an `AsrEngine` whose streams run on a pool of workers with failover (`pool`, `stream`).

The protocol is documented in docs/asr-worker-protocol.md.
"""
