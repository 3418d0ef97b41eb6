"""Side-by-side benchmark of chatserver against reference WebSocket relays.

Run ``python -m bench --help``; ``bench/README.md`` explains the method.
"""
