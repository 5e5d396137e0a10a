"""The storage contract every Squidie backend implements.

Public surface (for adapter authors and the conformance suite):

- protocols: ``Store``, ``JournalStore``, ``LeaseDelivery``, and the optional
  ``BatchCommitter`` (group commit), ``BatchReader`` (several runs in one read) and
  ``ClaimReader`` (claimed runs read with their claim)
- data: ``Fact``, ``Checkpoint``, ``RunEntry``, ``Page``, ``Dispatch``, ``Lease``,
  ``DispatchRecord``, ``QueueDepth``, ``Commit``, ``CommitResult``, ``Capabilities``
- constants: ``RUN_STATUSES``, ``TERMINAL_STATUSES``, ``DISPATCH_STATES``,
  ``COMMIT_ERRORS`` (what ``commit_many`` returns in a commit's place)
- clocks: ``Clock``, ``SystemClock``, ``ManualClock``
- helpers: ``new_token``, ``hash_token``, ``encode_cursor``, ``decode_cursor``,
  ``check_commit``, ``check_contiguous``, ``check_queue_name``, ``same_facts``,
  ``commit_each`` and ``commit_many`` (group commit through ``BatchCommitter`` or one
  commit at a time), ``read_runs`` (through ``BatchReader`` or run by run),
  ``read_claimed`` (through ``ClaimReader`` or ``read_runs``)

See ``docs/writing-a-backend.md`` for a walkthrough.
"""

from squidie_core._clock import Clock, ManualClock, SystemClock
from squidie_core.storage._contract import (
    COMMIT_ERRORS,
    DISPATCH_STATES,
    QUEUE_NAME,
    RUN_STATUSES,
    TERMINAL_STATUSES,
    BatchCommitter,
    BatchReader,
    Capabilities,
    Checkpoint,
    ClaimReader,
    Commit,
    CommitResult,
    Dispatch,
    DispatchRecord,
    DispatchState,
    Fact,
    JournalStore,
    Lease,
    LeaseDelivery,
    Page,
    QueueDepth,
    RunEntry,
    Store,
    check_commit,
    check_contiguous,
    check_queue_name,
    commit_each,
    commit_many,
    decode_cursor,
    encode_cursor,
    hash_token,
    new_token,
    read_claimed,
    read_runs,
    same_facts,
)

__all__ = [
    "COMMIT_ERRORS",
    "DISPATCH_STATES",
    "QUEUE_NAME",
    "RUN_STATUSES",
    "TERMINAL_STATUSES",
    "BatchCommitter",
    "BatchReader",
    "Capabilities",
    "Checkpoint",
    "ClaimReader",
    "Clock",
    "Commit",
    "CommitResult",
    "Dispatch",
    "DispatchRecord",
    "DispatchState",
    "Fact",
    "JournalStore",
    "Lease",
    "LeaseDelivery",
    "ManualClock",
    "Page",
    "QueueDepth",
    "RunEntry",
    "Store",
    "SystemClock",
    "check_commit",
    "check_contiguous",
    "check_queue_name",
    "commit_each",
    "commit_many",
    "decode_cursor",
    "encode_cursor",
    "hash_token",
    "new_token",
    "read_claimed",
    "read_runs",
    "same_facts",
]
