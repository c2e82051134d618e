"""The one table of diagnostic codes. `pyagent explain CODE` prints an entry.

Codes are stable: a code is never reused for a different problem. Ranges:
PA0xx usage and project files, PA1xx reading and parsing, PA2xx the schema,
PA3xx semantic checks (PA33x: the tools lock and mcp steps against it), PA5xx policies,
PA6xx the local target (`pyagent up --local`, `status`, `down`), PA70x tasks as the CLI checks
them (`pyagent run`, `task`, `cancel`), PA72x tasks and steps as the swarm runs them (the codes a
failed task or step carries), PA73x `mcp` steps (a core's MCP servers, native/crates/pyagent-mcp).
"""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2


@dataclass(frozen=True, slots=True)
class CodeInfo:
    title: str
    explanation: str
    exit_code: int = EXIT_INVALID


CODES: dict[str, CodeInfo] = {
    "PA001": CodeInfo(
        "unknown environment",
        "`--env` named an environment that the spec does not declare under `environments:`.",
        EXIT_USAGE,
    ),
    "PA002": CodeInfo(
        "invalid project file",
        "pyagent.toml could not be read or does not have the expected shape: a `[[spec]]` table "
        "per spec with `path` (and optionally `out`).",
        EXIT_USAGE,
    ),
    "PA003": CodeInfo(
        "nothing to compile",
        "No spec was given on the command line and no pyagent.toml was found in the current directory or its parents.",
        EXIT_USAGE,
    ),
    "PA004": CodeInfo(
        "stale output",
        "`pyagent compile --check` found files under the output folder that differ from what "
        "the specs compile to. Run `pyagent compile` and commit the result.",
        EXIT_INVALID,
    ),
    "PA005": CodeInfo(
        "output conflict",
        "A file in the output folder was not written by pyagent (it has no pyagent marker) and "
        "would be overwritten. pyagent never overwrites files it did not generate; move it away "
        "or choose another `--out`.",
        EXIT_USAGE,
    ),
    "PA100": CodeInfo(
        "cannot read input",
        "The file does not exist, is a directory, or cannot be opened.",
        EXIT_USAGE,
    ),
    "PA101": CodeInfo(
        "YAML syntax error",
        "The file is not well-formed YAML. The position is where the parser gave up; the mistake "
        "is often on the line before (an indentation change or an unclosed quote or bracket).",
    ),
    "PA102": CodeInfo(
        "duplicate key",
        "A mapping has the same key twice. YAML parsers silently keep the last one; pyagent "
        "refuses, because the first value is then lost without a word. Both places are shown.",
    ),
    "PA103": CodeInfo(
        "alias expansion too large",
        "Anchors and aliases (`&a` / `*a`) expand to more values than any real spec needs "
        "(the 'billion laughs' attack) or refer to themselves. Write the values out or use "
        "fewer nested aliases.",
    ),
    "PA104": CodeInfo(
        "unsupported YAML tag",
        "Only the plain YAML types are accepted (strings, numbers, booleans, null, lists and "
        "mappings). Tags such as `!!python/object` or custom `!Tags` could construct objects and "
        "are refused.",
    ),
    "PA105": CodeInfo(
        "not a text file",
        "The input is binary or is not valid UTF-8. Specs are UTF-8 text.",
        EXIT_USAGE,
    ),
    "PA106": CodeInfo(
        "not one document",
        "A spec file holds exactly one YAML document; this one is empty or has several (`---`).",
    ),
    "PA107": CodeInfo(
        "input too large",
        "The file is larger than pyagent reads (32 MiB). A swarm spec of thousands of pools is "
        "well under a megabyte; this is probably not a spec.",
        EXIT_USAGE,
    ),
    "PA108": CodeInfo(
        "invalid mapping key",
        "Mapping keys must be plain strings (a list or a mapping as a key, or a null key, is not allowed).",
    ),
    "PA109": CodeInfo(
        "spec is not a mapping",
        "The top level of a spec must be a mapping with `apiVersion`, `kind`, `metadata` ...",
    ),
    "PA110": CodeInfo(
        "unsupported spec format",
        "pyagent reads `.yaml`/`.yml` specs (and `.cue` through the `cue` evaluator).",
        EXIT_USAGE,
    ),
    "PA120": CodeInfo(
        "CUE syntax error",
        "The CUE file does not parse. The position is where the CUE parser gave up; often an "
        "unclosed brace or bracket, or a missing comma between fields on one line.",
    ),
    "PA121": CodeInfo(
        "conflicting values",
        "CUE unifies every value written for a field, and two of them disagree (e.g. `replicas: 3` "
        "in one place and `replicas: 5` in another, or two files of one package). Both places are "
        "shown. To let one file override another, give the base a default: `replicas: *3 | int`.",
    ),
    "PA122": CodeInfo(
        "incomplete value",
        "A field is still a type or a constraint (`int`, `>=1`, `string | null`) where the spec needs "
        "a concrete value. Give it a value, or a default with `*`.",
    ),
    "PA123": CodeInfo(
        "undefined reference",
        "A CUE expression refers to a name that is not defined (a misspelt field, a hidden `_name` "
        "from another package, or a definition the import does not export).",
    ),
    "PA124": CodeInfo(
        "cannot load CUE package",
        "An import could not be resolved or the package is inconsistent. To import the schema, the "
        "spec must be inside a CUE module (`cue.mod/module.cue`) that has the schema under "
        "`cue.mod/pkg/pyagent.dev/swarm/` (see docs/cue.md).",
        EXIT_USAGE,
    ),
    "PA125": CodeInfo(
        "cue is not installed",
        "Reading a `.cue` spec needs the pinned `cue` command and pyagent's `cuepos` helper. Run "
        "`.ci/install-cue.sh` and put `.tools/bin` on PATH, or set PYAGENT_CUE and PYAGENT_CUEPOS. "
        "YAML specs do not need them.",
        EXIT_USAGE,
    ),
    "PA126": CodeInfo(
        "structural cycle",
        "A CUE value refers to itself (for example `a: b` and `b: a` or a struct that contains "
        "itself), so it has no finite value.",
    ),
    "PA127": CodeInfo(
        "vendored CUE schema out of date",
        "A warning: the copy of the schema under `cue.mod/pkg/pyagent.dev/swarm/` differs from the "
        "schema of this pyagent (generated from its models). CUE's own checks then use the old "
        "schema; pyagent still checks with its own. Copy `specs/cue/swarm.cue` over it.",
    ),
    "PA128": CodeInfo(
        "CUE package only partly read",
        "A warning: the `.cue` file given belongs to a package with other files in the same folder, "
        "and a single file is evaluated on its own. To unify the whole package (a base and one file "
        "per environment, say), give pyagent the folder.",
    ),
    "PA129": CodeInfo(
        "CUE evaluation error",
        "The CUE evaluator reported a problem pyagent has no more specific code for; its message and "
        "positions are shown as CUE gave them.",
    ),
    "PA201": CodeInfo(
        "unknown field",
        "The key is not part of the schema at this place. Check the spelling (a suggestion is "
        "shown when one is close) or the indentation: the key may belong to another mapping.",
    ),
    "PA202": CodeInfo(
        "missing required field",
        "A field the schema requires is absent. The position is the mapping that lacks it.",
    ),
    "PA203": CodeInfo(
        "wrong type",
        "The value has the wrong type (for example a string where a number is expected, or a "
        "list where a mapping is expected). Quoted numbers are strings.",
    ),
    "PA204": CodeInfo(
        "unknown reference",
        "A name refers to something the spec does not define: a core, a pool, a logic manifest, "
        "a step or a tool. A suggestion is shown when a defined name is close.",
    ),
    "PA205": CodeInfo(
        "value out of range",
        "The number is outside the range the schema allows.",
    ),
    "PA206": CodeInfo(
        "invalid value",
        "The value does not have the required form: a DNS-1123 name, a Kubernetes quantity "
        "(`500m`, `16Gi`), a CIDR, a duration, a public key, or one of a fixed set of words.",
    ),
    "PA207": CodeInfo(
        "unsupported apiVersion or kind",
        "This pyagent reads `apiVersion: pyagent.dev/v1alpha1` and `kind: Swarm`.",
    ),
    "PA208": CodeInfo(
        "file not found",
        "A file that the spec names (a scenario file, an overlay file) does not exist relative to the spec's folder.",
    ),
    "PA301": CodeInfo(
        "duplicate name",
        "Two entries in a list that is keyed by name (steps, tools, firewall rules) share a "
        "name. Both places are shown.",
    ),
    "PA302": CodeInfo(
        "unknown GPU model",
        "The GPU model is not in pyagent's catalog. `pyagent explain PA302` lists the models; "
        "the catalog gives each model's memory and the node label used to schedule on it.",
    ),
    "PA303": CodeInfo(
        "core needs a GPU",
        "A core that declares `resources.gpuMemory` is placed on a pool whose hardware has no "
        "GPU, or whose GPU has less memory than the core needs.",
    ),
    "PA304": CodeInfo(
        "KV capacity exceeds GPU memory",
        "The KV_v2 cache capacity is larger than the GPU memory of a pool that runs it. Lower "
        "`memory.kv.capacity` or use `gpuFraction`.",
    ),
    "PA305": CodeInfo(
        "Raft quorum at risk",
        "Outside dev, the voting members must number at least 3 and be odd: an even count adds "
        "a member without adding a tolerated failure, and fewer than 3 tolerate none.",
    ),
    "PA306": CodeInfo(
        "port collision",
        "Two listeners of a node use the same port (mesh, raft, grpc, metrics, or an MCP tool).",
    ),
    "PA307": CodeInfo(
        "invalid firewall rule",
        "A firewall rule is not concrete: it has no ports, or it opens a port no pod listens on.",
    ),
    "PA308": CodeInfo(
        "overlay adds an entry the base lacks",
        "An environment overlay names a pool, core or manifest that the base spec does not "
        "define. Overlays adjust what the base declares; a typo here would otherwise create a "
        "half-defined entry.",
    ),
    "PA309": CodeInfo(
        "logic manifest cycle",
        "The steps of a logic manifest must form a DAG; these steps depend on each other in a "
        "circle. Every step on the cycle is shown.",
    ),
    "PA310": CodeInfo(
        "type mismatch between steps",
        "A step reads an input of one type from a step or manifest input of another type.",
    ),
    "PA311": CodeInfo(
        "pool runs no core",
        "A worker pool must run at least one core, or it would start agents that can do nothing.",
    ),
    "PA312": CodeInfo(
        "image not pinned",
        "Outside dev the node image must be pinned by digest (`...@sha256:<64 hex>`), so that "
        "what was reviewed is what runs.",
    ),
    "PA313": CodeInfo(
        "environment extends cycle",
        "Environments that `extends` one another in a circle have no base to start from. Every "
        "environment on the circle is named; break it by letting one extend nothing (the base spec).",
    ),
    "PA314": CodeInfo(
        "cort step without a model endpoint",
        "A `cort` step reasons with its manifest's core's model, so that model must name the "
        "server to ask: `model: {name, endpoint}` with the base URL of an OpenAI-compatible "
        "chat-completions server (vLLM, SGLang, llama.cpp's server, Ollama), e.g. "
        "http://127.0.0.1:8080/v1. A bare model name says which model, not where it is served.",
    ),
    "PA330": CodeInfo(
        "tool server did not answer",
        "`pyagent tools lock` could not list a tool server's tools: its command did not start (not "
        "installed, not on PATH), it exited, it did not answer the MCP handshake or `tools/list` within "
        "the timeout (`--timeout`), or an http server's URL did not answer. The server's last lines of "
        "stderr are shown. stdio servers start with the spec's folder as working folder and a clean "
        "environment (HOME, LOGNAME, PATH, SHELL, TERM, USER only).",
    ),
    "PA331": CodeInfo(
        "tools lock out of date",
        "A warning: the spec declares a tool server that the tools lock does not list, or declares it "
        "differently (another command, URL or port) than when it was locked. Steps calling it are not "
        "checked. Run `pyagent tools lock SPEC` and commit the lock.",
    ),
    "PA332": CodeInfo(
        "unknown tool method",
        "An `mcp` step's `tool: <server>.<method>` names a method (an MCP tool) that the server did not "
        "list when it was locked. The methods it lists are shown; `pyagent tools lock` refreshes them.",
    ),
    "PA333": CodeInfo(
        "missing tool argument",
        "The tool's input schema requires an argument that the step gives neither under `arguments:` "
        "nor as a bound input under `inputs:` (bound inputs are passed as arguments of the same name).",
    ),
    "PA334": CodeInfo(
        "tool argument does not match its schema",
        "An argument's value under `arguments:` fails the tool's input schema (wrong JSON type, a value "
        "outside its enum or range), or an input bound under `inputs:` has a type that cannot be what "
        "the schema asks for (an int where it takes a string). int is a JSON integer, bool a boolean, "
        "string, diff, trace, report and file are strings; json and verdict are not checked.",
    ),
    "PA335": CodeInfo(
        "unknown tool argument",
        "The step passes an argument the tool's input schema does not declare. An error when the "
        "schema forbids other properties (`additionalProperties: false`); otherwise a warning, since "
        "the server will most likely ignore it (often a misspelt name).",
    ),
    "PA336": CodeInfo(
        "invalid tools lock",
        "The tools lock beside the spec cannot be read, is not JSON in the shape `pyagent tools lock` "
        "writes, or was edited by hand (a schema does not match its recorded hash). Regenerate it.",
        EXIT_USAGE,
    ),
    "PA337": CodeInfo(
        "tools lock would change",
        "`pyagent tools lock --locked` (for CI) found that the servers now answer differently from the "
        "committed lock, or that the spec's tool servers changed: a server's version, a tool added or "
        "removed, a changed schema or description. Run `pyagent tools lock`, review and commit the diff.",
    ),
    "PA338": CodeInfo(
        "ambiguous tool",
        "An `mcp` step names only the server (`tool: <server>`), which is allowed when the server has "
        "exactly one tool; this one lists several. Write `tool: <server>.<method>`.",
    ),
    "PA339": CodeInfo(
        "MCP client not installed",
        "`pyagent tools lock` talks to the servers through the official MCP Python SDK, which the "
        "compiler does not need. Install it with `pip install 'pyagent[tools]'`.",
        EXIT_USAGE,
    ),
    "PA340": CodeInfo(
        "scenario of an unknown manifest",
        "A scenario's `manifest:` names no manifest of the spec. A scenario is one task of one of the "
        "spec's manifests (docs/scenarios.md).",
    ),
    "PA341": CodeInfo(
        "scenario inputs do not fit the manifest",
        "A scenario gives an input its manifest does not declare, leaves out one it declares, or gives "
        "one of the wrong type: text types (string, diff, trace, report, file) take a string or "
        '"@path", int a whole number, bool true or false, json and verdict any value.',
    ),
    "PA342": CodeInfo(
        "scenario input file unreadable",
        "A text input written `@path` names a file that cannot be read as UTF-8 text. The path is "
        "relative to the scenario file.",
    ),
    "PA343": CodeInfo(
        "tool call without a stub",
        "An `mcp` step the scenario's task can reach (in its manifest or one it delegates to) calls a "
        "tool that has no entry under `stubs.tools`. A scenario never calls real servers: record what the "
        "tool returns and add it, with `tool:` written exactly as the step writes it.",
    ),
    "PA344": CodeInfo(
        "model answers missing",
        "The scenario's task has `cort` steps, which ask the core's model, and the scenario has no "
        "`stubs.model.answers` to replay (an error: a scenario never calls a real model server), or "
        "fewer than the steps ask: 1 + rounds x (alternatives + 1) each (a warning: a request past the "
        "last answer fails its step).",
    ),
    "PA345": CodeInfo(
        "scenario runs itself",
        "The scenario's task reaches a `verify` step (in its manifest or one it delegates to) that runs "
        "this same scenario again, directly or through other scenarios: it would never end. Verify a "
        "manifest from a separate one, e.g. a `<manifest>-checked` manifest whose only step is the verify "
        "step.",
    ),
    "PA346": CodeInfo(
        "expectation on an unknown step",
        "`expect.steps` names a step id that the scenario's manifest does not have.",
    ),
    "PA347": CodeInfo(
        "assertion on an unknown output",
        "An `expect.outputs[].output` names no output of the scenario's manifest (its `outputs:`).",
    ),
    "PA348": CodeInfo(
        "unused tool stub",
        "A warning: no `mcp` step the scenario's task can reach calls this tool, so its stub is never "
        "replayed; often a typo of the tool's name.",
    ),
    "PA349": CodeInfo(
        "unknown expected error code",
        "`expect.errorCode` is not a pyagent error code, so no task can fail with it. "
        "`pyagent explain --list` lists the codes.",
    ),
    "PA501": CodeInfo(
        "plaintext secret in a rendered object",
        "A rendered object carries secret material in plaintext: a Secret with `data`/`stringData`, a "
        "private key, or a secret-looking environment variable with a literal value. pyagent renders "
        "secrets by reference only (`secretRef`, `valueFrom`), or sealed to the owner's public key.",
    ),
    "PA502": CodeInfo(
        "personal data outside the allowed jurisdictions",
        "Every pool may hold personal data (the soul, agent memory, the KV cache of the owner's "
        "sessions), so every pool must be placed (`placement.jurisdiction`) in one of "
        "`sovereignty.personalData.jurisdictions`. A pool without a jurisdiction cannot be shown to comply.",
    ),
    "PA503": CodeInfo(
        "personal data jurisdictions not declared",
        "The swarm has an owner, so its memory and KV cache hold the owner's data, but "
        "`sovereignty.personalData.jurisdictions` is not declared: nothing restricts where it may live.",
    ),
    "PA504": CodeInfo(
        "peers receive more than work payloads",
        "A node's configuration lets peers outside the owner's trust set receive more than work "
        "payloads (`sovereignty.peers.share` must be `work-payloads`).",
    ),
    "PA505": CodeInfo(
        "memory volume not on an encrypted storage class",
        "Outside dev, the persistent volume that holds Raft log, memory and KV spill must name a "
        "storage class (`hardware.storageClass`) that encrypts at rest; the cluster default is unknown.",
    ),
    "PA506": CodeInfo(
        "image not pinned by digest",
        "Outside dev every container image is pinned by digest (`@sha256:<64 hex>`), so that what was "
        "reviewed is what runs.",
    ),
    "PA510": CodeInfo(
        "namespace without default-deny NetworkPolicy",
        "Every namespace gets a NetworkPolicy that selects all pods (`podSelector: {}`) for both "
        "Ingress and Egress and allows nothing; everything else is an explicit allow.",
    ),
    "PA511": CodeInfo(
        "allow rule not concrete",
        "Every NetworkPolicy allow rule names its peers and its ports; an empty peer list means "
        '"everyone" and an empty port list "every port". Ingress from 0.0.0.0/0 (or ::/0) needs a '
        "waiver with a reason.",
    ),
    "PA512": CodeInfo(
        "mesh or Raft port open beyond the swarm",
        "The mesh and Raft ports carry consensus and gossip between members; only the swarm's own "
        "pods may reach them, never an IP block or another namespace.",
    ),
    "PA513": CodeInfo(
        "unrestricted egress",
        "Egress goes to named peers only; an egress rule to 0.0.0.0/0, ::/0 or any block wider than "
        "/8 (/16 for IPv6) lets a compromised agent send data anywhere.",
    ),
    "PA520": CodeInfo(
        "resource requests or limits missing",
        "Every container sets CPU and memory requests and limits, so one agent cannot starve a node.",
    ),
    "PA521": CodeInfo(
        "privileged container",
        "No container is privileged, may escalate privileges, adds capabilities, or shares the host's "
        "network, PID or IPC namespace.",
    ),
    "PA522": CodeInfo(
        "writable root file system",
        "Containers run with `readOnlyRootFilesystem: true`; writable state lives on named volumes.",
    ),
    "PA523": CodeInfo(
        "container may run as root",
        "Pods run with `runAsNonRoot: true` and a non-zero `runAsUser`.",
    ),
    "PA524": CodeInfo(
        "service account token auto-mounted",
        "Neither the ServiceAccount nor the pod auto-mounts an API token. The tokens a node needs are "
        "projected explicitly, each for its purpose (docs/kubernetes.md). Waive this rule for a pod "
        "that really needs the automatic one.",
    ),
    "PA595": CodeInfo(
        "cannot read a git revision",
        "`pyagent diff BASE HEAD SPEC` reads SPEC's folder at two git revisions; git is not "
        "installed, the spec is not inside a git work tree, or a revision does not exist or "
        "does not contain the spec. Use `.` for the working tree.",
        EXIT_USAGE,
    ),
    "PA590": CodeInfo(
        "expired policy waiver",
        "A waiver under `waivers:` is past its `expires` date. Fix the finding it waived, or renew the "
        "waiver with a new reason and date after review.",
    ),
    "PA591": CodeInfo(
        "waiver matches nothing",
        "A waiver names a rule or object that produces no finding: the problem was fixed (delete the "
        "waiver) or the waiver has a typo (it waives nothing).",
    ),
    "PA601": CodeInfo(
        "local target too large",
        "A warning: the local target runs one node process per replica on loopback, and each swarm "
        "has a slot of 200 loopback ports (4 per node), so at most 50 nodes; a larger swarm's "
        "Kubernetes stacks compile, its local target is not rendered. To run it locally, lower "
        "`replicas` in the `dev` environment's overrides: the local target takes its values from "
        "`dev` (else the base spec).",
    ),
    "PA602": CodeInfo(
        "reserved environment name",
        "`local` names the local target that `pyagent compile` renders for every spec (node "
        "processes on loopback); an environment of the spec cannot use that name.",
    ),
    "PA610": CodeInfo(
        "not a local stack",
        "`pyagent up --local`, `status` and `down` take a local stack folder, "
        "`stacks/<swarm>/local/`, written by `pyagent compile` (it holds local.json and nodes/). "
        "Run `pyagent compile` first, or check the path.",
        EXIT_USAGE,
    ),
    "PA611": CodeInfo(
        "node daemon not available",
        "The node daemon `pyagent-node` was not found and could not be built. pyagent looks at "
        "$PYAGENT_NODE_BIN, then native/target/host/release/pyagent-node, then builds it with "
        "`cd native && cargo build --release --locked -p pyagent-node` (needs cargo). "
        "The build log's last lines are shown.",
    ),
    "PA612": CodeInfo(
        "port in use",
        "A loopback port the local target needs is taken by another process (perhaps another "
        "swarm, or a previous run that was not stopped). Stop it (`pyagent down <stack>`), or "
        "find the owner with `ss -ltnp 'sport = :PORT'`.",
    ),
    "PA613": CodeInfo(
        "key generation failed",
        "`pyagent-node keygen` failed for a node; its output is shown. Check that the data directory is writable.",
    ),
    "PA614": CodeInfo(
        "node exited",
        "A node process exited while the swarm was starting, or is not running. The last lines "
        "of its log (data/<node>/node.log) are shown.",
    ),
    "PA615": CodeInfo(
        "no leader elected",
        "The nodes are running but did not elect a Raft leader in time. A majority of voters "
        "must be running and able to reach each other on loopback; the status table and the "
        "logs under data/<node>/ show which ones are not.",
    ),
    "PA616": CodeInfo(
        "already running",
        "The local swarm already has running nodes (their pid files point at live processes). "
        "`pyagent status` shows them; `pyagent down` stops them.",
        EXIT_USAGE,
    ),
    "PA617": CodeInfo(
        "node not responding",
        "A node's process is alive but its gRPC API did not answer the status call in time, "
        "or a node is not running at all.",
    ),
    "PA618": CodeInfo(
        "node killed",
        "A node did not exit within the timeout after SIGTERM and was sent SIGKILL. Its data is "
        "kept; the daemon recovers from its durable log on the next start.",
    ),
    "PA619": CodeInfo(
        "local target not installed",
        "`pyagent up`, `status` and `down` talk to the nodes over gRPC and sign commands, which "
        "needs the `local` extra (grpcio, protobuf, cryptography) and pyagent's native extension. "
        "The compiler itself needs neither. Install them with `pip install 'pyagent[local]'`.",
        EXIT_USAGE,
    ),
    "PA620": CodeInfo(
        "node not catching up",
        "A node answers but its applied index stays below what the leader had committed, for "
        "longer than a follower under load needs to catch up: it is stuck (for example after "
        "damage to its log) or far behind. The swarm is reported DEGRADED; the node's log says why.",
    ),
    "PA621": CodeInfo(
        "node not ready",
        "A node answers but its /healthz says it is not ready: it is rejoining after damage to its "
        "Raft state (it does not vote until it has caught up), behind, or stuck. A warning: a "
        "rejoining node normally catches up by itself within seconds (docs/raft-recovery.md).",
    ),
    "PA622": CodeInfo(
        "dashboard cannot listen",
        "`pyagent dashboard` could not bind its address: the port is in use or the address is not "
        "this machine's. Give another with `--listen HOST:PORT` (port 0 picks a free one).",
        EXIT_USAGE,
    ),
    "PA623": CodeInfo(
        "dashboard would be reachable from other machines",
        "`--listen` named an address other than loopback. The dashboard is read-only and asks for "
        "its token, but it shows the swarm's tasks and their inputs' shape to whoever reaches it: "
        "say `--allow-remote` to mean it, and keep the token to yourself.",
        EXIT_USAGE,
    ),
    "PA624": CodeInfo(
        "dashboard token unreadable",
        "`--token-file` could not be read, or holds fewer than 16 characters: a short token can be "
        "guessed. Write a long random one to the file, or leave the option out for a new one per run.",
        EXIT_USAGE,
    ),
    "PA650": CodeInfo(
        "scenario failed",
        "`pyagent scenario run`: a scenario's task did not end as its `expect` says (a check failed; "
        "the message lists each), or the verify task itself failed (its error code is given).",
    ),
    "PA651": CodeInfo(
        "no scenarios",
        "`pyagent scenario run` found no scenario for the spec: no `verify` step names one and there "
        "is no scenarios/*.yaml beside the spec.",
        EXIT_USAGE,
    ),
    "PA652": CodeInfo(
        "scenario timed out",
        "A scenario's verify task did not end within `--timeout` seconds; it was cancelled.",
    ),
    "PA653": CodeInfo(
        "no verdict",
        "A scenario's verify task succeeded without a readable `verdict` output "
        "(`{scenario, passed, task, state, checks}`): the node and the CLI disagree on the contract.",
    ),
    "PA654": CodeInfo(
        "scenario swarm did not start",
        "`pyagent scenario run` could not bring up the spec's local swarm (the message says why: the "
        "daemon, a port in use, no leader), or the spec has no local target (too many nodes, PA601). Nothing ran.",
        EXIT_USAGE,
    ),
    "PA701": CodeInfo(
        "no work.json in the stack",
        "The local stack has no readable work.json (the manifests and cores the swarm runs). "
        "`pyagent compile` renders it beside local.json.",
        EXIT_USAGE,
    ),
    "PA702": CodeInfo(
        "unknown manifest", "`pyagent run` named a manifest the spec does not declare under `manifests:`.", EXIT_USAGE
    ),
    "PA703": CodeInfo(
        "wrong inputs",
        "An input was given that the manifest does not declare, given twice, not as name=value, or a "
        "declared input was not given. Every input the manifest declares is required.",
        EXIT_USAGE,
    ),
    "PA704": CodeInfo(
        "input of the wrong type",
        "An input's value is not of the type the manifest declares: int is a whole number, bool is "
        "true or false, json and verdict are JSON values; text types take any text or @path.",
        EXIT_USAGE,
    ),
    "PA705": CodeInfo(
        "swarm not reachable",
        "No node of the swarm answered as leader in time, or the swarm was never started (no node "
        "has a key). `pyagent status STACK` shows each node.",
    ),
    "PA706": CodeInfo(
        "task refused",
        "The swarm's state machine refused the submission or cancellation; the message says why "
        "(for example a task id that exists with other inputs).",
    ),
    "PA707": CodeInfo(
        "task did not succeed", "The task ended failed or cancelled; `pyagent task STACK ID` shows each step."
    ),
    "PA708": CodeInfo("unknown task", "No task with this id was ever submitted to the swarm.", EXIT_USAGE),
    "PA720": CodeInfo(
        "step failed or timed out",
        "A step ran past its `timeout` (after its `retries`), or could not complete. The step's error says which.",
    ),
    "PA721": CodeInfo(
        "step kind not run yet",
        "The task reached a step whose kind this version of the node does not run (every kind of the "
        "spec runs today: a task submitted by a newer client may name one an older node lacks). The task "
        "fails at that step, after every step before it ran.",
    ),
    "PA722": CodeInfo(
        "sandbox unavailable",
        "The sandbox could not run the step's command: a missing tool (bubblewrap), an isolation "
        "level below the node's `minIsolation`, or cgroups it could not create. The error names "
        "the sandbox's own code (sandbox.*) and a hint; docs/sandbox.md lists them.",
    ),
    "PA723": CodeInfo(
        "task cancelled", "The task was cancelled (`pyagent cancel`); its steps still going were stopped."
    ),
    "PA724": CodeInfo(
        "parent task ended", "A delegated sub-task was cancelled because the task that delegated it ended."
    ),
    "PA725": CodeInfo(
        "delegated task failed",
        "A `delegate` step's sub-task was refused, failed or was cancelled; the error names it "
        "(`pyagent task STACK <task>.<step>`).",
    ),
    "PA726": CodeInfo(
        "nothing to delegate to",
        "A `delegate` step names a core that runs no manifest, or several without `manifest:`, or "
        "the node cannot read work.json.",
    ),
    "PA727": CodeInfo(
        "step input has no value",
        "A step's input is bound to a value that does not exist (an output of a step that produced none).",
    ),
    "PA728": CodeInfo(
        "step image unavailable",
        "A `sandbox` step names an `image:` that its node cannot provide: the node has no OCI image layout, the "
        "image is not in it (the error lists what is), or a blob does not match its digest. Put the image into "
        "the node's layout: `skopeo copy docker://REF oci:<stack>/images:REF` on the local target, the "
        "`/var/lib/pyagent/images` layout of the node's volume on Kubernetes (docs/tasks.md). A step with an "
        "image also needs the namespaces isolation level (PA722 otherwise).",
    ),
    "PA729": CodeInfo(
        "scenario check failed",
        "A `verify` step ran its scenario (the scenario's manifest as the sub-task `<task>.<step>`, with the "
        "scenario's inputs and stubs) and at least one expectation did not hold; the error lists them, and "
        "the step's output keeps the whole verdict (every check with what was expected and what happened). "
        "Also: the task's stubs could not be read (docs/scenarios.md).",
    ),
    "PA730": CodeInfo(
        "unknown MCP server",
        "An `mcp` step's `tool:` (`<server>` or `<server>.<tool>`) names no server among its core's "
        "`tools`. The error lists the core's servers.",
    ),
    "PA731": CodeInfo(
        "MCP server did not start",
        "The node could not start the server in the task's sandbox, or the server exited or failed "
        "the MCP `initialize` handshake (a command not installed where the sandbox can see it exits "
        "127). The error has its exit status and the end of its stderr.",
    ),
    "PA732": CodeInfo(
        "MCP server start timed out",
        "The server did not answer `initialize` (and `tools/list`) within the start timeout; it was "
        "killed with all its processes.",
    ),
    "PA733": CodeInfo(
        "unknown MCP tool",
        "The server has no tool of that name, or the step named only the server (`tool: <server>`) "
        "and it does not have exactly one tool: name it as `<server>.<tool>`. The error lists the "
        "server's tools.",
    ),
    "PA734": CodeInfo(
        "MCP call timed out",
        "The tool call did not return within the call timeout. The server was killed (a hung server "
        "would hang the task's later calls); a retry starts it again.",
    ),
    "PA735": CodeInfo(
        "MCP tool failed",
        "The tool ran and reported an error (`isError` in its result): bad arguments for it, a "
        "failure of what it does. The error has the tool's own message.",
    ),
    "PA736": CodeInfo(
        "MCP server crashed",
        "The server exited or closed its pipes during the call. The error has its exit status and "
        "the end of its stderr; a retry starts it again.",
    ),
    "PA737": CodeInfo(
        "MCP call refused",
        "The server answered the call with a JSON-RPC error (arguments that do not match the tool's "
        "schema, say) or with something that is not a tool result.",
    ),
    "PA738": CodeInfo(
        "MCP server not supported",
        "The node cannot run this server: an http server whose `url` is not http:// (the node "
        "speaks no TLS to MCP servers yet: reach a remote one through a local hop), an http server "
        "with neither `url` nor `port`, or a stdio server without a command.",
    ),
    "PA740": CodeInfo(
        "model endpoint not usable",
        "The core's model endpoint cannot be used by the node: not an http:// base URL (https is "
        "not spoken yet: put the server on a protected hop), or its API key's environment "
        "variable is not set on the node (Kubernetes: the Secret the spec names; the local target: "
        "the variable named in work.json, exported before `pyagent up`).",
    ),
    "PA741": CodeInfo(
        "model endpoint unreachable",
        "Nothing accepted the connection to the model server (refused, no route, unknown host), "
        "or the connection broke before the answer. Is the server running and listening on the "
        "endpoint's host and port? Retried with the step's `retries`.",
    ),
    "PA742": CodeInfo(
        "model request timed out",
        "The model server gave no complete answer in time (connecting or answering). A large "
        "model on a busy GPU may need a longer step `timeout` or a smaller `maxTokens`.",
    ),
    "PA743": CodeInfo(
        "model server answered an error",
        "The model server answered a non-2xx HTTP status; the error carries the status and the "
        "start of its body: 401/403 a wrong API key, 404 a wrong endpoint path or model name, "
        "429 or 5xx overload (retried with the step's `retries`).",
    ),
    "PA744": CodeInfo(
        "model answer not a chat completion",
        "The server answered 2xx, but not with an OpenAI chat completion (`choices[0].message`): "
        "the endpoint is probably not an OpenAI-compatible `/v1` base URL.",
    ),
}


def explain(code: str) -> str | None:
    info = CODES.get(code.upper())
    if info is None:
        return None
    return f"{code.upper()}: {info.title}\n\n{info.explanation}\n"


def exit_code_for(codes: list[str]) -> int:
    """The process exit code for a run that produced these error codes."""
    if not codes:
        return EXIT_OK
    return max(CODES[c].exit_code if c in CODES else EXIT_INVALID for c in codes)
