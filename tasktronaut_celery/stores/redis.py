"""Runs kept in the Redis result backend, next to Celery's own results.

Per run: ``tasktronaut:{<id>}:run`` (hash: state, times, failing step, error),
``:plan`` (hash: content type, encoding, body), ``:claims`` (hash of hook
markers), ``:steps`` (hash: path -> JSON record) and ``:arrived:<chord>`` (set
of the chord members that have finished). The braces keep a run's
keys in one Redis Cluster slot. Every key expires ``result_expires`` after the
run's last write, so a long run keeps its plan. Changes are Lua scripts: atomic
across workers, and no-ops on a run that does not exist (or has expired).
"""

from __future__ import annotations

from typing import Any

from typing_extensions import override

from ..plan import EncodedPlan
from ..store import RunRecord, RunState, RunStore, StepRecord, now, to_moment

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

# KEYS: run, claims. ARGV: state, time, "=step", "=error" ('' for none), '1' to settle,
# "=marker" that must not be claimed ('' for none).
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
if ARGV[5] == '1' then redis.call('HSET', KEYS[1], 'settled_at', ARGV[2]) end
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

    def _key(self, run_id: str, part: str) -> str:
        return f"{self._prefix}:{{{run_id}}}:{part}"

    def _write(
        self, run_id: str, part: str, field: str, value: str, mode: str, expected: str = ""
    ) -> bool:
        keys = [self._key(run_id, "run"), self._key(run_id, part)]
        keys += [
            self._key(run_id, other) for other in ("plan", "claims", "steps") if other != part
        ]
        return bool(self._hset_if_run(keys=keys, args=[mode, field, value, self._ttl, expected]))

    @override
    def create(self, run_id: str, plan: EncodedPlan) -> bool:
        keys = [self._key(run_id, "run"), self._key(run_id, "plan")]
        args = [repr(now()), plan.content_type, plan.content_encoding, plan.body, self._ttl]
        return bool(self._create(keys=keys, args=args))

    @override
    def delete(self, run_id: str) -> None:
        keys = [self._key(run_id, part) for part in ("run", "plan", "claims", "steps")]
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
        ]
        keys = [self._key(run_id, "run"), self._key(run_id, "claims")]
        return bool(self._finish(keys=keys, args=args))

    @override
    def settle(self, run_id: str) -> None:
        self._write(run_id, "run", "settled_at", repr(now()), "always")

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
