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
//! The pool itself is a `Mutex<Vec<Conn>>` of idle connections: a call takes one (or opens a
//! new one), uses it, and gives it back unless it was closed underneath (a lost connection is
//! then simply not reused; the next call opens a fresh one). At most [`MAX_IDLE`] idle
//! connections are kept. Each connection carries the statements prepared on it
//! ([`Statements`]): the hot paths (a commit, an agreement read) then send one round trip per
//! statement instead of a parse round trip and an execute round trip.

use std::collections::HashMap;
use std::sync::Mutex;

use postgres::{Client, NoTls, Statement};

use crate::store::StoreError;

/// Idle connections kept for reuse.
const MAX_IDLE: usize = 8;

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
    idle: Mutex<Vec<Conn>>,
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

pub(crate) fn pg_err(e: postgres::Error) -> StoreError {
    use postgres::error::SqlState;
    match e.code() {
        // Lost a race against another transaction: the caller retries like any conflict.
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE || *c == SqlState::T_R_DEADLOCK_DETECTED => {
            StoreError::Conflict
        }
        // A key PostgreSQL cannot hold (a NUL byte in an id from a URL): no such row exists.
        Some(c) if *c == SqlState::CHARACTER_NOT_IN_REPERTOIRE => StoreError::NotFound,
        _ => StoreError::Io(format!("postgres: {}", describe(&e))),
    }
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
        Ok(Pool { config, idle: Mutex::new(Vec::new()) })
    }

    pub(crate) fn connect(&self) -> Result<Client, StoreError> {
        self.config
            .connect(NoTls)
            .map_err(|e| StoreError::Io(format!("cannot connect to the database: {}", describe(&e))))
    }

    fn take(&self) -> Result<Conn, StoreError> {
        loop {
            let next = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
            match next {
                Some(c) if !c.client.is_closed() => return Ok(c),
                Some(_) => continue,
                None => return Ok(Conn { client: self.connect()?, statements: Statements::default() }),
            }
        }
    }

    fn give_back(&self, c: Conn) {
        if c.client.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(c);
        }
    }

    /// Runs `f` on a pooled connection, where blocking is allowed. A connection found closed
    /// when taken is replaced; `f` runs once (a commit whose outcome is unknown is never
    /// repeated behind the caller's back).
    pub(crate) fn with<T: Send>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        self.with_conn(|c| f(&mut c.client))
    }

    /// [`Pool::with`], with the connection's prepared statements.
    pub(crate) fn with_conn<T: Send>(
        &self,
        f: impl FnOnce(&mut Conn) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        blocking(|| {
            let mut c = self.take()?;
            let out = f(&mut c);
            self.give_back(c);
            out
        })
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Closing a client blocks on its runtime: do it where blocking is allowed.
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|p| p.into_inner()));
        blocking(move || drop(idle));
    }
}
