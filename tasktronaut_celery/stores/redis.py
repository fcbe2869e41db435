"""Runs kept in the Redis result backend, next to Celery's own results.

Per run: ``tasktronaut:{<id>}:run`` (hash: state, times, failing step, error),
``:plan`` (hash: content type, encoding, body), ``:claims`` (hash of hook
markers), ``:steps`` (hash: path -> JSON record) and ``:arrived:<chord>`` (set
of the chord members that have finished). The braces keep a run's
keys in one Redis Cluster slot. Every key expires ``result_expires`` after the
run's last write, so a long run keeps its plan. Changes are Lua scripts: atomic
across workers, and no-ops on a run that does not exist (or has expired).

A step costs two requests: one script admits and starts it (reading the run's
state and the step's record, writing STARTED), another records its success
with its arrival at the join that follows (and claims the join's body when it
is the last to arrive). A run that settles is announced on the channel
``tasktronaut:{<id>}:settled``, so that clients waiting on it wake at once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from typing_extensions import override

from ..claims import Claim
from ..plan import EncodedPlan
from ..store import (
    Arrival,
    RunRecord,
    RunState,
    RunStore,
    StepRecord,
    StepStart,
    now,
    to_moment,
    to_seconds,
)

# Lua: ``ended[state]`` is true for the states in which a run has ended.
_ENDED = (
    "local ended = {"
    + ", ".join(f"['{state.value}'] = true" for state in RunState if state.finished)
    + "}\n"
)

_CREATE = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'state', 'PENDING', 'created_at', ARGV[1])
redis.call('HSET', KEYS[2], 'type', ARGV[2], 'encoding', ARGV[3], 'body', ARGV[4])
if tonumber(ARGV[5]) > 0 then
    redis.call('EXPIRE', KEYS[1], ARGV[5])
    redis.call('EXPIRE', KEYS[2], ARGV[5])
end
return 1
"""

_MARK_RUNNING = """
if redis.call('HGET', KEYS[1], 'state') == 'PENDING' then
    redis.call('HSET', KEYS[1], 'state', 'RUNNING')
end
return 1
"""

# Lua: refresh the expiry of every key of the script to ``ttl`` seconds (none if 0).
_EXPIRE = """
local function expire(ttl)
    if tonumber(ttl) > 0 then
        for _, key in ipairs(KEYS) do redis.call('EXPIRE', key, ttl) end
    end
end
"""

# KEYS: run, steps, plan, claims. ARGV: path, STARTED record, the run's creation time as
# the caller knows it, seconds to expire. Returns {1} once started, else {0, the run's
# hash (empty for none), the step's record ('' for none)}. Creation times match within
# 2 microseconds (the caller's passed through a datetime).
_START_STEP = (
    _ENDED
    + _EXPIRE
    + """
local run = redis.call('HGETALL', KEYS[1])
local step = redis.call('HGET', KEYS[2], ARGV[1])
if #run == 0 or step then return {0, run, step or ''} end
local fields = {}
for i = 1, #run, 2 do fields[run[i]] = run[i + 1] end
if ended[fields.state] or math.abs(tonumber(fields.created_at) - tonumber(ARGV[3])) > 0.000002 then
    return {0, run, ''}
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if fields.state == 'PENDING' then redis.call('HSET', KEYS[1], 'state', 'RUNNING') end
expire(ARGV[4])
return {1}
"""
)

# KEYS: run, arrivals of the chord, claims, steps, plan. ARGV: member, size, the body's
# claim marker, seconds to expire, path and SUCCESS record of the arriving step ('' for
# none). Returns {1 if every member is in, 1 if this call claimed the body}.
_ARRIVE_AND_CLAIM = (
    _EXPIRE
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0} end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[4], ARGV[5], ARGV[6]) end
redis.call('SADD', KEYS[2], ARGV[1])
local claimed = 0
local complete = redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[2])
if complete then claimed = redis.call('HSETNX', KEYS[3], ARGV[3], '1') end
expire(ARGV[4])
return {complete and 1 or 0, claimed}
"""
)

# KEYS: run, then every other key of the run. ARGV: time, seconds to expire, channel.
_SETTLE = (
    _EXPIRE
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'settled_at', ARGV[1])
expire(ARGV[2])
redis.call('PUBLISH', ARGV[3], 'settled')
return 1
"""
)

# KEYS: run, claims. ARGV: state, time, "=step", "=error" ('' for none), '1' to settle,
# "=marker" that must not be claimed ('' for none), the channel announcing the settling.
_FINISH = (
    _ENDED
    + """
local state = redis.call('HGET', KEYS[1], 'state')
if (not state) or ended[state] then return 0 end
if ARGV[6] ~= '' and redis.call('HEXISTS', KEYS[2], string.sub(ARGV[6], 2)) == 1 then
    return 0
end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'finished_at', ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'step', string.sub(ARGV[3], 2)) end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'error', string.sub(ARGV[4], 2)) end
if ARGV[5] == '1' then
    redis.call('HSET', KEYS[1], 'settled_at', ARGV[2])
    redis.call('PUBLISH', ARGV[7], 'settled')
end
return 1
"""
)

# KEYS: run, target hash, then every other key of the run (to refresh their expiry).
# ARGV: mode ('always', 'once': only a new field, 'open': only a new field while the
# run has not ended, 'if': only if the field's value is ARGV[5], '' for none), field,
# value, seconds to expire, expected value.
_HSET_IF_RUN = (
    _ENDED
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local written
if ARGV[1] == 'open' then
    if ended[redis.call('HGET', KEYS[1], 'state')] then return 0 end
    written = redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[3])
elseif ARGV[1] == 'once' then
    written = redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[3])
elseif ARGV[1] == 'if' then
    if (redis.call('HGET', KEYS[2], ARGV[2]) or '') ~= ARGV[5] then return 0 end
    redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
    written = 1
else
    redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
    written = 1
end
if tonumber(ARGV[4]) > 0 then
    for _, key in ipairs(KEYS) do redis.call('EXPIRE', key, ARGV[4]) end
end
return written
"""
)


_ARRIVE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SADD', KEYS[2], ARGV[1])
if tonumber(ARGV[2]) > 0 then redis.call('EXPIRE', KEYS[2], ARGV[2]) end
return redis.call('SCARD', KEYS[2])
"""

_RUN_PARTS = ("run", "plan", "claims", "steps")


class RedisRunStore(RunStore):
    """A store on the redis-py client of Celery's Redis result backend."""

    def __init__(self, client: Any, ttl: int | None, prefix: str = "tasktronaut") -> None:
        self._client = client
        self._ttl = ttl or 0
        self._prefix = prefix
        self._create = client.register_script(_CREATE)
        self._mark_running = client.register_script(_MARK_RUNNING)
        self._finish = client.register_script(_FINISH)
        self._hset_if_run = client.register_script(_HSET_IF_RUN)
        self._arrive = client.register_script(_ARRIVE)
        self._start_step = client.register_script(_START_STEP)
        self._arrive_and_claim = client.register_script(_ARRIVE_AND_CLAIM)
        self._settle = client.register_script(_SETTLE)

    def _key(self, run_id: str, part: str) -> str:
        return f"{self._prefix}:{{{run_id}}}:{part}"

    def _channel(self, run_id: str) -> str:
        return self._key(run_id, "settled")

    def _write(
        self, run_id: str, part: str, field: str, value: str, mode: str, expected: str = ""
    ) -> bool:
        keys = [self._key(run_id, "run"), self._key(run_id, part)]
        keys += [self._key(run_id, other) for other in _RUN_PARTS[1:] if other != part]
        return bool(self._hset_if_run(keys=keys, args=[mode, field, value, self._ttl, expected]))

    @override
    def create(self, run_id: str, plan: EncodedPlan) -> bool:
        keys = [self._key(run_id, "run"), self._key(run_id, "plan")]
        args = [repr(now()), plan.content_type, plan.content_encoding, plan.body, self._ttl]
        return bool(self._create(keys=keys, args=args))

    @override
    def delete(self, run_id: str) -> None:
        keys = [self._key(run_id, part) for part in _RUN_PARTS]
        keys += self._client.scan_iter(match=self._key(run_id, "arrived:*"), count=1000)
        self._client.delete(*keys)

    @override
    def plan(self, run_id: str) -> EncodedPlan | None:
        stored = self._client.hgetall(self._key(run_id, "plan"))
        if not stored:
            return None
        return EncodedPlan(stored[b"type"].decode(), stored[b"encoding"].decode(), stored[b"body"])

    @override
    def record(self, run_id: str) -> RunRecord | None:
        return _run_record(self._client.hgetall(self._key(run_id, "run")))

    @override
    def status(self, run_id: str, path: str) -> tuple[RunRecord | None, StepRecord | None]:
        with self._client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._key(run_id, "run"))
            pipe.hget(self._key(run_id, "steps"), path)
            run, step = pipe.execute()
        return _run_record(run), StepRecord.decode(step) if step else None

    @override
    def start_step(
        self, run_id: str, path: str, record: StepRecord, created_at: datetime
    ) -> StepStart:
        keys = [self._key(run_id, part) for part in ("run", "steps", "plan", "claims")]
        args = [path, record.encode(), repr(to_seconds(created_at)), self._ttl]
        found = self._start_step(keys=keys, args=args)
        if found[0]:
            return StepStart(True)
        run = dict(zip(found[1][::2], found[1][1::2], strict=True))
        return StepStart(
            False, _run_record(run), StepRecord.decode(found[2]) if found[2] else None
        )

    @override
    def mark_running(self, run_id: str) -> None:
        self._mark_running(keys=[self._key(run_id, "run")])

    @override
    def finish(
        self,
        run_id: str,
        state: RunState,
        step: str | None = None,
        error: str | None = None,
        settled: bool = False,
        unless_claimed: str | None = None,
    ) -> bool:
        # Values are sent with a leading "=" so that an empty one is not "none".
        args = [
            state.value,
            repr(now()),
            "" if step is None else f"={step}",
            "" if error is None else f"={error}",
            "1" if settled else "0",
            "" if unless_claimed is None else f"={unless_claimed}",
            self._channel(run_id),
        ]
        keys = [self._key(run_id, "run"), self._key(run_id, "claims")]
        return bool(self._finish(keys=keys, args=args))

    @override
    def settle(self, run_id: str) -> None:
        keys = [self._key(run_id, part) for part in _RUN_PARTS]
        self._settle(keys=keys, args=[repr(now()), self._ttl, self._channel(run_id)])

    @override
    @contextmanager
    def watch(self, run_id: str) -> Iterator[Callable[[float], None]]:
        pubsub = self._client.pubsub()
        try:
            pubsub.subscribe(self._channel(run_id))
            pubsub.get_message(timeout=1.0)  # subscribed: from here on no announcement is missed
            yield lambda seconds: pubsub.get_message(timeout=seconds)
        finally:
            pubsub.close()

    @override
    def claim(self, run_id: str, marker: str, *, unless_ended: bool = False) -> bool:
        return self._write(run_id, "claims", marker, "1", "open" if unless_ended else "once")

    @override
    def claimed(self, run_id: str) -> set[str]:
        return {marker.decode() for marker in self._client.hkeys(self._key(run_id, "claims"))}

    @override
    def arrive(self, run_id: str, chord: str, member: int) -> int:
        keys = [self._key(run_id, "run"), self._key(run_id, f"arrived:{chord}")]
        return int(self._arrive(keys=keys, args=[member, self._ttl]))

    @override
    def arrive_and_claim(
        self,
        run_id: str,
        chord: str,
        member: int,
        size: int,
        succeeded: tuple[str, StepRecord] | None = None,
    ) -> Arrival:
        keys = [self._key(run_id, part) for part in ("run", f"arrived:{chord}", "claims")]
        keys += [self._key(run_id, part) for part in ("steps", "plan")]
        path, record = succeeded if succeeded else ("", None)
        marker = Claim.joined(chord).marker
        args = [member, size, marker, self._ttl, path, record.encode() if record else ""]
        complete, claimed = self._arrive_and_claim(keys=keys, args=args)
        return Arrival(bool(complete), bool(claimed))

    @override
    def put_step(self, run_id: str, path: str, record: StepRecord) -> None:
        self._write(run_id, "steps", path, record.encode(), "always")

    @override
    def put_step_if(
        self, run_id: str, path: str, record: StepRecord, expected: StepRecord | None
    ) -> bool:
        was = "" if expected is None else expected.encode()
        return self._write(run_id, "steps", path, record.encode(), "if", was)

    @override
    def step(self, run_id: str, path: str) -> StepRecord | None:
        stored = self._client.hget(self._key(run_id, "steps"), path)
        return StepRecord.decode(stored) if stored else None

    @override
    def steps(self, run_id: str) -> dict[str, StepRecord]:
        stored = self._client.hgetall(self._key(run_id, "steps"))
        return {path.decode(): StepRecord.decode(raw) for path, raw in stored.items()}


def _run_record(stored: dict[bytes, bytes]) -> RunRecord | None:
    """A run record from its Redis hash (``None`` for a missing run)."""
    if not stored:
        return None
    fields = {key.decode(): value.decode() for key, value in stored.items()}
    finished_at = fields.get("finished_at")
    settled_at = fields.get("settled_at")
    return RunRecord(
        state=RunState(fields["state"]),
        created_at=to_moment(float(fields["created_at"])),
        finished_at=to_moment(float(finished_at)) if finished_at else None,
        step=fields.get("step"),
        error=fields.get("error"),
        settled_at=to_moment(float(settled_at)) if settled_at else None,
    )
