"""The work list of issue #12 ("Argo parity"): every corpus case the engine gets wrong today.

Each entry maps a case key (``<data file>/<case id>``, see ``argo_corpus/``) to the #12 kinds it
belongs to (the first is the root cause; the others are what the case checks next, once the first is
fixed) and a one-line diagnosis of what the engine does differently, read from ``scanflow_argo/engine``
at the time of writing. ``tests/engine/test_argo_corpus.py`` fails when a case outside this table is
wrong and when a case in it passes: fix a kind, run the corpus, delete the entries that now pass. The
table must shrink to empty.

Kinds 1-9 are the issue's; 10-16 are gaps the corpus found that the issue does not list.
"""

from __future__ import annotations

KINDS: dict[str, str] = {
    "1": "images as their real filesystems (argosay:v1/v2 with cowsay and /argosay, docker/whalesay)",
    "2": "a command missing from a known image fails the node at run time (executable file not found in $PATH)",
    "3": "progress: status.progress, node progress, ARGO_PROGRESS_FILE",
    "4": "node flags (retried, hooked), Retry nodes (also workflow-level), retry messages, retryStrategy.expression",
    "5": "memoization (memoizationStatus, ConfigMap cache entries, maxAge)",
    "6": "outputs of skipped/omitted nodes (defaults, nil to expressions, 'absent optional' errors)",
    "7": "lifecycle hooks (templates that run as on Argo, {{= workflow.status}} arguments, retries, synchronization)",
    "8": "expressions and metadata (pipes, concat, labelsFrom, aggregation, steps/tasks .id, template labels)",
    "9": "node records (outboundNodes, inputs on exit-handler nodes, children of nested steps, templateScope)",
    "10": "errors Argo reports at run time (invalid spec, missing WorkflowTemplate, bad volumeMount): the engine refuses before running, in its own words, and in Error where Argo says Failed",
    "11": "Argo's Terminate shutdown strategy: the local platform has only stop",
    "12": "resource templates creating Workflows with successCondition/failureCondition",
    "13": "templateRef names from {{item}} (resolved per expanded step at run time)",
    "14": "manifests as Kubernetes reads them (YAML timestamps stay strings)",
    "15": "artifacts: http input/output artifacts; optional artifacts passed on with from: '{{inputs.artifacts.x}}'; a volume mounted at /tmp above the state folder",
    "16": "status fields: estimatedDuration, the completed label",
}

KNOWN_GAPS: dict[str, tuple[tuple[str, ...], str]] = {
    # -- controller unit tests: dag_test.go --
    # -- exit_handler_test.go --
    # -- hooks_test.go --
    # -- inline_test.go --
    # -- operator_test.go --
    # -- steps_test.go --
    # -- operator_template_scope_test.go --
    # -- documentation --
    # -- e2e suites --
}
