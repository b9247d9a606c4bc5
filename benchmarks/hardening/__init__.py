"""Hardening scenarios: fault injection, load, fuzzing and security checks, each with a short and a long form.

``python -m benchmarks.hardening [--long] [--only NAME ...]`` runs them and prints their figures (messages sent,
acknowledged, delivered, duplicated, lost; memory high-water marks; connections refused). The test suite runs
the short forms (``tests/hardening``) and fails on any problem a scenario reports.
"""
