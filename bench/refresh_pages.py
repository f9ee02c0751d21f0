#!/usr/bin/env python3
"""WAL frames (pages written) per refresh-token rotation, by index layout.

A model of the store's grant batch, not the server: Python's sqlite3 on a scratch file,
the `refresh_tokens` and `grant_tokens` tables as migrations 0004-0012 leave them
(copied here; keep them in step), 32 token families rotated round-robin, 9 rotations
per transaction (the batch size seen at ~1,700 refreshes/s on a Zen 3 guest), no
checkpoints, so the WAL's size counts every page each commit wrote. Variants drop
indexes or make the tables WITHOUT ROWID, to see what each costs in pages.

    python3 bench/refresh_pages.py [--batches N]
"""
import argparse
import os
import secrets
import sqlite3
import tempfile
import time
import uuid

REFRESH = """CREATE TABLE refresh_tokens (id TEXT PRIMARY KEY, digest TEXT NOT NULL UNIQUE,
  family_id TEXT NOT NULL, client_id TEXT NOT NULL, user_id TEXT NOT NULL, session_id TEXT,
  scope TEXT NOT NULL, auth_time BIGINT NOT NULL, amr TEXT NOT NULL, issued_at BIGINT NOT NULL,
  expires_at BIGINT NOT NULL, family_expires_at BIGINT NOT NULL, used_at BIGINT,
  revoked_at BIGINT, jkt TEXT){tail}"""
GRANTS = """CREATE TABLE grant_tokens (jti TEXT PRIMARY KEY, family_id TEXT NOT NULL,
  user_id TEXT NOT NULL, session_id TEXT, client_id TEXT NOT NULL, format TEXT NOT NULL,
  expires_at BIGINT NOT NULL){tail}"""
INDEXED = ("family_id", "user_id", "session_id")
# The layout with a row per family (not written by a rotation, so not modelled): a
# refresh token has no index but its digest; a grant's access tokens are kept in one
# b-tree ordered by family, found by a range scan when the family is revoked.
GRANTS_BY_FAMILY = """CREATE TABLE grant_tokens (family_id TEXT NOT NULL, jti TEXT NOT NULL,
  format TEXT NOT NULL, expires_at BIGINT NOT NULL, PRIMARY KEY (family_id, jti)) WITHOUT ROWID"""


def time_ordered_id():
    """Like the server's UUIDv7 ids: later ids sort after earlier ones."""
    return f"{time.time_ns():020d}-{secrets.token_hex(6)}"


def run(name, batches, per=9, families=32, skip=(), without_rowid=False, by_family=False):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "t.db")
        c = sqlite3.connect(path, isolation_level=None)
        for p in ("journal_mode=WAL", "synchronous=NORMAL", "wal_autocheckpoint=0"):
            c.execute(f"PRAGMA {p}")
        tail = " WITHOUT ROWID" if without_rowid else ""
        c.execute(REFRESH.format(tail=tail))
        c.execute(GRANTS_BY_FAMILY if by_family else GRANTS.format(tail=tail))
        for col in (x for x in INDEXED if x not in skip):
            c.execute(f"CREATE INDEX refresh_tokens_{col} ON refresh_tokens ({col})")
            if not by_family:
                c.execute(f"CREATE INDEX grant_tokens_{col} ON grant_tokens ({col})")
        start = os.path.getsize(path + "-wal")
        fams = [str(uuid.uuid4()) for _ in range(families)]
        last = {}
        k = 0
        for _ in range(batches):
            c.execute("BEGIN IMMEDIATE")
            for _ in range(per):
                fam = fams[k % families]
                k += 1
                if fam in last:
                    c.execute("UPDATE refresh_tokens SET used_at = 1 WHERE id = ? AND used_at IS NULL"
                              " AND revoked_at IS NULL", (last[fam],))
                rid = time_ordered_id()
                c.execute("INSERT INTO refresh_tokens VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                          (rid, secrets.token_hex(32), fam, "client", "user", None, "read offline_access",
                           1, "pwd", 1, 2, 3, None, None, None))
                last[fam] = rid
                if by_family:
                    c.execute("INSERT INTO grant_tokens VALUES (?,?,?,?)", (fam, time_ordered_id(), "jwt", 5))
                else:
                    c.execute("INSERT INTO grant_tokens VALUES (?,?,?,?,?,?,?)",
                              (time_ordered_id(), fam, "user", None, "client", "jwt", 5))
            c.execute("COMMIT")
        page = c.execute("PRAGMA page_size").fetchone()[0]
        frames = (os.path.getsize(path + "-wal") - start) / (page + 24)
        c.close()
    print(f"{name:<44} {frames / (batches * per):5.2f} WAL frames per refresh")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", type=int, default=2000)
    a = ap.parse_args()
    run("as migrated", a.batches)
    run("without the two family_id indexes", a.batches, skip=("family_id",))
    run("without the user_id and session_id indexes", a.batches, skip=("user_id", "session_id"))
    run("WITHOUT ROWID tables", a.batches, without_rowid=True)
    run("a row per family, access tokens by family", a.batches, skip=INDEXED, by_family=True)


if __name__ == "__main__":
    main()
