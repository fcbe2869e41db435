"""Runs kept in the Redis result backend, next to Celery's own results.

Per run: ``tasktronaut:{<id>}:run`` (hash: state, times, failing step, error,
the run's summary and progress), ``:plan`` (hash: content type, encoding,
body), ``:claims`` (hash of hook markers), ``:steps`` (hash: path -> JSON
record), ``:arrived:<chord>`` (set of the chord members that have finished)
and ``:arrivals`` (set of the chords that have an ``arrived`` set, so a run's
keys are found without a SCAN). The braces keep a run's keys in one Redis
Cluster slot. Every key expires ``result_expires`` after the run's last write,
so a long run keeps its plan. Changes are Lua scripts: atomic across workers,
and no-ops on a run that does not exist (or has expired).

A step costs two requests: one script admits and starts it (reading the run's
state and the step's record, writing STARTED), another records its success
with its arrival at the join that follows (and claims the join's body when it
is the last to arrive). The scripts that write a step's record keep the run's
progress in the same request: a record that moves the step into SUCCESS adds
one to the run's ``done``, into FAILURE to its ``failed``. A run that settles
is announced on the channel ``tasktronaut:{<id>}:settled``, so that clients
waiting on it wake at once.

Runs are listed and pruned from an index: sorted sets of run ids scored by
creation time, ``tasktronaut:runs`` (every run), ``tasktronaut:runs:state:<STATE>``
(the runs in each state) and ``tasktronaut:runs:definition:<name>`` (the runs
of each top-level definition). The scripts that create a run or change its
state keep them, in the same request; listing reads the narrowest index and
then only its candidates' records, never every run. Index entries go with
their runs: :meth:`~RedisRunStore.delete` and :meth:`~RedisRunStore.prune`
remove them with the run's keys; a run that expires leaves them behind, and
they are removed as they are met: by a listing that finds the run gone, and
by every create, which checks the few oldest entries (created more than
``result_expires`` ago) of each index it adds to. Each index key expires
``result_expires`` after the last write of any run it lists (the scripts that
refresh a run's keys refresh its index keys), so an idle index vanishes with
its last runs. Runs created before the index existed are not listed or
pruned; they expire as before.

The index keys are outside the runs' slots (a run's keys share one slot, the
index spans all runs), and some scripts build key names they are not given:
a run's index keys from its stored state and definition, and the hashes of
the runs a create checks. So the store needs a single Redis server (replicas
and Sentinel are fine), as Celery's Redis result backend does, not Redis
Cluster.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from redis import ConnectionPool
from redis import exceptions as redis_errors
from typing_extensions import override

from ..claims import Claim
from ..plan import EncodedPlan
from ..store import (
    NO_SUMMARY,
    Arrival,
    FirstLook,
    RunRecord,
    RunState,
    RunStore,
    RunSummary,
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

# Lua: the index. ``prefix`` is the store's (ARGV-given): a run's keys are
# ``prefix:{id}:part``, the index keys ``prefix:runs``, ``prefix:runs:state:<STATE>`` and
# ``prefix:runs:definition:<name>``. A run hash without a ``definition`` field was
# created before the index and is left out of it.
_INDEX = (
    "local STATES = {"
    + ", ".join(f"'{state.value}'" for state in RunState)
    + "}\n"
    + """
local function indexes(prefix, state, definition)
    local runs = prefix .. ':runs'
    return {runs, runs .. ':state:' .. state, runs .. ':definition:' .. definition}
end

-- Give the index keys listing a run in ``state`` ``ttl`` seconds more (none if 0).
local function expire_index(prefix, ttl, state, definition)
    if definition and tonumber(ttl) > 0 then
        for _, key in ipairs(indexes(prefix, state, definition)) do
            redis.call('EXPIRE', key, ttl)
        end
    end
end

-- The same, for the run whose hash is ``run``: its keys were just given ``ttl`` more.
local function touch_index(prefix, ttl, run)
    if tonumber(ttl) > 0 then
        local fields = redis.call('HMGET', run, 'state', 'definition')
        if fields[1] then expire_index(prefix, ttl, fields[1], fields[2]) end
    end
end

-- Move the run ``id`` from the index of state ``from`` to that of ``to``.
local function move_index(prefix, id, from, to, created, definition)
    if not definition then return end
    local runs = prefix .. ':runs'
    redis.call('ZREM', runs .. ':state:' .. from, id)
    redis.call('ZADD', runs .. ':state:' .. to, created, id)
end

-- Remove the run ``id`` (gone) from the index: every run, every state, and ``other``
-- ('' for none: its definition's index, when known).
local function forget(prefix, id, other)
    local runs = prefix .. ':runs'
    redis.call('ZREM', runs, id)
    for _, state in ipairs(STATES) do redis.call('ZREM', runs .. ':state:' .. state, id) end
    if other ~= '' then redis.call('ZREM', other, id) end
end
"""
)

# Lua: count a step's move from record ``before`` (false or '' for none) to ``after``
# (JSON texts) in the progress of the run whose hash is ``run``.
_COUNT = """
local function count(run, before, after)
    local state = cjson.decode(after).state
    local counter = (state == 'SUCCESS' and 'done') or (state == 'FAILURE' and 'failed')
    if not counter then return end
    if before and before ~= '' and cjson.decode(before).state == state then return end
    redis.call('HINCRBY', run, counter, 1)
end
"""

# KEYS: run, plan. ARGV: creation time, plan type, encoding, body, seconds to expire,
# prefix, run id, definition, arguments, total steps, the time before which index entries
# may have expired, how many of the oldest such entries of each index to check.
_CREATE = (
    _INDEX
    + """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'state', 'PENDING', 'created_at', ARGV[1], 'definition', ARGV[8],
    'arguments', ARGV[9], 'total', ARGV[10], 'done', 0, 'failed', 0)
redis.call('HSET', KEYS[2], 'type', ARGV[2], 'encoding', ARGV[3], 'body', ARGV[4])
local ttl = tonumber(ARGV[5])
if ttl > 0 then
    redis.call('EXPIRE', KEYS[1], ttl)
    redis.call('EXPIRE', KEYS[2], ttl)
end
local prefix, id = ARGV[6], ARGV[7]
for _, state in ipairs(STATES) do
    if state ~= 'PENDING' then redis.call('ZREM', prefix .. ':runs:state:' .. state, id) end
end
local keys = indexes(prefix, 'PENDING', ARGV[8])
for i, key in ipairs(keys) do
    if ttl > 0 then
        local old = redis.call('ZRANGEBYSCORE', key, '-inf', '(' .. ARGV[11], 'LIMIT', 0, ARGV[12])
        for _, other in ipairs(old) do
            if redis.call('EXISTS', prefix .. ':{' .. other .. '}:run') == 0 then
                forget(prefix, other, keys[3])
            end
        end
    end
    redis.call('ZADD', key, ARGV[1], id)
    if ttl > 0 then redis.call('EXPIRE', key, ttl) end
end
return 1
"""
)

# KEYS: run. ARGV: time, seconds to expire, prefix, run id.
_MARK_RUNNING = (
    _INDEX
    + """
local fields = redis.call('HMGET', KEYS[1], 'state', 'created_at', 'definition')
if fields[1] == 'PENDING' then
    redis.call('HSET', KEYS[1], 'state', 'RUNNING', 'started_at', ARGV[1])
    move_index(ARGV[3], ARGV[4], 'PENDING', 'RUNNING', fields[2], fields[3])
    expire_index(ARGV[3], ARGV[2], 'RUNNING', fields[3])
end
return 1
"""
)

# Lua: refresh the expiry of every key of the script to ``ttl`` seconds (none if 0).
_EXPIRE = """
local function expire(ttl)
    if tonumber(ttl) > 0 then
        for _, key in ipairs(KEYS) do redis.call('EXPIRE', key, ttl) end
    end
end
"""

# KEYS: run, steps, plan, claims. ARGV: path, STARTED record, the run's creation time as
# the caller knows it, seconds to expire, time, prefix, run id. Returns {1} once started,
# else {0, the run's hash (empty for none), the step's record ('' for none)}. Creation
# times match within 2 microseconds (the caller's passed through a datetime).
_START_STEP = (
    _ENDED
    + _EXPIRE
    + _INDEX
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
if fields.state == 'PENDING' then
    redis.call('HSET', KEYS[1], 'state', 'RUNNING', 'started_at', ARGV[5])
    move_index(ARGV[6], ARGV[7], 'PENDING', 'RUNNING', fields.created_at, fields.definition)
end
expire(ARGV[4])
expire_index(ARGV[6], ARGV[4], 'RUNNING', fields.definition)
return {1}
"""
)

# KEYS: run, arrivals of the chord, claims, steps, plan, the run's chords. ARGV: member,
# size, the body's claim marker, seconds to expire, path and SUCCESS record of the
# arriving step ('' for none), chord, prefix. Returns {1 if every member is in, 1 if this
# call claimed the body}.
_ARRIVE_AND_CLAIM = (
    _EXPIRE
    + _INDEX
    + _COUNT
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0} end
if ARGV[5] ~= '' then
    local before = redis.call('HGET', KEYS[4], ARGV[5])
    redis.call('HSET', KEYS[4], ARGV[5], ARGV[6])
    count(KEYS[1], before, ARGV[6])
end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[6], ARGV[7])
local claimed = 0
local complete = redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[2])
if complete then claimed = redis.call('HSETNX', KEYS[3], ARGV[3], '1') end
expire(ARGV[4])
touch_index(ARGV[8], ARGV[4], KEYS[1])
return {complete and 1 or 0, claimed}
"""
)

# Lua: refresh the expiry of the run's chord arrivals (KEYS[1] is its ``:run`` key), which
# only their own arrivals write: a settled run keeps them as long as its plan, for a resume.
_EXPIRE_ARRIVALS = """
local function expire_arrivals(ttl)
    if tonumber(ttl) <= 0 then return end
    local base = string.sub(KEYS[1], 1, -4)
    redis.call('EXPIRE', base .. 'arrivals', ttl)
    for _, chord in ipairs(redis.call('SMEMBERS', base .. 'arrivals')) do
        redis.call('EXPIRE', base .. 'arrived:' .. chord, ttl)
    end
end
"""

# KEYS: run, then every other key of the run. ARGV: time, seconds to expire, channel,
# prefix.
_SETTLE = (
    _EXPIRE
    + _EXPIRE_ARRIVALS
    + _INDEX
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'settled_at', ARGV[1])
expire(ARGV[2])
expire_arrivals(ARGV[2])
touch_index(ARGV[4], ARGV[2], KEYS[1])
redis.call('PUBLISH', ARGV[3], 'settled')
return 1
"""
)

# KEYS: run, claims. ARGV: state, time, "=step", "=error" ('' for none), '1' to settle,
# "=marker" that must not be claimed ('' for none), the channel announcing the settling,
# seconds to expire, prefix, run id.
_FINISH = (
    _ENDED
    + _INDEX
    + """
local fields = redis.call('HMGET', KEYS[1], 'state', 'created_at', 'definition')
local state = fields[1]
if (not state) or ended[state] then return 0 end
if ARGV[6] ~= '' and redis.call('HEXISTS', KEYS[2], string.sub(ARGV[6], 2)) == 1 then
    return 0
end
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'finished_at', ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'step', string.sub(ARGV[3], 2)) end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'error', string.sub(ARGV[4], 2)) end
move_index(ARGV[9], ARGV[10], state, ARGV[1], fields[2], fields[3])
expire_index(ARGV[9], ARGV[8], ARGV[1], fields[3])
if ARGV[5] == '1' then
    redis.call('HSET', KEYS[1], 'settled_at', ARGV[2])
    redis.call('PUBLISH', ARGV[7], 'settled')
end
return 1
"""
)

# KEYS: run, steps, claims, plan. ARGV: seconds to expire, prefix, run id, the resumes
# the run must have had, time, how many steps to reset (n), n pairs of path and record,
# then the claim markers to drop.
_RESUME = (
    _EXPIRE
    + _EXPIRE_ARRIVALS
    + _INDEX
    + """
local fields = redis.call(
    'HMGET', KEYS[1], 'state', 'settled_at', 'created_at', 'definition', 'resumes', 'started_at'
)
if not (fields[1] == 'FAILURE' or fields[1] == 'CANCELLED') or not fields[2] then return 0 end
if tonumber(fields[5] or '0') ~= tonumber(ARGV[4]) then return 0 end
redis.call('HSET', KEYS[1], 'state', 'RUNNING', 'failed', 0, 'resumes', ARGV[4] + 1)
if not fields[6] then redis.call('HSET', KEYS[1], 'started_at', ARGV[5]) end
redis.call('HDEL', KEYS[1], 'finished_at', 'settled_at', 'step', 'error')
local reset = tonumber(ARGV[6])
for i = 1, reset do redis.call('HSET', KEYS[2], ARGV[5 + 2 * i], ARGV[6 + 2 * i]) end
for i = 7 + 2 * reset, #ARGV do redis.call('HDEL', KEYS[3], ARGV[i]) end
move_index(ARGV[2], ARGV[3], fields[1], 'RUNNING', fields[3], fields[4])
expire(ARGV[1])
expire_arrivals(ARGV[1])
expire_index(ARGV[2], ARGV[1], 'RUNNING', fields[4])
return 1
"""
)

# KEYS: run, target hash, then every other key of the run (to refresh their expiry).
# ARGV: mode ('always', 'once': only a new field, 'open': only a new field while the
# run has not ended, 'if': only if the field's value is ARGV[5], '' for none), field,
# value, seconds to expire, expected value, '1' if the value is a step's record (counted
# in the run's progress), prefix.
_HSET_IF_RUN = (
    _ENDED
    + _INDEX
    + _COUNT
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local written
local before = false
if ARGV[1] == 'open' then
    if ended[redis.call('HGET', KEYS[1], 'state')] then return 0 end
    written = redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[3])
elseif ARGV[1] == 'once' then
    written = redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[3])
elseif ARGV[1] == 'if' then
    before = redis.call('HGET', KEYS[2], ARGV[2])
    if (before or '') ~= ARGV[5] then return 0 end
    redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
    written = 1
else
    if ARGV[6] == '1' then before = redis.call('HGET', KEYS[2], ARGV[2]) end
    redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
    written = 1
end
if ARGV[6] == '1' and written == 1 then count(KEYS[1], before, ARGV[3]) end
if tonumber(ARGV[4]) > 0 then
    for _, key in ipairs(KEYS) do redis.call('EXPIRE', key, ARGV[4]) end
end
touch_index(ARGV[7], ARGV[4], KEYS[1])
return written
"""
)

# KEYS: run, arrivals of the chord, the run's chords. ARGV: member, seconds to expire,
# chord.
_ARRIVE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[3])
if tonumber(ARGV[2]) > 0 then
    redis.call('EXPIRE', KEYS[2], ARGV[2])
    redis.call('EXPIRE', KEYS[3], ARGV[2])
end
return redis.call('SCARD', KEYS[2])
"""

# KEYS: run, plan, claims, steps, the run's chords, then the arrivals of each of those
# chords. ARGV: prefix, run id, the state the run must have ('' for any ended state),
# the time it must have been created before, the index key that listed it. Deletes the
# run's keys and index entries; returns 1 if it did, 2 if the run is kept (under way,
# in another state or newer), 0 if the run was gone already (its leftovers removed), -1
# if its chords are no longer those given (read them again).
_PRUNE = (
    _ENDED
    + _INDEX
    + """
local prefix, id = ARGV[1], ARGV[2]
local fields = redis.call('HMGET', KEYS[1], 'state', 'created_at', 'definition')
if not fields[1] then
    for _, key in ipairs(KEYS) do redis.call('DEL', key) end
    forget(prefix, id, ARGV[5])
    return 0
end
if not ended[fields[1]] or (ARGV[3] ~= '' and fields[1] ~= ARGV[3])
    or tonumber(fields[2]) >= tonumber(ARGV[4]) then
    return 2
end
if redis.call('SCARD', KEYS[5]) ~= #KEYS - 5 then return -1 end
for _, key in ipairs(KEYS) do redis.call('DEL', key) end
forget(prefix, id, fields[3] and indexes(prefix, fields[1], fields[3])[3] or '')
return 1
"""
)

# KEYS: the hashes of runs an index listed. ARGV: prefix, the index key, then the runs'
# ids. Removes the runs that are gone from the index (every run, every state, that key).
_FORGET = (
    _INDEX
    + """
local forgotten = 0
for i, key in ipairs(KEYS) do
    if redis.call('EXISTS', key) == 0 then
        forget(ARGV[1], ARGV[2 + i], ARGV[2])
        forgotten = forgotten + 1
    end
end
return forgotten
"""
)

# KEYS: the slot list of a concurrency key. ARGV: the new text ('' deletes it), the text
# expected ('' for none), seconds to expire (0: never). Returns 1 if stored.
_PUT_SLOTS_IF = """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[2] then return 0 end
if ARGV[1] == '' then
    redis.call('DEL', KEYS[1])
elseif tonumber(ARGV[3]) > 0 then
    redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
else
    redis.call('SET', KEYS[1], ARGV[1])
end
return 1
"""

_RUN_PARTS = ("run", "plan", "claims", "steps")

_SWEEP = 4
"""How many of the oldest entries (that may have expired) of each index a create checks."""

_BATCH = 1000
"""The most index entries read at once when listing or pruning runs."""


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
        self._resume = client.register_script(_RESUME)
        self._prune = client.register_script(_PRUNE)
        self._forget = client.register_script(_FORGET)
        self._put_slots_if = client.register_script(_PUT_SLOTS_IF)

    def _key(self, run_id: str, part: str) -> str:
        return f"{self._prefix}:{{{run_id}}}:{part}"

    def _index(self, kind: str = "", name: str = "") -> str:
        """The index of every run, or of the runs of one ``kind`` (state, definition) ``name``."""
        return f"{self._prefix}:runs:{kind}:{name}" if kind else f"{self._prefix}:runs"

    def _channel(self, run_id: str) -> str:
        return self._key(run_id, "settled")

    def _write(
        self,
        run_id: str,
        part: str,
        field: str,
        value: str,
        mode: str,
        expected: str = "",
    ) -> bool:
        return bool(
            self._hset_if_run(**self._write_call(run_id, part, field, value, mode, expected))
        )

    def _write_call(
        self, run_id: str, part: str, field: str, value: str, mode: str, expected: str = ""
    ) -> dict[str, list[Any]]:
        """The keys and arguments of the write script for one field of a run's ``part``."""
        keys = [self._key(run_id, "run"), self._key(run_id, part)]
        keys += [self._key(run_id, other) for other in _RUN_PARTS[1:] if other != part]
        counted = "1" if part == "steps" else "0"
        return {
            "keys": keys,
            "args": [mode, field, value, self._ttl, expected, counted, self._prefix],
        }

    @override
    def create(self, run_id: str, plan: EncodedPlan, summary: RunSummary = NO_SUMMARY) -> bool:
        # The creation time as a record gives it back (whole microseconds), so that a
        # record's created_at, passed to runs() or prune(), finds the run's index entries.
        created = to_seconds(to_moment(now()))
        keys = [self._key(run_id, "run"), self._key(run_id, "plan")]
        args = [
            repr(created),
            plan.content_type,
            plan.content_encoding,
            plan.body,
            self._ttl,
            self._prefix,
            run_id,
            summary.definition,
            summary.arguments,
            summary.total,
            repr(created - self._ttl),
            _SWEEP,
        ]
        return bool(self._create(keys=keys, args=args))

    @override
    def runs(
        self,
        *,
        definition: str | None = None,
        state: RunState | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
    ) -> list[tuple[str, RunRecord]]:
        upper = "+inf" if until is None else f"({to_seconds(until)!r}"
        lower = "-inf" if since is None else repr(to_seconds(since))
        index = self._narrowest(definition, state, upper, lower)

        def wanted(record: RunRecord) -> bool:
            return (
                (definition is None or record.definition == definition)
                and (state is None or record.state is state)
                and (since is None or record.created_at >= since)
                and (until is None or record.created_at < until)
            )

        found: list[tuple[str, RunRecord]] = []
        skip, size = 0, min(limit, _BATCH)
        while len(found) < limit:
            # Newest first, from ``upper`` down (skipping the entries read already at it).
            entries = [
                (member.decode(), score)
                for member, score in self._client.zrevrangebyscore(
                    index, upper, lower, start=skip, num=size, withscores=True
                )
            ]
            if not entries:
                break
            with self._client.pipeline(transaction=False) as pipe:
                for run_id, _ in entries:
                    pipe.hgetall(self._key(run_id, "run"))
                stored = pipe.execute()
            gone: set[str] = set()
            for (run_id, _), raw in zip(entries, stored, strict=True):
                record = _run_record(raw)
                if record is None:
                    gone.add(run_id)
                elif len(found) < limit and wanted(record):
                    found.append((run_id, record))
            if gone:
                self._forget_gone(index, gone)
            if len(entries) < size:
                break
            last = entries[-1][1]
            ties = sum(1 for run_id, score in entries if score == last and run_id not in gone)
            skip = skip + ties if upper == repr(last) else ties
            upper = repr(last)
            size = min(size * 2, _BATCH)
        return found

    def _narrowest(
        self, definition: str | None, state: RunState | None, upper: str, lower: str
    ) -> str:
        """The index with the fewest entries between the bounds that holds every run wanted."""
        if state is None:
            return self._index() if definition is None else self._index("definition", definition)
        if definition is None:
            return self._index("state", state.value)
        candidates = [self._index("state", state.value), self._index("definition", definition)]
        with self._client.pipeline(transaction=False) as pipe:
            for key in candidates:
                pipe.zcount(key, lower, upper)
            counts = pipe.execute()
        return min(zip(counts, candidates, strict=True))[1]

    def _forget_gone(self, index: str, run_ids: Collection[str]) -> None:
        """Remove the index entries of the runs among ``run_ids`` whose keys have expired."""
        gone = list(run_ids)
        keys = [self._key(run_id, "run") for run_id in gone]
        self._forget(keys=keys, args=[self._prefix, index, *gone])

    @override
    def prune(self, before: datetime, state: RunState | None = None) -> int:
        if state is not None and not state.finished:
            return 0
        cutoff = to_seconds(before)
        pruned = 0
        for ended in [state] if state is not None else [s for s in RunState if s.finished]:
            index = self._index("state", ended.value)
            kept = 0  # the oldest entries of the index, read and kept: skipped
            while True:
                run_ids = [
                    member.decode()
                    for member in self._client.zrangebyscore(
                        index, "-inf", f"({cutoff!r}", start=kept, num=_BATCH
                    )
                ]
                if not run_ids:
                    break
                outcomes = self._prune_runs(run_ids, index, cutoff, state)
                for run_id, outcome in zip(run_ids, outcomes, strict=True):
                    for _ in range(3):  # its chords changed: read them again
                        if outcome != -1:
                            break
                        outcome = self._prune_runs([run_id], index, cutoff, state)[0]
                    pruned += int(outcome == 1)
                    kept += int(outcome in (2, -1))
        return pruned

    def _prune_runs(
        self, run_ids: list[str], index: str, cutoff: float, state: RunState | None
    ) -> list[int]:
        """Delete the runs among ``run_ids`` that ended before ``cutoff``; what :data:`_PRUNE` says."""
        with self._client.pipeline(transaction=False) as pipe:
            for run_id in run_ids:
                pipe.smembers(self._key(run_id, "arrivals"))
            chords = pipe.execute()
        with self._client.pipeline(transaction=False) as pipe:
            for run_id, arrived in zip(run_ids, chords, strict=True):
                keys = [self._key(run_id, part) for part in (*_RUN_PARTS, "arrivals")]
                keys += [self._key(run_id, f"arrived:{chord.decode()}") for chord in arrived]
                args = [
                    self._prefix,
                    run_id,
                    "" if state is None else state.value,
                    repr(cutoff),
                    index,
                ]
                self._prune(keys=keys, args=args, client=pipe)
            return [int(outcome) for outcome in pipe.execute()]

    @override
    def delete(self, run_id: str) -> None:
        with self._client.pipeline(transaction=False) as pipe:
            pipe.hget(self._key(run_id, "run"), "definition")
            pipe.smembers(self._key(run_id, "arrivals"))
            definition, chords = pipe.execute()
        keys = [self._key(run_id, part) for part in (*_RUN_PARTS, "arrivals")]
        keys += [self._key(run_id, f"arrived:{chord.decode()}") for chord in chords]
        indexes = [self._index()] + [self._index("state", state.value) for state in RunState]
        if definition is not None:
            indexes.append(self._index("definition", definition.decode()))
        with self._client.pipeline(transaction=True) as pipe:
            pipe.delete(*keys)
            for index in indexes:
                pipe.zrem(index, run_id)
            pipe.execute()

    @override
    def plan(self, run_id: str) -> EncodedPlan | None:
        return _plan(self._client.hgetall(self._key(run_id, "plan")))

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
    def first_look(self, run_id: str, path: str | None = None) -> FirstLook:
        with self._client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self._key(run_id, "run"))
            pipe.hgetall(self._key(run_id, "plan"))
            if path is not None:
                pipe.hget(self._key(run_id, "steps"), path)
            run, plan, *step = pipe.execute()
        found = StepRecord.decode(step[0]) if step and step[0] else None
        return FirstLook(_run_record(run), _plan(plan), found)

    @override
    def start_step(
        self, run_id: str, path: str, record: StepRecord, created_at: datetime
    ) -> StepStart:
        keys = [self._key(run_id, part) for part in ("run", "steps", "plan", "claims")]
        args = [
            path,
            record.encode(),
            repr(to_seconds(created_at)),
            self._ttl,
            repr(now()),
            self._prefix,
            run_id,
        ]
        found = self._start_step(keys=keys, args=args)
        if found[0]:
            return StepStart(True)
        run = dict(zip(found[1][::2], found[1][1::2], strict=True))
        return StepStart(
            False, _run_record(run), StepRecord.decode(found[2]) if found[2] else None
        )

    @override
    def resume(
        self, run_id: str, resumes: int, reset: Mapping[str, StepRecord], drop: Collection[str]
    ) -> bool:
        keys = [self._key(run_id, part) for part in ("run", "steps", "claims", "plan")]
        args: list[Any] = [self._ttl, self._prefix, run_id, resumes, repr(now()), len(reset)]
        for path, record in reset.items():
            args += [path, record.encode()]
        args += list(drop)
        return bool(self._resume(keys=keys, args=args))

    @override
    def mark_running(self, run_id: str) -> None:
        args = [repr(now()), self._ttl, self._prefix, run_id]
        self._mark_running(keys=[self._key(run_id, "run")], args=args)

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
            self._ttl,
            self._prefix,
            run_id,
        ]
        keys = [self._key(run_id, "run"), self._key(run_id, "claims")]
        return bool(self._finish(keys=keys, args=args))

    @override
    def settle(self, run_id: str) -> None:
        keys = [self._key(run_id, part) for part in _RUN_PARTS]
        args = [repr(now()), self._ttl, self._channel(run_id), self._prefix]
        self._settle(keys=keys, args=args)

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
        keys = [self._key(run_id, part) for part in ("run", f"arrived:{chord}", "arrivals")]
        return int(self._arrive(keys=keys, args=[member, self._ttl, chord]))

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
        keys += [self._key(run_id, part) for part in ("steps", "plan", "arrivals")]
        path, record = succeeded if succeeded else ("", None)
        marker = Claim.joined(chord).marker
        args = [
            member,
            size,
            marker,
            self._ttl,
            path,
            record.encode() if record else "",
            chord,
            self._prefix,
        ]
        complete, claimed = self._arrive_and_claim(keys=keys, args=args)
        return Arrival(bool(complete), bool(claimed))

    @override
    def put_step(self, run_id: str, path: str, record: StepRecord) -> None:
        self._write(run_id, "steps", path, record.encode(), "always")

    @override
    @contextmanager
    def putting_step(self, run_id: str, path: str, record: StepRecord) -> Iterator[None]:
        call = self._write_call(run_id, "steps", path, record.encode(), "always")
        pool = self._client.connection_pool
        sent = None
        try:
            sent = _send_script(pool, self._hset_if_run.sha, **call)
            if sent is None:  # no connection to send it on: written the usual way, first
                self._hset_if_run(**call)
            yield
        finally:
            if sent is not None and not _answered(pool, sent):
                self._hset_if_run(**call)  # the script is loaded again

    @override
    def put_step_if(
        self, run_id: str, path: str, record: StepRecord, expected: StepRecord | None
    ) -> bool:
        was = "" if expected is None else expected.encode()
        return self._write(run_id, "steps", path, record.encode(), "if", was)

    @override
    def slots(self, key: str) -> str | None:
        stored = self._client.get(self._slots_key(key))
        return None if stored is None else bytes(stored).decode()

    @override
    def put_slots_if(self, key: str, text: str | None, expected: str | None) -> bool:
        # They expire with the runs: a list outliving its runs' records names nothing.
        args = [text or "", expected or "", self._ttl]
        return bool(self._put_slots_if(keys=[self._slots_key(key)], args=args))

    def _slots_key(self, key: str) -> str:
        return f"{self._prefix}:slots:{key}"

    @override
    def step(self, run_id: str, path: str) -> StepRecord | None:
        stored = self._client.hget(self._key(run_id, "steps"), path)
        return StepRecord.decode(stored) if stored else None

    @override
    def steps(self, run_id: str) -> dict[str, StepRecord]:
        stored = self._client.hgetall(self._key(run_id, "steps"))
        return {path.decode(): StepRecord.decode(raw) for path, raw in stored.items()}


def _send_script(pool: Any, sha: str, keys: list[Any], args: list[Any]) -> Any:
    """A connection of ``pool`` on which a call of the script ``sha`` went out, unanswered yet.

    ``None`` if no connection could be had or the call could not be sent;
    the connection is given back then, and whenever sending is interrupted.
    """
    try:
        connection = pool.get_connection(*_GET_CONNECTION)
    except (redis_errors.ConnectionError, redis_errors.TimeoutError):
        return None
    try:
        connection.send_command("EVALSHA", sha, len(keys), *keys, *args)
    except (redis_errors.ConnectionError, redis_errors.TimeoutError):
        pool.release(connection)  # redis-py disconnected it
        return None
    except BaseException:
        pool.release(connection)
        raise
    return connection


def _get_connection_arguments() -> tuple[str, ...]:
    """The arguments of ``ConnectionPool.get_connection``: redis-py before 5.3 names a command."""
    parameter = inspect.signature(ConnectionPool.get_connection).parameters.get("command_name")
    return ("EVALSHA",) if parameter and parameter.default is inspect.Parameter.empty else ()


_GET_CONNECTION = _get_connection_arguments()


def _answered(pool: Any, connection: Any) -> bool:
    """Read the answer of a call :func:`_send_script` sent, and give the connection back.

    ``False`` if the call may not have run: the server had lost the script
    (it restarted or was flushed), or the connection broke. Any other error
    the server answered is raised.
    """
    try:
        connection.read_response()
    except redis_errors.NoScriptError:
        return False
    except (redis_errors.ConnectionError, redis_errors.TimeoutError):
        return False  # redis-py disconnected it
    finally:
        pool.release(connection)
    return True


def _plan(stored: dict[bytes, bytes]) -> EncodedPlan | None:
    """A plan from its Redis hash (``None`` for a missing run)."""
    if not stored:
        return None
    return EncodedPlan(stored[b"type"].decode(), stored[b"encoding"].decode(), stored[b"body"])


def _run_record(stored: dict[bytes, bytes]) -> RunRecord | None:
    """A run record from its Redis hash (``None`` for a missing run).

    Hashes written before a field existed read with its default.
    """
    if not stored:
        return None
    fields = {key.decode(): value.decode() for key, value in stored.items()}

    def moment(name: str) -> datetime | None:
        value = fields.get(name)
        return to_moment(float(value)) if value else None

    return RunRecord(
        state=RunState(fields["state"]),
        created_at=to_moment(float(fields["created_at"])),
        finished_at=moment("finished_at"),
        step=fields.get("step"),
        error=fields.get("error"),
        settled_at=moment("settled_at"),
        started_at=moment("started_at"),
        definition=fields.get("definition", ""),
        arguments=fields.get("arguments", ""),
        done=int(fields.get("done", 0)),
        failed=int(fields.get("failed", 0)),
        total=int(fields.get("total", 0)),
        resumes=int(fields.get("resumes", 0)),
    )
