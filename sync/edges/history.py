"""The history in SQLite (through sqlite-utils): the only module that touches the database.

Tables: what each cycle saw and did (`cycles`, `observations`, `decisions`,
`job_changes`, `errors`: pruned after `keep`, a bounded batch a cycle), the originals of
the jobs we capped (`job_originals`) and named state (`state`: the memory, the limits'
originals, the farms, the farm as the last cycle left it). WAL mode, durable state
checkpointed into the main file; created 0600; one writer, held by a lock on the file
itself; `reading()` opens a copy that writes nothing.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlite_utils

from sync.values.errors import HistoryError, HistoryLocked
from sync.values.settings import CYCLE_TABLES

log = logging.getLogger("license_sync")

SCHEMA: dict[str, dict[str, Any]] = {
    "cycles": {
        "id": int,
        "started": str,
        "finished": str,
        "result": str,
        "duration": float,
        "changes": int,
        "errors": int,
        "policy_sha": str,
        "dry_run": int,
    },
    "observations": {
        "cycle_id": int,
        "at": str,
        "source": str,
        "up": int,
        "vendor": str,
        "feature": str,
        "total": int,
        "in_use": int,
        "reserved": int,
        "queued": int,
    },
    "decisions": {
        "cycle_id": int,
        "at": str,
        "pool": str,
        "farm_id": str,
        "limit_ref": str,
        "limit_id": str,
        "current": int,
        "target": int,
        "new": int,
        "changed": int,
        "applied": int,
        "status": str,
        "reason": str,  # in words, as `plan` printed it
        "why": str,  # the same as data (JSON): what `replay` compares
        "total": int,
        "in_use": int,
        "farm_use": int,
        "external": int,
        "reserve": int,
        "current_count": int,
    },
    "job_changes": {
        "cycle_id": int,
        "at": str,
        "pool": str,
        "farm_id": str,
        "queue_id": str,
        "job_id": str,
        "original": int,
        "old": int,
        "new": int,
        "kind": str,
        "reason": str,
        "why": str,
    },
    "errors": {"cycle_id": int, "at": str, "where": str, "message": str},
    # each checkout a license server's log says it refused (docs/operations.md, "Denials")
    "denials": {
        "cycle_id": int,
        "at": str,
        "source": str,
        "pool": str,
        "feature": str,
        "user": str,
        "host": str,
        "who": str,  # artist | farm
        "reason": str,
        # refusals of one cycle alike in all but their time, as one row: a flood of
        # thousands a second is a few rows, not thousands (`at` is the first's)
        "count": int,
    },
    # each license a farm host held around its pool's limits, and the run that held it
    # (docs/design.md, "Use around the limit"): `history --undeclared` adds them up
    "undeclared": {
        "cycle_id": int,
        "at": str,
        "pool": str,
        "host": str,
        "count": int,
        "worker_id": str,
        "queue_id": str,
        "job_id": str,
        "job_name": str,
        "step_id": str,
        "step_name": str,
    },
    "state": {"key": str, "value": str, "updated": str},
    "job_originals": {
        "job_id": str,
        "farm_id": str,
        "queue_id": str,
        "pool": str,
        "limit_id": str,
        "original": int,
        "last_written": int,
        "pending": int,
        "manual": int,
        "updated": str,
    },
}


PRUNED = tuple(CYCLE_TABLES.items())
# state that must outlive a lost -wal: the originals and paused queues `restore` puts back
DURABLE_STATE = frozenset({"limit_originals", "memory", "unadopted_jobs", "farms"})
PRUNE_BATCH = 20_000  # rows a table and cycle: a cycle's worth at 50 pools is ~100
VACUUM_PAGES = 2_000  # pages handed back a cycle (8 MiB at SQLite's 4 KiB pages)


class History:
    """Append-only records of what was seen and done, plus small named state."""

    def __init__(
        self,
        path: str,
        keep: float = 30 * 86400,
        timeout: float = 5.0,
        lock: bool = False,
        journal: str = "wal",
    ):
        """`lock`: hold a lock on the file while open, so a second writer refuses to start
        (`HistoryLocked`): two services would take each other's caps for manual edits.
        `journal`: `wal` on a local disk; `rollback` on a network volume (NFS, EFS), where
        WAL's shared memory does not work and flock is emulated by POSIX locks that would
        mix with SQLite's own: the lock is then a POSIX lock on `PATH.lock`."""
        self.path = path
        self.keep = keep
        self.journal = journal
        self._timeout = timeout
        self._lock_fd: int | None = None
        try:
            if lock and path != ":memory:":
                take = _take_lock if journal == "wal" else _take_lock_file
                self._lock_fd = take(path)
            if path != ":memory:":
                parent = os.path.dirname(os.path.abspath(path))
                os.makedirs(parent, exist_ok=True)
                if not os.path.exists(path):
                    # create it private: the history names users and hosts
                    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
            conn = sqlite3.connect(path, timeout=timeout, check_same_thread=False)
            self.db = sqlite_utils.Database(conn)
            if not self.db.table_names():
                # pages freed by pruning go back to the file system a few at a time
                # (only settable before the first table)
                self.db.execute("PRAGMA auto_vacuum = INCREMENTAL")
            if path != ":memory:" and journal == "wal":
                self.db.enable_wal()
            elif path != ":memory:":
                # a rollback journal, synced in full: each commit is on the volume before
                # it returns, whatever the network does after
                self.db.execute("PRAGMA journal_mode = DELETE").fetchall()
                self.db.execute("PRAGMA synchronous = FULL")
            self._create()
            # which files we opened: a history (or its -wal or -shm, which hold what is not
            # checkpointed yet) removed or replaced under us is noticed
            self._identity = _identities(path)
            self.fresh = self.db.table("cycles").count == 0 and not self.job_originals()
        except sqlite3.DatabaseError as e:
            self._release()
            raise HistoryError(
                f"cannot open the history {path!r}: {e}; move it aside and "
                "restart to begin a new one"
            ) from e
        except OSError as e:  # a read-only volume, no inode left, no permission
            self._release()
            raise HistoryError(f"cannot open the history {path!r}: {e.strerror}") from e

    @classmethod
    def reading(cls, path: str) -> History:
        """The history opened to read only (`history`, `replay`, `plan --against`): it
        writes nothing — no table, no index, no journal switch — so a copy on a read-only
        volume will do, and reading beside the running service changes nothing."""
        h = cls.__new__(cls)  # none of __init__'s creating
        h.path, h.keep, h._lock_fd, h.fresh = path, 30 * 86400, None, False
        h.read_only = True
        uri = Path(path).absolute().as_uri()
        for mode in ("mode=ro", "immutable=1"):  # immutable: a copy whose -shm cannot be made
            try:
                conn = sqlite3.connect(f"{uri}?{mode}", uri=True, check_same_thread=False)
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                break
            except sqlite3.DatabaseError as e:
                error = e
        else:
            raise HistoryError(f"cannot read the history {path!r}: {error}") from error
        h.db = sqlite_utils.Database(conn)
        h._identity = _identities(path)
        return h

    def _create(self) -> None:
        for name, cols in SCHEMA.items():
            table = self.db.table(name)
            if not table.exists():
                if name == "cycles":
                    table.create(cols, pk="id")
                elif name == "state":
                    table.create(cols, pk="key")
                elif name == "job_originals":
                    table.create(cols, pk="job_id")
                else:
                    table.create(cols)
            else:
                have = table.columns_dict  # one PRAGMA, not one a column
                missing = {c: t for c, t in cols.items() if c not in have}
                for col, typ in missing.items():
                    table.add_column(col, typ)
        for name, index in (
            ("observations", ["cycle_id"]),
            ("observations", ["at"]),  # prune and `history --since` by time
            ("decisions", ["pool", "at"]),
            ("decisions", ["at"]),
            ("job_changes", ["job_id"]),
            ("job_changes", ["at"]),
            ("errors", ["cycle_id"]),
            ("errors", ["at"]),
            ("denials", ["at"]),
            ("undeclared", ["at"]),
            ("cycles", ["started"]),
        ):
            self.db.table(name).create_index(index, if_not_exists=True)

    read_only = False  # opened by `reading`: every write is left undone

    def _write(self, fn: Any) -> Any:
        if self.read_only:  # `restore` from a copy: the values go back, unrecorded
            return None
        try:
            with self.db.conn:
                return fn()
        except sqlite3.Error as e:
            raise HistoryError(f"history write to {self.path!r} failed: {e}") from e

    def record_cycle(
        self,
        cycle: dict[str, Any],
        observations: Iterable[dict[str, Any]],
        decisions: Iterable[dict[str, Any]],
        errors: Iterable[dict[str, Any]],
        job_changes: Iterable[dict[str, Any]] = (),
        denials: Iterable[dict[str, Any]] = (),
        undeclared: Iterable[dict[str, Any]] = (),
    ) -> int:
        """One cycle's rows in one transaction; returns the cycle id."""

        def go() -> int:
            cid = self.db.table("cycles").insert(cycle).last_pk
            for table, rows in (
                ("observations", observations),
                ("decisions", decisions),
                ("errors", errors),
                ("job_changes", job_changes),
                ("denials", denials),
                ("undeclared", undeclared),
            ):
                tagged = [{**r, "cycle_id": cid} for r in rows]
                if tagged:
                    self.db.table(table).insert_all(tagged)
            return int(cid or 0)

        return int(self._write(go) or 0)

    def set_state(self, key: str, value: Any, now: datetime) -> None:
        self._write(
            lambda: self.db.table("state").upsert(
                {"key": key, "value": json.dumps(value), "updated": now.isoformat()}, pk="key"
            )
        )
        if key in DURABLE_STATE:
            self.checkpoint()

    def get_state(self, key: str, default: Any = None) -> Any:
        try:
            row = self.db.table("state").get(key)
        except sqlite_utils.db.NotFoundError:
            return default
        except sqlite3.Error as e:
            raise HistoryError(f"history read failed: {e}") from e
        return json.loads(row["value"])

    # -- originals of jobs we capped: what `restore` puts back ------------------------------------

    def job_originals(self) -> dict[str, dict[str, Any]]:
        try:
            return {r["job_id"]: r for r in self.db.table("job_originals").rows}
        except sqlite3.Error as e:
            raise HistoryError(f"history read failed: {e}") from e

    def save_job_originals(self, rows: Iterable[dict[str, Any]], now: datetime) -> None:
        """Upsert records in one transaction; raises HistoryError if they are not on disk."""
        stamped = [{**r, "updated": now.isoformat()} for r in rows]
        if stamped:
            self._write(lambda: self.db.table("job_originals").upsert_all(stamped, pk="job_id"))
            self.checkpoint()

    def checkpoint(self) -> None:
        """What the WAL holds, into the main file (as much as readers allow, never waiting
        for them): originals survive a `-wal` deleted by a cleanup or a volume restore."""
        if self.read_only:
            return
        try:
            self.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as e:
            raise HistoryError(f"history checkpoint of {self.path!r} failed: {e}") from e

    def drop_job_originals(self, job_ids: Iterable[str]) -> None:
        ids = list(job_ids)
        if ids:
            self._write(
                lambda: self.db.execute(
                    f"delete from job_originals where job_id in ({','.join('?' * len(ids))})", ids
                )
            )

    def record_job_changes(self, rows: Iterable[dict[str, Any]]) -> None:
        rows = list(rows)
        if rows:
            self._write(lambda: self.db.table("job_changes").insert_all(rows))

    def prune(self, now: datetime, batch: int = PRUNE_BATCH) -> int:
        """Delete rows older than `keep`, at most `batch` a table: a backlog (a retention
        shortened, a history from a long stop) drains over cycles instead of stalling
        one. Freed pages go back to the file system a bounded number at a time."""
        cutoff = (now - timedelta(seconds=self.keep)).isoformat()

        def go() -> int:
            n = 0
            for table, col in PRUNED:
                cur = self.db.execute(
                    f"delete from [{table}] where rowid in (select rowid from [{table}] "
                    f"where [{col}] < ? order by [{col}] limit ?)",
                    [cutoff, batch],
                )
                n += cur.rowcount
            return n

        n = int(self._write(go))
        if n:
            try:
                # executescript steps the pragma to the end; execute() frees one page
                self.db.conn.executescript(f"PRAGMA incremental_vacuum({VACUUM_PAGES});")
            except sqlite3.Error as e:
                raise HistoryError(f"history vacuum failed: {e}") from e
        return n

    def query(
        self,
        table: str,
        since: datetime | None = None,
        pool: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        return list(self.rows(table, since=since, pool=pool, limit=limit))

    def rows(
        self,
        table: str,
        since: datetime | None = None,
        pool: str | None = None,
        limit: int | None = None,
        changed_only: bool = False,
    ) -> Iterator[dict[str, Any]]:
        """A table's rows, oldest first, filtered by SQL and read as they are used: a
        month of decisions is never in memory at once. `changed_only`: decisions that
        changed something or failed."""
        where, args = [], []
        col = CYCLE_TABLES.get(table, "at")
        if since is not None:
            where.append(f"[{col}] >= ?")
            args.append(since.isoformat())
        if pool is not None and table in ("decisions", "job_changes", "denials", "undeclared"):
            where.append("pool = ?")
            args.append(pool)
        if changed_only and table == "decisions":
            where.append("(changed = 1 or status != 'ok')")
        sql = f"select * from [{table}]"
        if where:
            sql += " where " + " and ".join(where)
        sql += f" order by [{col}]"
        if limit:
            sql += f" limit {int(limit)}"
        try:
            yield from self.db.query(sql, args)
        except sqlite3.Error as e:
            raise HistoryError(f"history read failed: {e}") from e

    def undeclared_by_step(
        self, since: datetime | None = None, pool: str | None = None
    ) -> list[dict[str, Any]]:
        """Use around the limits per pool, job and step: the cycles it was seen in, the
        most at once, and license-hours (each cycle's count until the next cycle began),
        most first."""
        sql = """
            with c as (select started, lead(started) over (order by started) as next
                       from cycles),
            per as (select u.pool, u.job_id, u.step_id, u.at, max(u.job_name) as job,
                           max(u.step_name) as step, sum(u.count) as n,
                           sum(u.count) * coalesce(julianday(c.next) - julianday(u.at), 0)
                             * 24 as hours
                    from undeclared u left join c on c.started = u.at
                    where u.at >= ? and (? is null or u.pool = ?)
                    group by u.pool, u.job_id, u.step_id, u.at)
            select pool, coalesce(nullif(max(job), ''), job_id) as job,
                   coalesce(nullif(max(step), ''), step_id) as step,
                   count(*) as cycles, max(n) as most, sum(hours) as license_hours,
                   (select group_concat(distinct x.host) from undeclared x
                    where x.pool = per.pool and x.job_id = per.job_id
                      and x.step_id = per.step_id and x.at >= ?) as hosts,
                   min(at) as first, max(at) as last
            from per group by pool, job_id, step_id order by sum(hours) desc, pool, job
        """
        start = since.isoformat() if since is not None else ""
        try:
            return [dict(r) for r in self.db.query(sql, [start, pool, pool, start])]
        except sqlite3.Error as e:
            raise HistoryError(f"history read failed: {e}") from e

    def pools(self) -> list[str]:
        """Every pool the history has a decision of."""
        try:
            return [r[0] for r in self.db.execute("select distinct pool from decisions order by 1")]
        except sqlite3.Error as e:
            raise HistoryError(f"history read failed: {e}") from e

    def external_use(self, pool: str, since: datetime) -> list[tuple[datetime, int]]:
        """(time, external use) of every cycle that read the pool's sources, oldest first:
        what a learned reserve learns from."""
        sql = (
            "select at, max(external) as external from decisions where pool = ? and at >= ? "
            "and status = 'ok' and external is not null group by at order by at"
        )
        try:
            rows = self.db.execute(sql, [pool, since.isoformat()]).fetchall()
        except sqlite3.Error as e:
            raise HistoryError(f"history read failed: {e}") from e
        return [(datetime.fromisoformat(at), int(ext)) for at, ext in rows]

    def replaced(self) -> bool:
        """True when the file we opened was removed or replaced (another inode) since: our
        writes go to a file nobody will read, and the originals in it are lost to restore."""
        if self.path == ":memory:":
            return False
        now = _identities(self.path)
        if now[0] != self._identity[0]:
            return True
        # a companion removed or replaced (it was there when we opened) while the main file
        # is ours: what it held goes into the main file, and SQLite makes new ones
        moved = any(
            was is not None and was != it for was, it in zip(self._identity, now, strict=True)
        )
        return moved and not self._heal()

    def _heal(self) -> bool:
        """The -wal or -shm removed under us: checkpoint what the WAL we still hold open
        has into the main file, then reopen the connection so SQLite makes new companions
        (the lock on the file is another descriptor, and stays). True once healed."""
        try:
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            self.db.conn.close()
            conn = sqlite3.connect(self.path, timeout=self._timeout, check_same_thread=False)
            self.db = sqlite_utils.Database(conn)
            self.db.enable_wal()
        except sqlite3.Error as e:
            log.error("the history's -wal or -shm was removed and could not be made anew: %s", e)
            return False
        self._identity = _identities(self.path)
        log.warning(
            "the history's -wal or -shm was removed while open: what it held is checkpointed "
            "into %s and SQLite has made new ones (nothing is lost; do not remove them)",
            self.path,
        )
        return True

    def taken_over(self) -> bool:
        """True when the file now at our path is not ours and another writer holds its
        lock: a second instance started once ours was removed. Then we must write nothing."""
        if self._lock_fd is None:
            return False
        if self.journal != "wal":
            return _lock_file_taken(self.path, self._lock_fd)
        if not self.replaced():
            return False
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # another inode than the one SQLite has open: its locks stay
        return False

    def close(self) -> None:
        self._close_db()
        self._release()

    def _release(self) -> None:
        """After the connection: closing this descriptor drops the process's POSIX locks."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _close_db(self) -> None:
        self.db.conn.close()


def _take_lock(path: str) -> int:
    """Lock the database file itself (flock, which SQLite's own POSIX locks ignore): a lock
    file beside it could be removed and let a second writer in. `PATH.lock` only names the
    holder's pid. The descriptor stays open until `close`: closing a descriptor of the
    file would drop SQLite's locks in this process."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)  # private: it names users and hosts
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise _locked(path) from None
    try:
        with open(path + ".lock", "w") as fh:
            fh.write(f"{os.getpid()}\n")
    except OSError:
        pass  # the pid is for the message only
    return fd


def _take_lock_file(path: str) -> int:
    """On a network volume: a POSIX lock on `PATH.lock` (NFS and EFS carry POSIX locks;
    on the database file it would mix with SQLite's). The pid is written through the same
    descriptor: opening the file again in this process and closing it would drop the lock."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd = os.open(path + ".lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise _locked(path) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _lock_file_taken(path: str, fd: int) -> bool:
    """Our lock file removed and another writer locking the one now at its path."""
    try:
        ours, now = os.fstat(fd), os.stat(path + ".lock")
    except OSError:
        return False  # gone, and nobody made another: nobody else writes
    if (ours.st_dev, ours.st_ino) == (now.st_dev, now.st_ino):
        return False
    other = os.open(path + ".lock", os.O_RDONLY)
    try:
        fcntl.lockf(other, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(other)  # another inode than ours: our lock stays
    return False


def _locked(path: str) -> HistoryLocked:
    return HistoryLocked(
        f"another license-sync (pid {_holder(path)}) is using the history {path!r}: "
        "two instances would take each other's job caps for manual edits; stop it "
        "first, or give this one its own history.path"
    )


def _holder(path: str) -> str:
    try:
        with open(path + ".lock") as fh:
            return fh.read(32).strip() or "?"
    except OSError:
        return "?"


def _identities(path: str) -> tuple[tuple[int, int] | None, ...]:
    """The history's file and its WAL companions, as (device, inode) or None if absent."""
    return tuple(_identity(path + suffix) for suffix in ("", "-wal", "-shm"))


def _identity(path: str) -> tuple[int, int] | None:
    if path == ":memory:":
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)
