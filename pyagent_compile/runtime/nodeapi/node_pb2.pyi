from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JoinRequest(_message.Message):
    __slots__ = ("member", "token", "signature")
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    member: Member
    token: str
    signature: bytes
    def __init__(self, member: _Optional[_Union[Member, _Mapping]] = ..., token: _Optional[str] = ..., signature: _Optional[bytes] = ...) -> None: ...

class SignedCommand(_message.Message):
    __slots__ = ("command", "signer", "seq", "signature")
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    SIGNER_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    command: bytes
    signer: int
    seq: int
    signature: bytes
    def __init__(self, command: _Optional[bytes] = ..., signer: _Optional[int] = ..., seq: _Optional[int] = ..., signature: _Optional[bytes] = ...) -> None: ...

class Command(_message.Message):
    __slots__ = ("put", "delete", "acquire", "renew", "release", "add_member", "remove_member", "submit_task", "cancel_task", "register_worker", "worker_heartbeat", "step_update")
    PUT_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    ACQUIRE_FIELD_NUMBER: _ClassVar[int]
    RENEW_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    ADD_MEMBER_FIELD_NUMBER: _ClassVar[int]
    REMOVE_MEMBER_FIELD_NUMBER: _ClassVar[int]
    SUBMIT_TASK_FIELD_NUMBER: _ClassVar[int]
    CANCEL_TASK_FIELD_NUMBER: _ClassVar[int]
    REGISTER_WORKER_FIELD_NUMBER: _ClassVar[int]
    WORKER_HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    STEP_UPDATE_FIELD_NUMBER: _ClassVar[int]
    put: Put
    delete: Delete
    acquire: AcquireTask
    renew: RenewTask
    release: ReleaseTask
    add_member: AddMember
    remove_member: RemoveMember
    submit_task: SubmitTask
    cancel_task: CancelTask
    register_worker: RegisterWorker
    worker_heartbeat: WorkerHeartbeat
    step_update: StepUpdate
    def __init__(self, put: _Optional[_Union[Put, _Mapping]] = ..., delete: _Optional[_Union[Delete, _Mapping]] = ..., acquire: _Optional[_Union[AcquireTask, _Mapping]] = ..., renew: _Optional[_Union[RenewTask, _Mapping]] = ..., release: _Optional[_Union[ReleaseTask, _Mapping]] = ..., add_member: _Optional[_Union[AddMember, _Mapping]] = ..., remove_member: _Optional[_Union[RemoveMember, _Mapping]] = ..., submit_task: _Optional[_Union[SubmitTask, _Mapping]] = ..., cancel_task: _Optional[_Union[CancelTask, _Mapping]] = ..., register_worker: _Optional[_Union[RegisterWorker, _Mapping]] = ..., worker_heartbeat: _Optional[_Union[WorkerHeartbeat, _Mapping]] = ..., step_update: _Optional[_Union[StepUpdate, _Mapping]] = ...) -> None: ...

class Resources(_message.Message):
    __slots__ = ("cpu_millis", "memory_bytes", "gpu_memory_bytes")
    CPU_MILLIS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    GPU_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    cpu_millis: int
    memory_bytes: int
    gpu_memory_bytes: int
    def __init__(self, cpu_millis: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., gpu_memory_bytes: _Optional[int] = ...) -> None: ...

class SubmitTask(_message.Message):
    __slots__ = ("id", "manifest", "core", "manifest_json", "inputs_json", "resources", "parent", "parent_step", "stubs_json", "traceparent")
    ID_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    CORE_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_JSON_FIELD_NUMBER: _ClassVar[int]
    INPUTS_JSON_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PARENT_STEP_FIELD_NUMBER: _ClassVar[int]
    STUBS_JSON_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    id: str
    manifest: str
    core: str
    manifest_json: bytes
    inputs_json: bytes
    resources: Resources
    parent: str
    parent_step: str
    stubs_json: bytes
    traceparent: str
    def __init__(self, id: _Optional[str] = ..., manifest: _Optional[str] = ..., core: _Optional[str] = ..., manifest_json: _Optional[bytes] = ..., inputs_json: _Optional[bytes] = ..., resources: _Optional[_Union[Resources, _Mapping]] = ..., parent: _Optional[str] = ..., parent_step: _Optional[str] = ..., stubs_json: _Optional[bytes] = ..., traceparent: _Optional[str] = ...) -> None: ...

class CancelTask(_message.Message):
    __slots__ = ("id", "reason")
    ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id: str
    reason: str
    def __init__(self, id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class RegisterWorker(_message.Message):
    __slots__ = ("node_id", "pool", "cores", "capacity", "max_tasks", "isolation", "lease_ms")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    POOL_FIELD_NUMBER: _ClassVar[int]
    CORES_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    MAX_TASKS_FIELD_NUMBER: _ClassVar[int]
    ISOLATION_FIELD_NUMBER: _ClassVar[int]
    LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    pool: str
    cores: _containers.RepeatedScalarFieldContainer[str]
    capacity: Resources
    max_tasks: int
    isolation: str
    lease_ms: int
    def __init__(self, node_id: _Optional[int] = ..., pool: _Optional[str] = ..., cores: _Optional[_Iterable[str]] = ..., capacity: _Optional[_Union[Resources, _Mapping]] = ..., max_tasks: _Optional[int] = ..., isolation: _Optional[str] = ..., lease_ms: _Optional[int] = ...) -> None: ...

class WorkerHeartbeat(_message.Message):
    __slots__ = ("node_id", "lease_ms")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    lease_ms: int
    def __init__(self, node_id: _Optional[int] = ..., lease_ms: _Optional[int] = ...) -> None: ...

class StepUpdate(_message.Message):
    __slots__ = ("task", "token", "step", "state", "output_json", "error_code", "error", "attempt")
    TASK_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    task: str
    token: FencingToken
    step: str
    state: str
    output_json: bytes
    error_code: str
    error: str
    attempt: int
    def __init__(self, task: _Optional[str] = ..., token: _Optional[_Union[FencingToken, _Mapping]] = ..., step: _Optional[str] = ..., state: _Optional[str] = ..., output_json: _Optional[bytes] = ..., error_code: _Optional[str] = ..., error: _Optional[str] = ..., attempt: _Optional[int] = ...) -> None: ...

class StepView(_message.Message):
    __slots__ = ("id", "kind", "state", "attempt", "output_json", "error_code", "error", "started_ms", "finished_ms")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STARTED_MS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_MS_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: str
    state: str
    attempt: int
    output_json: str
    error_code: str
    error: str
    started_ms: int
    finished_ms: int
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[str] = ..., state: _Optional[str] = ..., attempt: _Optional[int] = ..., output_json: _Optional[str] = ..., error_code: _Optional[str] = ..., error: _Optional[str] = ..., started_ms: _Optional[int] = ..., finished_ms: _Optional[int] = ...) -> None: ...

class TaskView(_message.Message):
    __slots__ = ("found", "id", "manifest", "core", "state", "reason", "owner", "token", "placements", "inputs_json", "outputs_json", "steps", "submitted_ms", "finished_ms", "parent", "error_code", "revision", "trace_id", "span_id", "parent_span_id")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    CORE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    PLACEMENTS_FIELD_NUMBER: _ClassVar[int]
    INPUTS_JSON_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_JSON_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_MS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_MS_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_SPAN_ID_FIELD_NUMBER: _ClassVar[int]
    found: bool
    id: str
    manifest: str
    core: str
    state: str
    reason: str
    owner: int
    token: FencingToken
    placements: int
    inputs_json: str
    outputs_json: str
    steps: _containers.RepeatedCompositeFieldContainer[StepView]
    submitted_ms: int
    finished_ms: int
    parent: str
    error_code: str
    revision: int
    trace_id: str
    span_id: str
    parent_span_id: str
    def __init__(self, found: bool = ..., id: _Optional[str] = ..., manifest: _Optional[str] = ..., core: _Optional[str] = ..., state: _Optional[str] = ..., reason: _Optional[str] = ..., owner: _Optional[int] = ..., token: _Optional[_Union[FencingToken, _Mapping]] = ..., placements: _Optional[int] = ..., inputs_json: _Optional[str] = ..., outputs_json: _Optional[str] = ..., steps: _Optional[_Iterable[_Union[StepView, _Mapping]]] = ..., submitted_ms: _Optional[int] = ..., finished_ms: _Optional[int] = ..., parent: _Optional[str] = ..., error_code: _Optional[str] = ..., revision: _Optional[int] = ..., trace_id: _Optional[str] = ..., span_id: _Optional[str] = ..., parent_span_id: _Optional[str] = ...) -> None: ...

class DescribeTaskRequest(_message.Message):
    __slots__ = ("id", "stale")
    ID_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    id: str
    stale: bool
    def __init__(self, id: _Optional[str] = ..., stale: bool = ...) -> None: ...

class ListTasksRequest(_message.Message):
    __slots__ = ("stale",)
    STALE_FIELD_NUMBER: _ClassVar[int]
    stale: bool
    def __init__(self, stale: bool = ...) -> None: ...

class ListTasksResponse(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskView]
    def __init__(self, tasks: _Optional[_Iterable[_Union[TaskView, _Mapping]]] = ...) -> None: ...

class FencingToken(_message.Message):
    __slots__ = ("term", "index")
    TERM_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    term: int
    index: int
    def __init__(self, term: _Optional[int] = ..., index: _Optional[int] = ...) -> None: ...

class Fence(_message.Message):
    __slots__ = ("task", "token")
    TASK_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    task: str
    token: FencingToken
    def __init__(self, task: _Optional[str] = ..., token: _Optional[_Union[FencingToken, _Mapping]] = ...) -> None: ...

class Put(_message.Message):
    __slots__ = ("key", "value", "fence")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    FENCE_FIELD_NUMBER: _ClassVar[int]
    key: str
    value: bytes
    fence: Fence
    def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ..., fence: _Optional[_Union[Fence, _Mapping]] = ...) -> None: ...

class Delete(_message.Message):
    __slots__ = ("key", "fence")
    KEY_FIELD_NUMBER: _ClassVar[int]
    FENCE_FIELD_NUMBER: _ClassVar[int]
    key: str
    fence: Fence
    def __init__(self, key: _Optional[str] = ..., fence: _Optional[_Union[Fence, _Mapping]] = ...) -> None: ...

class AcquireTask(_message.Message):
    __slots__ = ("task", "owner", "lease_ms")
    TASK_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    task: str
    owner: str
    lease_ms: int
    def __init__(self, task: _Optional[str] = ..., owner: _Optional[str] = ..., lease_ms: _Optional[int] = ...) -> None: ...

class RenewTask(_message.Message):
    __slots__ = ("task", "owner", "token", "lease_ms")
    TASK_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    LEASE_MS_FIELD_NUMBER: _ClassVar[int]
    task: str
    owner: str
    token: FencingToken
    lease_ms: int
    def __init__(self, task: _Optional[str] = ..., owner: _Optional[str] = ..., token: _Optional[_Union[FencingToken, _Mapping]] = ..., lease_ms: _Optional[int] = ...) -> None: ...

class ReleaseTask(_message.Message):
    __slots__ = ("task", "owner", "token")
    TASK_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    task: str
    owner: str
    token: FencingToken
    def __init__(self, task: _Optional[str] = ..., owner: _Optional[str] = ..., token: _Optional[_Union[FencingToken, _Mapping]] = ...) -> None: ...

class Member(_message.Message):
    __slots__ = ("node_id", "name", "raft", "grpc", "voter", "public_key")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    RAFT_FIELD_NUMBER: _ClassVar[int]
    GRPC_FIELD_NUMBER: _ClassVar[int]
    VOTER_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    name: str
    raft: str
    grpc: str
    voter: bool
    public_key: str
    def __init__(self, node_id: _Optional[int] = ..., name: _Optional[str] = ..., raft: _Optional[str] = ..., grpc: _Optional[str] = ..., voter: bool = ..., public_key: _Optional[str] = ...) -> None: ...

class AddMember(_message.Message):
    __slots__ = ("member",)
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    member: Member
    def __init__(self, member: _Optional[_Union[Member, _Mapping]] = ...) -> None: ...

class RemoveMember(_message.Message):
    __slots__ = ("node_id",)
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    def __init__(self, node_id: _Optional[int] = ...) -> None: ...

class CommandResult(_message.Message):
    __slots__ = ("applied", "refusal", "message", "term", "index", "token", "lease_expires_ms")
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    REFUSAL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_MS_FIELD_NUMBER: _ClassVar[int]
    applied: bool
    refusal: str
    message: str
    term: int
    index: int
    token: FencingToken
    lease_expires_ms: int
    def __init__(self, applied: bool = ..., refusal: _Optional[str] = ..., message: _Optional[str] = ..., term: _Optional[int] = ..., index: _Optional[int] = ..., token: _Optional[_Union[FencingToken, _Mapping]] = ..., lease_expires_ms: _Optional[int] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("key", "stale")
    KEY_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    key: str
    stale: bool
    def __init__(self, key: _Optional[str] = ..., stale: bool = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("found", "value", "revision", "read_index")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    READ_INDEX_FIELD_NUMBER: _ClassVar[int]
    found: bool
    value: bytes
    revision: int
    read_index: int
    def __init__(self, found: bool = ..., value: _Optional[bytes] = ..., revision: _Optional[int] = ..., read_index: _Optional[int] = ...) -> None: ...

class GetTaskRequest(_message.Message):
    __slots__ = ("task", "stale")
    TASK_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    task: str
    stale: bool
    def __init__(self, task: _Optional[str] = ..., stale: bool = ...) -> None: ...

class TaskInfo(_message.Message):
    __slots__ = ("held", "owner", "token", "lease_expires_ms")
    HELD_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRES_MS_FIELD_NUMBER: _ClassVar[int]
    held: bool
    owner: str
    token: FencingToken
    lease_expires_ms: int
    def __init__(self, held: bool = ..., owner: _Optional[str] = ..., token: _Optional[_Union[FencingToken, _Mapping]] = ..., lease_expires_ms: _Optional[int] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class KvStats(_message.Message):
    __slots__ = ("available", "block_size", "blocks_total", "blocks_used", "hits", "misses", "evictions")
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    BLOCK_SIZE_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_USED_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    MISSES_FIELD_NUMBER: _ClassVar[int]
    EVICTIONS_FIELD_NUMBER: _ClassVar[int]
    available: bool
    block_size: int
    blocks_total: int
    blocks_used: int
    hits: int
    misses: int
    evictions: int
    def __init__(self, available: bool = ..., block_size: _Optional[int] = ..., blocks_total: _Optional[int] = ..., blocks_used: _Optional[int] = ..., hits: _Optional[int] = ..., misses: _Optional[int] = ..., evictions: _Optional[int] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("node_id", "name", "swarm", "role", "term", "leader_id", "commit_index", "applied_index", "last_log_index", "members", "kv", "version", "mesh_peers", "unhealthy", "mesh_peer_ids")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SWARM_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    LEADER_ID_FIELD_NUMBER: _ClassVar[int]
    COMMIT_INDEX_FIELD_NUMBER: _ClassVar[int]
    APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    LAST_LOG_INDEX_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    KV_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MESH_PEERS_FIELD_NUMBER: _ClassVar[int]
    UNHEALTHY_FIELD_NUMBER: _ClassVar[int]
    MESH_PEER_IDS_FIELD_NUMBER: _ClassVar[int]
    node_id: int
    name: str
    swarm: str
    role: str
    term: int
    leader_id: int
    commit_index: int
    applied_index: int
    last_log_index: int
    members: _containers.RepeatedCompositeFieldContainer[Member]
    kv: KvStats
    version: str
    mesh_peers: int
    unhealthy: str
    mesh_peer_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, node_id: _Optional[int] = ..., name: _Optional[str] = ..., swarm: _Optional[str] = ..., role: _Optional[str] = ..., term: _Optional[int] = ..., leader_id: _Optional[int] = ..., commit_index: _Optional[int] = ..., applied_index: _Optional[int] = ..., last_log_index: _Optional[int] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ..., kv: _Optional[_Union[KvStats, _Mapping]] = ..., version: _Optional[str] = ..., mesh_peers: _Optional[int] = ..., unhealthy: _Optional[str] = ..., mesh_peer_ids: _Optional[_Iterable[int]] = ...) -> None: ...
