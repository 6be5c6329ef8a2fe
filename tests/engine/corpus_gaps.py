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

# Shared diagnoses (the engine's behaviour behind many cases).
ABSENT = "a reference to a skipped/omitted node's output without default leaves the input unresolved ('was not supplied' / 'no such variable'), not Argo's terminal error naming the 'absent optional'"
DYN_REF = "templateRef.name '{{item.wftmpl}}' is looked up when the run is prepared, so the run is refused ('WorkflowTemplate ... not found') instead of resolving it per item"

KNOWN_GAPS: dict[str, tuple[tuple[str, ...], str]] = {
    # -- controller unit tests: dag_test.go --
    "controller_dag/TestDAGReferTaskAggregatedOutputs": (
        ("8",),
        'aggregated task outputs are JSON-decoded values ([1,2]) where Argo keeps the strings it read (["1","2"])',
    ),
    "controller_dag/TestDAGTaskGroupIDReference": (
        ("8",),
        "{{tasks.fanout.id}} of an expanded task (its TaskGroup node's ID) is not in scope: 'no such variable at this point'",
    ),
    "controller_dag/TestDAGSkippedOutputRef": (("6",), ABSENT),
    "controller_dag/TestDAGSkippedOutputExprDefaultAggregate": (
        ("6",),
        "the DAG's outputs.parameters (valueFrom.expression with a default over a skipped task's output) are not recorded",
    ),
    "controller_dag/TestDAGSkippedRefDynamicTemplateName": (("13", "6"), DYN_REF),
    # -- exit_handler_test.go --
    # -- hooks_test.go --
    # -- inline_test.go --
    # -- operator_test.go --
    "controller_operator/TestParamAggregation": (
        ("8",),
        'aggregated task outputs are JSON-decoded values ([1,2]) where Argo keeps the strings it read (["1","2"])',
    ),
    # -- steps_test.go --
    "controller_steps/TestStepsStepGroupIDReference": (
        ("8",),
        "{{steps.fanout.id}} of an expanded step (its StepGroup node's ID) is not in scope: 'no such variable at this point'",
    ),
    "controller_steps/TestStepsWhenExprWithParamFilter": (
        ("8",),
        "an input parameter's value expression that reads another input (inputs.parameters.test) fails: 'unknown name inputs'",
    ),
    "controller_steps/TestStepsSkippedRefDynamicTemplateName": (("13", "6"), DYN_REF),
    "controller_steps/TestStepsWhenFalseSkipsDropPass": (("13",), DYN_REF + " (here the step is even skipped by its when)"),
    # -- operator_template_scope_test.go --
    # -- documentation --
    # -- e2e suites --
    "e2e_cluster_workflow_template/TestClusterWorkflowFromWorkflowTemplateHasLabel": (
        ("8",),
        "a Workflow from a ClusterWorkflowTemplate gets no workflows.argoproj.io/cluster-workflow-template label",
    ),
    "e2e_estimated_duration/TestWorkflowTemplate": (
        ("8", "16"),
        "estimatedDuration is taken from the previous run with the same workflows.argoproj.io/workflow-template label "
        "(features/estimation.py, as estimator_factory.go NewEstimator), but a Workflow from a WorkflowTemplate gets no "
        "such label yet (see e2e_workflow_template/TestWorkflowFromWorkflowTemplateHasLabel)",
    ),
    "e2e_functional/TestWorkflowMetadataLabelsFrom": (
        ("8",),
        "workflowMetadata.labelsFrom (labels from expressions) is not applied",
    ),
    "e2e_functional/TestJSONVariables": (
        ("8",),
        "workflow.labels.json, workflow.annotations.json and workflow.parameters.json are no variables, so the pod's args fail to resolve",
    ),
    "e2e_functional/TestLoopEmptyParam": (
        ("8",),
        "withParam of an empty output is an error ('not a JSON list') where Argo skips the step ('Skipped, empty params')",
    ),
    "e2e_functional/TestDAGEmptyParam": (
        ("8",),
        "withParam of an empty output is an error ('not a JSON list') where Argo skips the task ('Skipped, empty params')",
    ),
    "e2e_functional/TestDAGOmittedOutputRef": (("6",), ABSENT),
    "e2e_functional/TestDAGSkippedOutputRef": (("6",), ABSENT),
    "e2e_functional/TestDAGSkippedVolumeRefProducerDefault": (
        ("6",),
        "spec.volumes referencing a skipped task's output does not take the producer's valueFrom.default: 'no such variable at this point'",
    ),
    "e2e_functional/TestDAGSkippedArtifactSubPathRef": (
        ("6",),
        "an artifact subPath referencing a skipped task's output is used unresolved ('{{tasks...}}' is not in the artifact) instead of Argo's 'absent optional' error",
    ),
    "e2e_functional/TestStepsSkippedWithParamRef": (("6",), ABSENT),
    "e2e_functional/TestStepsSkippedOutputRef": (("6",), ABSENT),
    "e2e_functional/TestStepsWhenExprFilter": (
        ("8",),
        "an input parameter's value expression that reads another input (inputs.parameters.test) fails: 'unknown name inputs'",
    ),
    "e2e_functional/TestParameterAggregationDAGWithRetry": (
        ("8",),
        'aggregated outputs of the retried fan-out are JSON-decoded values ([1,2,3]) where Argo keeps the strings it read (["1","2","3"])',
    ),
    "e2e_functional/TestParameterAggregationStepsWithRetry": (
        ("8",),
        'aggregated outputs of the retried fan-out are JSON-decoded values ([1,2,3]) where Argo keeps the strings it read (["1","2","3"])',
    ),
    "e2e_suspend/TestSuspendNodeTimeoutWithoutDefaultValue": (
        ("9",),
        "the suspend node now errors with Argo's \"raw output parameter 'message' has not been set and does not have a "
        "default value\", but the workflow's message is the Steps node's \"child '…' failed\"; Argo's operator would "
        'say "step group deemed errored due to child … error: raw output …" (steps.go executeStepGroup), not '
        "part of the sentence either: the Go suite TestSuspendSitue has no suite.Run, so upstream never runs this assertion",
    ),
    "e2e_workflow_configmap_substitution/TestNameSubstitution": (
        ("8",),
        "configMapKeyRef.name '{{ workflow.parameters.cm-name}}' is not substituted before the ConfigMap is read, so the input has no value",
    ),
    "e2e_workflow_template/TestWorkflowFromWorkflowTemplateHasLabel": (
        ("8",),
        "a Workflow from a WorkflowTemplate gets no workflows.argoproj.io/workflow-template label",
    ),
}
