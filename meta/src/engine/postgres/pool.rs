//! Connections: a small pool of sessions, each a client with its prepared statements.
//!
//! A call takes an idle session (or connects a new one), runs, and gives it back unless its
//! connection broke; so after an outage the next call simply connects again. A failed connect
//! is remembered for [`RETRY_AFTER`]: calls in that window fail at once with
//! [`Error::Unavailable`] instead of each waiting out a connect timeout.
//!
//! Statements are prepared once per session and kept (at most [`MAX_STATEMENTS`], then the
//! cache starts over), which saves a round trip on every call after the first.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use postgres::types::ToSql;
use postgres::{Client, NoTls, Row, Statement, Transaction};

use super::pg_error;
use crate::error::{Error, Result, StorageError};

/// How long a failed connect keeps later calls from trying again.
const RETRY_AFTER: Duration = Duration::from_millis(500);
/// Most prepared statements kept per session.
const MAX_STATEMENTS: usize = 256;

/// Parameters of a statement.
pub(super) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

pub(super) struct Pool {
    config: postgres::Config,
    idle: Mutex<Vec<Session>>,
    max_idle: usize,
    failed_at: Mutex<Option<(Instant, String)>>,
}

/// One connection and its prepared statements.
pub(super) struct Session {
    client: Client,
    statements: HashMap<String, Statement>,
}

/// A session on loan from the pool; returned on drop unless its connection broke.
pub(super) struct Lease<'a> {
    session: Option<Session>,
    pool: &'a Pool,
}

/// A connect that failed: the server is down, refused us, or is not reachable.
pub(super) fn connect_error(err: postgres::Error) -> Error {
    Error::Unavailable(StorageError::new(err))
}

impl Pool {
    pub(super) fn new(config: postgres::Config, max_idle: usize) -> Pool {
        Pool {
            config,
            idle: Mutex::new(Vec::new()),
            max_idle: max_idle.max(1),
            failed_at: Mutex::new(None),
        }
    }

    fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
        // Whole values are swapped in and out: a poisoned lock is still consistent.
        mutex
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// An idle session, or a new connection.
    pub(super) fn get(&self) -> Result<Lease<'_>> {
        if let Some(session) = Self::lock(&self.idle).pop() {
            return Ok(Lease {
                session: Some(session),
                pool: self,
            });
        }
        if let Some((at, why)) = Self::lock(&self.failed_at).as_ref() {
            if at.elapsed() < RETRY_AFTER {
                return Err(Error::Unavailable(StorageError::new(format!(
                    "connecting failed {} ms ago: {why}",
                    at.elapsed().as_millis()
                ))));
            }
        }
        match self.config.connect(NoTls) {
            Ok(client) => {
                *Self::lock(&self.failed_at) = None;
                Ok(Lease {
                    session: Some(Session {
                        client,
                        statements: HashMap::new(),
                    }),
                    pool: self,
                })
            }
            Err(err) => {
                *Self::lock(&self.failed_at) = Some((Instant::now(), err.to_string()));
                Err(connect_error(err))
            }
        }
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            if !session.client.is_closed() {
                let mut idle = Pool::lock(&self.pool.idle);
                if idle.len() < self.pool.max_idle {
                    idle.push(session);
                }
            }
        }
    }
}

impl Deref for Lease<'_> {
    type Target = Session;

    fn deref(&self) -> &Session {
        self.session
            .as_ref()
            .expect("a lease holds its session until dropped")
    }
}

impl DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut Session {
        self.session
            .as_mut()
            .expect("a lease holds its session until dropped")
    }
}

/// Runs statements: a session outside any transaction, or a transaction.
pub(super) trait Run {
    /// The rows of `sql` (prepared once per session).
    fn rows(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>>;

    /// The number of rows `sql` changed.
    fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64>;

    /// The one row of `sql`, if any.
    fn row(&mut self, sql: &str, params: Params<'_>) -> Result<Option<Row>> {
        Ok(self.rows(sql, params)?.into_iter().next())
    }
}

fn prepared(
    statements: &mut HashMap<String, Statement>,
    prepare: impl FnOnce(&str) -> std::result::Result<Statement, postgres::Error>,
    sql: &str,
) -> Result<Statement> {
    if let Some(statement) = statements.get(sql) {
        return Ok(statement.clone());
    }
    let statement = prepare(sql).map_err(pg_error)?;
    if statements.len() >= MAX_STATEMENTS {
        statements.clear();
    }
    statements.insert(sql.to_owned(), statement.clone());
    Ok(statement)
}

impl Session {
    /// The client itself, for what needs no prepared statement.
    pub(super) fn client(&mut self) -> &mut Client {
        &mut self.client
    }

    /// Begins a transaction.
    pub(super) fn transaction(&mut self) -> Result<Tx<'_>> {
        let Session { client, statements } = self;
        Ok(Tx {
            txn: client.transaction().map_err(pg_error)?,
            statements,
        })
    }
}

impl Run for Session {
    fn rows(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        let Session { client, statements } = self;
        let statement = prepared(statements, |sql| client.prepare(sql), sql)?;
        client.query(&statement, params).map_err(pg_error)
    }

    fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64> {
        let Session { client, statements } = self;
        let statement = prepared(statements, |sql| client.prepare(sql), sql)?;
        client.execute(&statement, params).map_err(pg_error)
    }
}

/// A transaction on a session; rolled back when dropped uncommitted.
pub(super) struct Tx<'a> {
    txn: Transaction<'a>,
    statements: &'a mut HashMap<String, Statement>,
}

impl Tx<'_> {
    pub(super) fn commit(self) -> Result<()> {
        self.txn.commit().map_err(pg_error)
    }
}

impl Run for Tx<'_> {
    fn rows(&mut self, sql: &str, params: Params<'_>) -> Result<Vec<Row>> {
        let txn = &mut self.txn;
        let statement = prepared(self.statements, |sql| txn.prepare(sql), sql)?;
        self.txn.query(&statement, params).map_err(pg_error)
    }

    fn execute(&mut self, sql: &str, params: Params<'_>) -> Result<u64> {
        let txn = &mut self.txn;
        let statement = prepared(self.statements, |sql| txn.prepare(sql), sql)?;
        self.txn.execute(&statement, params).map_err(pg_error)
    }
}
