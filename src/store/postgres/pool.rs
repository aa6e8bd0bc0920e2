//! A small connection pool for the synchronous `postgres` client, and the bridge that lets the
//! synchronous [`crate::store::Store`] trait run it from anywhere.
//!
//! The `postgres` crate drives each connection on a private single-threaded tokio runtime and
//! blocks on it; blocking like that is refused on a thread that is already running async tasks.
//! [`blocking`] therefore runs each store call:
//!
//! * on a worker of a multi-threaded runtime (the server's handlers): inside
//!   `tokio::task::block_in_place`, which hands the worker's other tasks to another thread first;
//! * on a current-thread runtime (some tests): on a scoped helper thread;
//! * anywhere else (the CLI, `spawn_blocking` threads): directly.
//!
//! The pool itself is a `Mutex` over the idle connections and the count of open ones, with a
//! `Condvar`: a call takes an idle connection, or opens a new one while fewer than [`MAX_OPEN`]
//! are open, or else waits (at most [`WAIT`]) for one to come back. It gives it back unless it
//! was closed underneath (a lost connection is then simply not reused; the next call opens a
//! fresh one). Bounded because a burst of requests (256 signers at once) would otherwise open a
//! connection each — a TCP handshake, authentication and a backend process per request, with
//! none of the prepared statements — and run into the server's `max_connections`.
//!
//! Each connection carries the statements prepared on it ([`Statements`]): the hot paths (a
//! commit, an agreement read) then send one round trip per statement instead of a parse round
//! trip and an execute round trip.
//!
//! Lost connections: errors are classified by [`failure`] and [`classify`]. A connection lost
//! before COMMIT was sent (the transaction surely rolled back) is retried once by
//! [`Pool::with`]; one lost while COMMIT was in flight is reported as
//! [`StoreError::OutcomeUnknown`] and not retried.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex, MutexGuard};

use postgres::{Client, NoTls, Statement};

use crate::store::StoreError;

/// Connections one instance opens at most (the listener's own excepted). Several instances
/// share the server's `max_connections` (PostgreSQL's default: 100).
pub(crate) const MAX_OPEN: usize = 16;

/// How long a call waits for a connection before it fails as the database being unavailable.
const WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs `f` where a blocking call is allowed (see the module documentation).
pub(crate) fn blocking<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        Ok(_) => std::thread::scope(|s| match s.spawn(f).join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }),
        Err(_) => f(),
    }
}

pub(crate) struct Pool {
    config: postgres::Config,
    slots: Mutex<Slots>,
    returned: Condvar,
}

/// The idle connections and how many are open (idle or in use).
#[derive(Default)]
struct Slots {
    idle: Vec<Conn>,
    open: usize,
}

/// A pooled connection and the statements prepared on it (a statement belongs to the
/// connection that prepared it: the two are dropped together when the connection is lost).
pub(crate) struct Conn {
    pub(crate) client: Client,
    pub(crate) statements: Statements,
}

/// Statements prepared on one connection, by their SQL text (always a `&'static str` constant,
/// so the map stays as small as the code's set of hot statements).
#[derive(Default)]
pub(crate) struct Statements(HashMap<&'static str, Statement>);

impl Statements {
    /// The prepared statement for `sql`, preparing it on `c`'s connection (the client or a
    /// transaction on it) the first time.
    pub(crate) fn get(
        &mut self,
        c: &mut impl postgres::GenericClient,
        sql: &'static str,
    ) -> Result<Statement, StoreError> {
        if let Some(s) = self.0.get(sql) {
            return Ok(s.clone());
        }
        let s = c.prepare(sql).map_err(pg_err)?;
        self.0.insert(sql, s.clone());
        Ok(s)
    }
}

/// Where in a call an error came: a statement (a transaction not committed yet, or an
/// idempotent single-statement write), or the COMMIT itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Statement,
    Commit,
}

/// What kind of failure a PostgreSQL error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The connection is gone (closed, an I/O error, the server shutting it down: SQLSTATE
    /// class 08 or 57P01–57P03).
    ConnectionLost,
    /// Lost a race against another transaction (serialization failure, deadlock).
    Conflict,
    /// A key PostgreSQL cannot hold (a NUL byte in an id from a URL).
    BadKey,
    Other,
}

pub(crate) fn failure(e: &postgres::Error) -> Failure {
    use postgres::error::SqlState;
    if e.is_closed() {
        return Failure::ConnectionLost;
    }
    match e.code() {
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED => {
            Failure::Conflict
        }
        Some(c) if *c == SqlState::CHARACTER_NOT_IN_REPERTOIRE => Failure::BadKey,
        Some(c)
            if c.code().starts_with("08")
                || *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CRASH_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW =>
        {
            Failure::ConnectionLost
        }
        Some(_) => Failure::Other,
        // No server error: a socket that failed under the client is a lost connection.
        None if std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()) => Failure::ConnectionLost,
        None => Failure::Other,
    }
}

/// The store's error for a failure at a stage. A connection lost before COMMIT was sent
/// rolled the transaction back (PostgreSQL aborts a transaction whose connection ends):
/// [`StoreError::ConnectionLost`], which [`Pool::with`] retries. Lost while COMMIT was in
/// flight, the outcome is unknown: [`StoreError::OutcomeUnknown`], never retried. Any other
/// error at COMMIT (a serialization failure) is a definite rollback, like at a statement.
pub(crate) fn classify(f: Failure, stage: Stage, detail: String) -> StoreError {
    match (f, stage) {
        (Failure::ConnectionLost, Stage::Statement) => StoreError::ConnectionLost(detail),
        (Failure::ConnectionLost, Stage::Commit) => StoreError::OutcomeUnknown(detail),
        (Failure::Conflict, _) => StoreError::Conflict,
        (Failure::BadKey, _) => StoreError::NotFound,
        (Failure::Other, _) => StoreError::Io(format!("postgres: {detail}")),
    }
}

pub(crate) fn pg_err(e: postgres::Error) -> StoreError {
    classify(failure(&e), Stage::Statement, describe(&e))
}

/// Commits `tx`, telling a connection lost during the COMMIT (outcome unknown) from one lost
/// before it. Every writing transaction commits through here.
pub(crate) fn commit(tx: postgres::Transaction<'_>) -> Result<(), StoreError> {
    tx.commit().map_err(|e| classify(failure(&e), Stage::Commit, describe(&e)))
}

/// The error with its server-side detail (`Display` of the client error alone says only "db error").
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

impl Pool {
    /// Parses the URL (`postgres://user@host:port/db` or `host=… dbname=…`); connects lazily.
    pub(crate) fn new(url: &str) -> Result<Pool, StoreError> {
        let mut config: postgres::Config = url.parse().map_err(|e| StoreError::Io(format!("database_url: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("countersign");
        }
        Ok(Pool { config, slots: Mutex::new(Slots::default()), returned: Condvar::new() })
    }

    pub(crate) fn connect(&self) -> Result<Client, StoreError> {
        self.config
            .connect(NoTls)
            .map_err(|e| StoreError::Io(format!("cannot connect to the database: {}", describe(&e))))
    }

    fn slots(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self) -> Result<Conn, StoreError> {
        let deadline = std::time::Instant::now() + WAIT;
        let mut slots = self.slots();
        loop {
            match slots.idle.pop() {
                Some(c) if !c.client.is_closed() => return Ok(c),
                Some(_) => slots.open -= 1,
                None if slots.open < MAX_OPEN => {
                    slots.open += 1;
                    // Connect outside the lock: it is a network round trip or several.
                    drop(slots);
                    return match self.connect() {
                        Ok(client) => Ok(Conn { client, statements: Statements::default() }),
                        Err(e) => {
                            self.slots().open -= 1;
                            self.returned.notify_one();
                            Err(e)
                        }
                    };
                }
                None => {
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    if left.is_zero() {
                        return Err(StoreError::Io(format!(
                            "no database connection came free in {} s ({MAX_OPEN} in use)",
                            WAIT.as_secs()
                        )));
                    }
                    slots = self.returned.wait_timeout(slots, left).unwrap_or_else(|p| p.into_inner()).0;
                }
            }
        }
    }

    fn give_back(&self, c: Conn) {
        let mut slots = self.slots();
        if c.client.is_closed() {
            slots.open -= 1;
        } else {
            slots.idle.push(c);
        }
        drop(slots);
        self.returned.notify_one();
    }

    /// Runs `f` on a pooled connection, where blocking is allowed. A connection found closed
    /// when taken is replaced. When `f` fails with [`StoreError::ConnectionLost`] (nothing was
    /// committed: the connection went before COMMIT, or under an idempotent single-statement
    /// write) that connection and the idle ones (a restarted server or a terminated pool leaves
    /// them all dead) are dropped and `f` runs once more on another connection. A commit whose
    /// outcome is unknown ([`StoreError::OutcomeUnknown`]) is never repeated behind the caller's
    /// back.
    pub(crate) fn with<T: Send>(
        &self,
        mut f: impl FnMut(&mut Client) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        self.with_conn(|c| f(&mut c.client))
    }

    /// [`Pool::with`], with the connection's prepared statements.
    pub(crate) fn with_conn<T: Send>(
        &self,
        mut f: impl FnMut(&mut Conn) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        blocking(|| match self.lease(&mut f) {
            Err(StoreError::ConnectionLost(e)) => {
                tracing::warn!(error = %e, "lost a database connection before committing; retrying on another");
                let idle = std::mem::take(&mut self.slots().idle);
                self.slots().open -= idle.len();
                drop(idle);
                self.returned.notify_all();
                self.lease(&mut f)
            }
            out => out,
        })
    }

    /// Runs `f` once on a leased connection, given back on every way out (a panic in `f`
    /// included: a transaction left open rolls back when dropped, before the connection
    /// returns), or dropped when `f` lost it.
    fn lease<T>(&self, f: &mut impl FnMut(&mut Conn) -> Result<T, StoreError>) -> Result<T, StoreError> {
        struct Lease<'p>(&'p Pool, Option<Conn>);
        impl Drop for Lease<'_> {
            fn drop(&mut self) {
                if let Some(c) = self.1.take() {
                    self.0.give_back(c);
                }
            }
        }
        let mut lease = Lease(self, Some(self.take()?));
        let out = match lease.1.as_mut() {
            Some(c) => f(c),
            None => Err(StoreError::Io("no database connection".into())),
        };
        if matches!(out, Err(StoreError::ConnectionLost(_))) && lease.1.take().is_some() {
            // Not given back: it is dead, or in a state nobody should reuse.
            self.slots().open -= 1;
            self.returned.notify_one();
        }
        out
    }

    /// Runs `f` once on a pooled connection: for calls that cannot start over (a dump already
    /// partly written, a restore that consumed its input).
    pub(crate) fn with_once<T: Send>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        let mut f = Some(f);
        blocking(|| {
            self.lease(&mut |c: &mut Conn| match f.take() {
                Some(f) => f(&mut c.client),
                None => Err(StoreError::Io("called twice".into())),
            })
        })
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing a client blocks on its runtime: do it where blocking is allowed.
        let idle = std::mem::take(&mut self.slots().idle);
        blocking(move || drop(idle));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_lost_before_commit_is_retryable_and_during_commit_is_an_unknown_outcome() {
        let d = || "57P01: terminating connection due to administrator command".to_string();
        assert!(matches!(
            classify(Failure::ConnectionLost, Stage::Statement, d()),
            StoreError::ConnectionLost(m) if m.contains("57P01")
        ));
        assert!(matches!(classify(Failure::ConnectionLost, Stage::Commit, d()), StoreError::OutcomeUnknown(_)));
        // Anything else is a definite outcome wherever it comes: a lost race rolled back.
        for stage in [Stage::Statement, Stage::Commit] {
            assert!(matches!(classify(Failure::Conflict, stage, d()), StoreError::Conflict));
            assert!(matches!(classify(Failure::BadKey, stage, d()), StoreError::NotFound));
            assert!(matches!(classify(Failure::Other, stage, d()), StoreError::Io(m) if m.starts_with("postgres: ")));
        }
    }

    #[test]
    fn the_answer_for_an_unknown_outcome_says_so() {
        let e = StoreError::OutcomeUnknown("connection closed".into()).to_string();
        assert!(e.contains("while committing") && e.contains("unknown"), "{e}");
    }
}
