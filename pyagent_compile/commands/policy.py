"""`pyagent policy check` and `pyagent policy pack-config`."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from dataclasses import replace

from pyagent_compile.canonical import to_json
from pyagent_compile.commands.compile import compile_targets
from pyagent_compile.commands.output import add_format_options, add_output_files_option, report
from pyagent_compile.diagnostics import Diagnostic
from pyagent_compile.policy import check_plan, load_catalog
from pyagent_compile.policy.packconfig import pack_config

POLICY_HELP = """\
Evaluate pyagent's policies (data sovereignty, zero-trust firewall, hygiene; see
policies/rules.yaml and docs/policies.md) on the plan of every environment. Each finding
is located on the spec line that caused it. Waivers live in the spec under `waivers:`.

Exit codes: 0 no mandatory rule fails, 1 a mandatory rule fails (or the spec is invalid).

examples:
  pyagent policy check examples/sovereign/swarm.yaml
  pyagent policy check examples/research/swarm.yaml --env prod --format sarif > policy.sarif
  pyagent policy check --format github --output sarif=policy.sarif --output junit=policy.xml
  pyagent policy pack-config examples/sovereign/swarm.yaml --env prod > crossguard.json
"""


def _today(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from exc


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "policy",
        help="check specs against pyagent's policies",
        description=POLICY_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="policy_command", metavar="COMMAND", required=True)
    check = commands.add_parser(
        "check",
        help="evaluate the policies on the plan of each environment",
        description=POLICY_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("specs", nargs="*", metavar="SPEC", help="spec files (default: from pyagent.toml)")
    _common(check)
    add_format_options(check)
    add_output_files_option(check)
    check.set_defaults(run=run_check)
    config = commands.add_parser(
        "pack-config",
        help="print the CrossGuard pack configuration of one stack",
        description="Print the --policy-pack-config JSON for `pulumi up --policy-pack "
        "policies/pulumi` of one environment: tier, mesh/Raft ports, waivers.",
    )
    config.add_argument("specs", nargs=1, metavar="SPEC")
    _common(config)
    add_format_options(config)
    config.set_defaults(run=run_pack_config)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", help="only this environment")
    parser.add_argument(
        "--today",
        type=_today,
        default=dt.datetime.now(dt.UTC).date(),
        metavar="YYYY-MM-DD",
        help="the date waivers' expiry is compared with (default: today, UTC)",
    )


def run_check(args: argparse.Namespace) -> int:
    results, diags = compile_targets(args, local=False)
    if any(not r.ok for _, r in results) or (diags and not results):
        return report(args, diags, len(results))
    catalog = load_catalog()
    passed = []
    for target, result in results:
        per_env = []
        for env in result.environments:
            assert env.plan is not None and env.swarm is not None
            found = check_plan(env.plan, env.swarm, env.doc, args.today)
            per_env.append((env.name, found))
            failing = {d.code for d in found}
            passed += [
                f"{rule.id} {rule.name} [{target.display} {env.name}]"
                for rule in catalog.values()
                if rule.applies_to(env.tier) and rule.id not in failing
            ]
        diags += merge_environments(per_env)
    code = report(args, diags, len(results), passed)
    if code == 0 and args.format == "text":
        envs = sum(len(r.environments) for _, r in results)
        sys.stderr.write(f"ok: {envs} environment(s) pass every mandatory policy\n")
    return code


def merge_environments(per_env: list[tuple[str, list[Diagnostic]]]) -> list[Diagnostic]:
    """One diagnostic per finding: a finding located on the same spec value in several
    environments is reported once; one that only some environments have names them."""
    envs_of: dict[Diagnostic, list[str]] = {}
    for name, found in per_env:
        for diag in found:
            envs_of.setdefault(diag, []).append(name)
    return [
        diag if len(names) == len(per_env) else replace(diag, message=f"{diag.message} [{', '.join(names)}]")
        for diag, names in envs_of.items()
    ]


def run_pack_config(args: argparse.Namespace) -> int:
    results, diags = compile_targets(args, local=False)
    envs = [env for _, r in results for env in r.environments]
    if diags or len(envs) != 1:
        if not diags:
            sys.stderr.write("error: pack-config needs exactly one environment; pass --env\n")
            return 2
        return report(args, diags, len(results))
    env = envs[0]
    assert env.plan is not None and env.swarm is not None
    sys.stdout.write(to_json(pack_config(env.plan, env.swarm, env.doc, args.today)))
    return 0
