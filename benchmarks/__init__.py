"""Latency benchmark suite for voicetriage, side by side with peer streaming servers.

``python -m benchmarks run`` replays real recorded calls in real time at rising
concurrency against our server and the peers (each in its own venv); ``python
-m benchmarks smoke`` is the few-second version the test suite runs. See
:mod:`benchmarks.cli`.
"""
