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
    __slots__ = ("put", "delete", "acquire", "renew", "release", "add_member", "remove_member")
    PUT_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    ACQUIRE_FIELD_NUMBER: _ClassVar[int]
    RENEW_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    ADD_MEMBER_FIELD_NUMBER: _ClassVar[int]
    REMOVE_MEMBER_FIELD_NUMBER: _ClassVar[int]
    put: Put
    delete: Delete
    acquire: AcquireTask
    renew: RenewTask
    release: ReleaseTask
    add_member: AddMember
    remove_member: RemoveMember
    def __init__(self, put: _Optional[_Union[Put, _Mapping]] = ..., delete: _Optional[_Union[Delete, _Mapping]] = ..., acquire: _Optional[_Union[AcquireTask, _Mapping]] = ..., renew: _Optional[_Union[RenewTask, _Mapping]] = ..., release: _Optional[_Union[ReleaseTask, _Mapping]] = ..., add_member: _Optional[_Union[AddMember, _Mapping]] = ..., remove_member: _Optional[_Union[RemoveMember, _Mapping]] = ...) -> None: ...

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
    __slots__ = ("node_id", "name", "swarm", "role", "term", "leader_id", "commit_index", "applied_index", "last_log_index", "members", "kv", "version")
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
    def __init__(self, node_id: _Optional[int] = ..., name: _Optional[str] = ..., swarm: _Optional[str] = ..., role: _Optional[str] = ..., term: _Optional[int] = ..., leader_id: _Optional[int] = ..., commit_index: _Optional[int] = ..., applied_index: _Optional[int] = ..., last_log_index: _Optional[int] = ..., members: _Optional[_Iterable[_Union[Member, _Mapping]]] = ..., kv: _Optional[_Union[KvStats, _Mapping]] = ..., version: _Optional[str] = ...) -> None: ...
