"""The engine's benchmark, outside the engine package: ``python -m tests.bench --help``.

``timing``: the parts (a)-(i) (the notebook's formulation against the engine, optimisers, time to
quality, the preview, where a run's time goes, backends); ``benchset``: part (c) over a set of content ×
style pairs (``--set default [--quick]``); ``cli``: the command line. No file here is a pytest test
module (pytest collects ``test_*.py``); the benchmark's tests are in tests/stylecore/test_benchset.py.
"""
