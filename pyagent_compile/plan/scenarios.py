"""The scenarios of work.json (contracts/work.py `Scenario`): each scenario file a `verify` step
names, normalised for the node: every key present, `@path` inputs replaced by the files' text."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyagent_compile.contracts import work as contract
from pyagent_compile.load.scenario import LoadedScenario
from pyagent_compile.model.scenario import TEXT_TYPES
from pyagent_compile.model.spec import Swarm


def scenario_inputs(loaded: LoadedScenario, declared: Mapping[str, str]) -> dict[str, Any]:
    """The scenario's inputs with each text input written `@path` replaced by the file's text."""
    assert loaded.scenario is not None
    inputs = dict(loaded.scenario.inputs)
    for name, file in loaded.files.items():
        if declared.get(name) in TEXT_TYPES and file.text is not None:
            inputs[name] = file.text
    return dict(sorted(inputs.items()))


def scenario_contract(loaded: LoadedScenario, swarm: Swarm) -> contract.Scenario:
    """Assumes the scenario loaded and passed check/scenarios.py (its manifest exists)."""
    scenario = loaded.scenario
    assert scenario is not None
    manifest = swarm.manifests[scenario.manifest]
    expect = scenario.expect
    return contract.Scenario(
        name=scenario.metadata.name,
        manifest=scenario.manifest,
        inputs=scenario_inputs(loaded, manifest.inputs),
        stubs=contract.ScenarioStubs(
            tools=[contract.ScenarioToolStub(tool=s.tool, result=s.result) for s in scenario.stubs.tools],
            model=contract.ScenarioModelStub(answers=list(scenario.stubs.model.answers)),
        ),
        expect=contract.ScenarioExpect(
            state=expect.state,
            error_code=expect.error_code,
            steps=dict(expect.steps),
            outputs=[
                contract.ScenarioAssertion(
                    output=a.output, path=a.path, equals=a.equals, contains=a.contains, exists=a.exists
                )
                for a in expect.outputs
            ],
        ),
    )


def scenario_contracts(scenarios: Mapping[str, LoadedScenario], swarm: Swarm) -> dict[str, contract.Scenario]:
    return {key: scenario_contract(loaded, swarm) for key, loaded in sorted(scenarios.items())}
