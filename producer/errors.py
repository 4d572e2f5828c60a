"""What a TDengine error means for the producer: wait it out, or tell an operator what to change.

One table, `ERROR_KINDS`, keyed by the code in taos-ws-py's message ("[0x03BA] Internal error:
Vnodes exhausted"). Codes and their server texts are TDengine's own (include/util/taoserror.h and
source/util/src/terror.c in taosdata/TDengine; the client ones from tdengine-checked.md "Errors").

- OUTAGE: the database is down, restarting or busy; retrying heals it. Retried with backoff, as
  before; a code not in the table is treated as one.
- OPERATOR: TDengine answers, but refuses us until someone changes something (server resources,
  credentials, privileges, options). Waiting alone never heals it: the producer still retries
  (an operator may fix it, then it proceeds by itself) but says once, at ERROR, what is wrong and
  what to change, and its healthcheck reports it.
- REJECTED: these rows can never be written (older than the database's KEEP); they are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.tdengine import error_code

OUTAGE = "outage"
OPERATOR = "operator"
REJECTED = "rejected"

# code: (kind, what it means, what to change). Keep each text one sentence: it goes into one log
# line and into `docker inspect`'s health log.
ERROR_KINDS: dict[int, tuple[str, str, str]] = {
    # --- outages: retry quietly ---
    0xE001: (OUTAGE, "taosAdapter refused the connection (TDengine down or starting)", ""),
    0xE002: (OUTAGE, "the connection died when taosAdapter restarted", ""),
    0x000B: (OUTAGE, "taosAdapter cannot reach taosd (Unable to establish connection)", ""),
    0x0018: (OUTAGE, "the connection to taosd broke (Conn is broken)", ""),
    0x0019: (OUTAGE, "taosd did not answer in time (Conn read timeout)", ""),
    0x0020: (OUTAGE, "some TDengine nodes are out of service", ""),
    0x0130: (OUTAGE, "TDengine is starting up", ""),
    0x0131: (OUTAGE, "TDengine is closing down", ""),
    0x0386: (OUTAGE, "the database is being dropped", ""),
    0x0388: (OUTAGE, "the database does not exist (dropped?); it is created again on reconnect", ""),
    0x0396: (OUTAGE, "the database is still being created", ""),
    # --- needs an operator: retry, but say what to change ---
    0x03BA: (OPERATOR,
             "TDengine has no free vnode for a new database: every database takes at least one "
             "vnode and each dnode holds at most supportVnodes of them",
             "drop databases you no longer need (SHOW DATABASES; DROP DATABASE <name>;) or raise "
             "supportVnodes in the TDengine server's taos.cfg and restart it"),
    0x0385: (OPERATOR, "TDengine allows no more databases for this account",
             "drop databases you no longer need (SHOW DATABASES; DROP DATABASE <name>;)"),
    0x03B1: (OPERATOR, "the TDengine dnode has not enough free memory for the new database's vnode",
             "give the TDengine server more memory or drop databases you no longer need"),
    0x0357: (OPERATOR, "TDengine refused the user name or password (Authentication failure)",
             "set TDENGINE_USER/TDENGINE_PASSWORD to an account TDengine accepts (the root "
             "password is the one stored in TDengine's data volume; TDengine 3.3.6 ignores a weak "
             "TAOS_ROOT_PASSWORD at its first start and keeps taosdata: use 8+ characters with 3 of "
             "upper case, lower case, digits, punctuation)"),
    0x0315: (OPERATOR, "the TDengine user is disabled",
             "enable it (ALTER USER <name> ENABLE 1;) or set TDENGINE_USER to another user"),
    0x0303: (OPERATOR, "the TDengine user lacks a privilege this needs (Insufficient privilege)",
             "grant it (GRANT ALL ON <database>.* TO <user>;) or use another TDENGINE_USER"),
    0x0214: (OPERATOR, "the TDengine user may not write (No write permission)",
             "grant write (GRANT WRITE ON <database>.* TO <user>;) or use another TDENGINE_USER"),
    0x0134: (OPERATOR, "TDengine does not allow connections from this host (IP white list)",
             "add this host to the user's white list (ALTER USER <name> ADD HOST '<ip>';)"),
    0x0382: (OPERATOR, "TDengine refused the database options (Invalid database options)",
             "change PRODUCER_KEEP_DAYS to a value this server accepts, or create the database "
             "by hand"),
    0x2619: (OPERATOR, "TDengine refused the database options (Invalid database option)",
             "change PRODUCER_KEEP_DAYS or PRODUCER_VNODE_BUFFER_MB to a value this server accepts, "
             "or create the database by hand"),
    0x012B: (OPERATOR, "the TDengine server is out of disk space",
             "free space on TDengine's data volume (drop data or databases you no longer need)"),
    0x012E: (OPERATOR, "the TDengine server has not enough disk space",
             "free space on TDengine's data volume (drop data or databases you no longer need)"),
    0x0129: (OPERATOR, "the TDengine server has no usable data disk",
             "check dataDir in the TDengine server's taos.cfg and its volume"),
    # --- these rows can never be written ---
    0x060B: (REJECTED,
             "TDengine refuses rows outside the database's KEEP window (Timestamp data out of range)",
             "check this host's clock, and that the existing database keeps at least "
             "PRODUCER_BACKFILL of history (SHOW CREATE DATABASE <name>;)"),
}


@dataclass(frozen=True)
class Diagnosis:
    kind: str           # OUTAGE, OPERATOR or REJECTED
    code: int | None    # the TDengine code, None when the message has none
    meaning: str
    fix: str = ""

    @property
    def needs_operator(self) -> bool:
        return self.kind == OPERATOR

    @property
    def code_text(self) -> str:
        return "none" if self.code is None else f"0x{self.code:04X}"


def diagnose(error: BaseException) -> Diagnosis:
    """Classify a taos-ws-py error by its code; an unknown or missing code is an outage."""
    code = error_code(error)
    if code is not None and code in ERROR_KINDS:
        kind, meaning, fix = ERROR_KINDS[code]
        return Diagnosis(kind, code, meaning, fix)
    return Diagnosis(OUTAGE, code, "the request failed; retrying")
