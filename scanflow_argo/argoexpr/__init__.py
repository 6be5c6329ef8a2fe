"""Argo's expression languages and the Go semantics they show users, as a leaf package (it imports only
``scanflow_argo.errors``): the engine, the agent specs and the stand-in images all use it.

- ``expr`` — the facade: ``eval_expr`` (expr-lang, ``{{=...}}``), ``eval_when`` (govaluate), ``eval_depends``,
  ``render``/``render_param`` (the text Argo substitutes), ``ExprError``;
- ``golang`` — the one Go-semantics module: ``time.ParseDuration`` and Argo's ``ParseStringToDuration``,
  ``fmt.Sprintf`` (``withSequence.format``), ``%v``/``json.Marshal`` text, ``strconv``, time layouts, RE2;
- ``exprlang``/``lexer``, ``govaluate``, ``depends``, ``jsonpath``, ``builtins``, ``sprig``, ``values``,
  ``timefuncs`` — the parsers and evaluators behind them; ``errors`` — ``ExprError`` and the internal ``Fail``.

Nothing is imported here, so ``import scanflow_argo.argoexpr.golang`` stays cheap (the stand-in image's ``sleep``).
"""
