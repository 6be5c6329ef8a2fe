"""Pod and run features, each owning its semantics and its checks, none importing the scheduler or a node
kind: ``volumes`` (and init containers), ``daemons`` (and sidecars), ``sync`` (mutexes and semaphores),
``lifecycle`` (Argo's ``hooks:`` with expressions), ``artifacts`` (the local repository), ``sandbox``
(processes and bubblewrap roots), ``images`` (what an image offers: runtime, files, PATH; ``argosay.sh`` is the twin of argosay:v2's ``/argosay``),
``run_hooks`` (the engine's ``RunHooks`` protocol; MLflow tracking implements it). They get the
``RunContext`` or plain callables, never the ``Executor``."""
