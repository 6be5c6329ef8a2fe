"""A Hera WorkflowTemplate with ``generate_name`` (Hera's examples misc/volume_mounts_wt.py and
misc/workflow_with_global_params.py): run, it is created first — named by the API server from the prefix — and
then submitted, so the run is ``corpus-tmpl-xxxxx-yyyyy``."""

from hera.workflows import Parameter, Steps, WorkflowTemplate, script


@script()
def shout(word: str):
    print(word.upper())


with (
    WorkflowTemplate(generate_name="corpus-tmpl-", entrypoint="main", arguments=Parameter(name="word", value="made")) as w,
    Steps(name="main"),
):
    shout(arguments={"word": "{{workflow.parameters.word}}"})

EXPECT = {"shout": "MADE"}
