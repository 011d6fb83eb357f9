"""Fuzz harnesses for the hand-written parsers (``make fuzz``; see README, Testing).

Each ``fuzz_<parser>.py`` holds a ``check(data)`` that asserts the parser's properties on one input
(importable without atheris: the normal test suite drives the same checks with hypothesis) and
``seeds()`` that builds a starting corpus from small real and generated files. ``fuzz.run`` runs
each harness under atheris (libFuzzer) for a set time.
"""
