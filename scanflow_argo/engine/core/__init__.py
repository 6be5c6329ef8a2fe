"""The engine's lowest layer: what every node kind and feature shares — the ``RunContext`` protocol a
kind runs against, ``Frame`` (a template invocation's variables), values as Argo formats them, the run's
state on disk, template lookup and ``{{…}}`` substitution, and duration glue over ``argoexpr.golang``.
Nothing here imports a kind, a feature, the scheduler or anything outside the engine but the core modules."""
