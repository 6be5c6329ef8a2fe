"""Internals of ``scanflow_argo.engine.expr``: one module per language (``exprlang``, ``govaluate``, ``depends``),
the Go semantics they share (``golang``, ``values``, ``timefuncs``), expr's and Argo's functions (``builtins``,
``sprig``, ``jsonpath``) and the error type (``errors``). Import the public API from ``engine.expr``.
"""
