//! Reads in one sync point. tokio-postgres ends every statement with a Sync, and PostgreSQL
//! flushes its output at each one; through PgBouncer and a container bridge each flush is a
//! network message that every hop pays for, and on a busy host those messages, not parsing or
//! planning, are what a read costs (see the README's benchmark). This module keeps its own
//! sessions for the tenant logins of read-only tokens and sends a read as two Bind/Execute pairs
//! (the set-up, then the statement) before a single Sync: one implicit transaction, which
//! PostgreSQL commits at the Sync or rolls back when any part failed, and one flush.
//!
//! Why no role check follows the statement (the general path has one, for batches and writes):
//! the set-up is `SET LOCAL` of everything the statement runs under (role, search_path,
//! timeouts, `transaction_read_only`), and nothing runs after the statement in its transaction.
//! Whatever the statement changes (`RESET ROLE`, `set_config(..., false)`, `COMMIT`) it changes
//! in a read-only transaction, as its own login, which holds only the token's role; and every
//! later transaction of postgate on that server session sets all of it again first. A statement
//! that opens a transaction block is rolled back and answered `session_changed`.
//! Each statement a read drops is a message every hop pays for: the role check cost a fifth of
//! PgBouncer's throughput (see the README's benchmark).
//!
//! It speaks the protocol through `postgres-protocol`, the codec tokio-postgres is built on, and
//! only as far as that path needs: SCRAM (or cleartext) login, named statements whose parameter
//! and column types are built in, parameters as text and columns in binary. A statement it does
//! not take goes the general way (`gateway`), which is also where writes and batches go.

use crate::error::ApiError;
use bytes::BytesMut;
use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use fallible_iterator::FallibleIterator as _;
use postgres_protocol::IsNull;
use postgres_protocol::authentication::sasl::{self, ChannelBinding, ScramSha256};
use postgres_protocol::message::backend::{ErrorResponseBody, Message};
use postgres_protocol::message::frontend;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_postgres::types::Type;

/// The transaction set-up of a read: `set_config(…, true)` is `SET LOCAL`, and lasts until the
/// Sync ends the implicit transaction.
const SETUP: &str = "SELECT pg_catalog.set_config('role', $1, true), \
    pg_catalog.set_config('search_path', $2, true), \
    pg_catalog.set_config('statement_timeout', $3, true), \
    pg_catalog.set_config('idle_in_transaction_session_timeout', $4, true), \
    pg_catalog.set_config('transaction_read_only', 'on', true)";

#[derive(Debug, thiserror::Error)]
pub enum PipeError {
    #[error("talking to the database: {0}")]
    Io(#[from] std::io::Error),
    #[error("unexpected answer from the database: {0}")]
    Protocol(String),
    /// An error PostgreSQL raised, already in the client's terms.
    #[error("{}", .0.message)]
    Db(ApiError),
    /// A statement this path does not take (a type that is not built in): use the general one.
    #[error("not for this path")]
    Unsupported,
}

/// Where the sessions of one login connect.
#[derive(Clone, Debug)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Vec<u8>,
    pub dbname: String,
}

/// A prepared statement of a session: its server-side name and types.
#[derive(Debug)]
pub struct Prepared {
    name: String,
    pub params: Vec<Type>,
    pub columns: Vec<(String, Type)>,
}

/// One PostgreSQL session of a tenant login.
pub struct Session {
    stream: TcpStream,
    rd: BytesMut,
    wr: BytesMut,
    /// By SQL text; `None` for a statement this path does not take.
    prepared: HashMap<String, Option<Arc<Prepared>>>,
    next: u64,
    /// Set when the session's state is unknown (an I/O or protocol failure): never reused.
    broken: bool,
    /// Answers owed by the server: one `ReadyForQuery` for the start-up and for every Sync or
    /// simple Query sent. Not zero when the caller's future was dropped mid-exchange (a client
    /// that gave up): such a session is one answer behind and is closed, never reused.
    owed: u32,
}

/// The parts of a read, besides the statement.
pub struct ReadSetup<'a> {
    pub role: &'a str,
    pub search_path: &'a str,
    pub statement_timeout_ms: &'a str,
    pub idle_timeout_ms: &'a str,
}

/// How many statements a session keeps prepared before it forgets them all.
const PREPARED_PER_SESSION: usize = 256;

impl Session {
    pub async fn connect(t: &Target) -> Result<Session, PipeError> {
        let stream = TcpStream::connect((t.host.as_str(), t.port)).await?;
        stream.set_nodelay(true)?;
        let mut s = Session {
            stream,
            rd: BytesMut::with_capacity(8192),
            wr: BytesMut::with_capacity(1024),
            prepared: HashMap::new(),
            next: 0,
            broken: false,
            owed: 1,
        };
        frontend::startup_message(
            [
                ("user", t.user.as_str()),
                ("database", t.dbname.as_str()),
                ("application_name", "postgate"),
            ],
            &mut s.wr,
        )?;
        s.flush().await?;
        loop {
            match s.next_message().await? {
                Message::AuthenticationOk => {}
                Message::AuthenticationCleartextPassword => {
                    frontend::password_message(&t.password, &mut s.wr)?;
                    s.flush().await?;
                }
                Message::AuthenticationSasl(body) => {
                    let mut mechanisms = body.mechanisms();
                    let mut scram = false;
                    while let Some(m) = fallible(mechanisms.next())? {
                        scram |= m == sasl::SCRAM_SHA_256;
                    }
                    if !scram {
                        return Err(PipeError::Protocol(
                            "the server offers no SCRAM-SHA-256".into(),
                        ));
                    }
                    let mut scram = ScramSha256::new(&t.password, ChannelBinding::unsupported());
                    frontend::sasl_initial_response(
                        sasl::SCRAM_SHA_256,
                        scram.message(),
                        &mut s.wr,
                    )?;
                    s.flush().await?;
                    match s.next_message().await? {
                        Message::AuthenticationSaslContinue(b) => scram.update(b.data())?,
                        Message::ErrorResponse(e) => return Err(PipeError::Db(db_error(&e))),
                        _ => return Err(PipeError::Protocol("SCRAM exchange".into())),
                    }
                    frontend::sasl_response(scram.message(), &mut s.wr)?;
                    s.flush().await?;
                    match s.next_message().await? {
                        Message::AuthenticationSaslFinal(b) => scram.finish(b.data())?,
                        Message::ErrorResponse(e) => return Err(PipeError::Db(db_error(&e))),
                        _ => return Err(PipeError::Protocol("SCRAM exchange".into())),
                    }
                }
                Message::ErrorResponse(e) => return Err(PipeError::Db(db_error(&e))),
                Message::ReadyForQuery(_) => break,
                Message::ParameterStatus(_)
                | Message::BackendKeyData(_)
                | Message::NoticeResponse(_) => {}
                _ => return Err(PipeError::Protocol("login".into())),
            }
        }
        s.prepare(SETUP, None).await?;
        Ok(s)
    }

    /// `sql` prepared on this session (prepared now, after the set-up, so that its names resolve
    /// in the tenant's schema), or `Unsupported`.
    pub async fn statement(
        &mut self,
        sql: &str,
        setup: &ReadSetup<'_>,
    ) -> Result<Arc<Prepared>, PipeError> {
        match self.prepared.get(sql) {
            Some(Some(p)) => return Ok(p.clone()),
            Some(None) => return Err(PipeError::Unsupported),
            None => {}
        }
        if self.prepared.len() >= PREPARED_PER_SESSION {
            self.forget_all();
        }
        self.prepare(sql, Some(setup)).await
    }

    async fn prepare(
        &mut self,
        sql: &str,
        setup: Option<&ReadSetup<'_>>,
    ) -> Result<Arc<Prepared>, PipeError> {
        let name = format!("pgp{}", self.next);
        self.next += 1;
        if let Some(setup) = setup {
            self.bind_setup(setup)?;
        }
        frontend::parse(&name, sql, std::iter::empty(), &mut self.wr)?;
        frontend::describe(b'S', &name, &mut self.wr)?;
        self.sync();
        self.flush().await?;
        let (mut params, mut columns, mut error) = (None, None, None);
        loop {
            match self.next_message().await? {
                Message::ParameterDescription(b) => {
                    let mut oids = Vec::new();
                    let mut it = b.parameters();
                    while let Some(oid) = fallible(it.next())? {
                        oids.push(oid);
                    }
                    params = Some(oids);
                }
                Message::RowDescription(b) => {
                    let mut cols = Vec::new();
                    let mut it = b.fields();
                    while let Some(f) = fallible(it.next())? {
                        cols.push((f.name().to_string(), f.type_oid()));
                    }
                    columns = Some(cols);
                }
                Message::NoData => columns = Some(Vec::new()),
                Message::ErrorResponse(e) => error = Some(db_error(&e)),
                Message::ReadyForQuery(_) => break,
                _ => {}
            }
        }
        if let Some(e) = error {
            return Err(PipeError::Db(e));
        }
        // A statement is recorded only once its whole description has arrived.
        let (Some(params), Some(columns)) = (params, columns) else {
            self.broken = true;
            return Err(PipeError::Protocol(
                "the statement's description is incomplete".into(),
            ));
        };
        let columns: Option<Vec<(String, Type)>> = columns
            .into_iter()
            .map(|(n, oid)| Type::from_oid(oid).map(|t| (n, t)))
            .collect();
        let params: Option<Vec<Type>> = params.into_iter().map(Type::from_oid).collect();
        let prepared = match (params, columns) {
            (Some(params), Some(columns)) => Some(Arc::new(Prepared {
                name,
                params,
                columns,
            })),
            _ => None,
        };
        self.prepared.insert(sql.to_string(), prepared.clone());
        prepared.ok_or(PipeError::Unsupported)
    }

    fn bind_setup(&mut self, setup: &ReadSetup<'_>) -> Result<(), PipeError> {
        let name = self.name_of(SETUP)?;
        let values = [
            setup.role,
            setup.search_path,
            setup.statement_timeout_ms,
            setup.idle_timeout_ms,
        ];
        self.bind(&name, values.iter().map(|v| Some(v.as_bytes())), false)?;
        frontend::execute("", 0, &mut self.wr)?;
        Ok(())
    }

    fn name_of(&self, sql: &str) -> Result<String, PipeError> {
        match self.prepared.get(sql) {
            Some(Some(p)) => Ok(p.name.clone()),
            _ => Err(PipeError::Protocol("a session statement is missing".into())),
        }
    }

    /// Bind of the unnamed portal: parameters as text, columns in binary when `binary`.
    fn bind<'v>(
        &mut self,
        statement: &str,
        values: impl IntoIterator<Item = Option<&'v [u8]>>,
        binary: bool,
    ) -> Result<(), PipeError> {
        let result_formats: &[i16] = if binary { &[1] } else { &[] };
        frontend::bind(
            "",
            statement,
            [0i16],
            values,
            |v, buf| match v {
                Some(bytes) => {
                    buf.extend_from_slice(bytes);
                    Ok(IsNull::No)
                }
                None => Ok(IsNull::Yes),
            },
            result_formats.iter().copied(),
            &mut self.wr,
        )
        .map_err(|e| match e {
            frontend::BindError::Conversion(e) => PipeError::Protocol(e.to_string()),
            frontend::BindError::Serialization(e) => PipeError::Io(e),
        })
    }

    /// Runs a read: set-up, `stmt` with `params` (text), one Sync. `row` sees each row's
    /// columns (binary) and may refuse the result; the rows are still drained.
    pub async fn read(
        &mut self,
        setup: &ReadSetup<'_>,
        stmt: &Prepared,
        params: &[Option<String>],
        mut row: impl FnMut(&[Option<&[u8]>]) -> Result<(), ApiError>,
    ) -> Result<Option<u64>, PipeError> {
        if params.len() != stmt.params.len() {
            return Err(PipeError::Db(ApiError::bad_request(format!(
                "the statement takes {} parameters, {} given",
                stmt.params.len(),
                params.len()
            ))));
        }
        self.bind_setup(setup)?;
        self.bind(
            &stmt.name,
            params.iter().map(|p| p.as_deref().map(str::as_bytes)),
            true,
        )?;
        frontend::execute("", 0, &mut self.wr)?;
        self.sync();
        self.flush().await?;
        // Phases: 0 set-up, 1 the statement.
        let (mut phase, mut refused, mut failed, mut affected) = (0, None, None, None);
        let idle;
        loop {
            match self.next_message().await? {
                Message::DataRow(body) if phase == 1 && refused.is_none() => {
                    let buf = body.buffer();
                    let values: Vec<Option<&[u8]>> = body
                        .ranges()
                        .map(|r| Ok(r.map(|r| &buf[r])))
                        .collect()
                        .map_err(|e| PipeError::Protocol(e.to_string()))?;
                    if let Err(e) = row(&values) {
                        refused = Some(e);
                    }
                }
                Message::CommandComplete(body) => {
                    if phase == 1 {
                        let tag = body.tag().map_err(|e| PipeError::Protocol(e.to_string()))?;
                        affected = tag.rsplit(' ').next().and_then(|n| n.parse().ok());
                    }
                    phase += 1;
                }
                Message::EmptyQueryResponse => phase += 1,
                Message::ErrorResponse(e) if failed.is_none() => {
                    failed = Some((phase, db_error(&e)));
                }
                Message::ReadyForQuery(body) => {
                    idle = body.status() == b'I';
                    break;
                }
                _ => {}
            }
        }
        if !idle {
            // The statement opened a transaction block (BEGIN) that the Sync did not end: end it,
            // and answer as for any statement that changed the transaction.
            frontend::query("ROLLBACK", &mut self.wr)?;
            self.owed += 1;
            self.flush().await?;
            loop {
                if let Message::ReadyForQuery(body) = self.next_message().await? {
                    if body.status() != b'I' {
                        self.broken = true;
                    }
                    break;
                }
            }
            return Err(PipeError::Db(ApiError::session_changed()));
        }
        match failed {
            Some((0, e)) => {
                return Err(PipeError::Protocol(format!(
                    "transaction set-up: {}",
                    e.message
                )));
            }
            Some((_, e)) => return Err(PipeError::Db(e)),
            None => {}
        }
        if let Some(e) = refused {
            return Err(PipeError::Db(e));
        }
        Ok(affected)
    }

    /// Is `sql` prepared on this session already?
    pub fn has(&self, sql: &str) -> bool {
        matches!(self.prepared.get(sql), Some(Some(_)))
    }

    /// Forgets a statement (after a schema change left it unusable): it is prepared again next time.
    pub fn forget(&mut self, sql: &str) {
        if let Some(Some(p)) = self.prepared.remove(sql) {
            // Closed with the next request's messages; its answer is skipped like any other.
            let _ = frontend::close(b'S', &p.name, &mut self.wr);
        }
    }

    fn forget_all(&mut self) {
        let sqls: Vec<String> = self
            .prepared
            .keys()
            .filter(|k| k.as_str() != SETUP)
            .cloned()
            .collect();
        for sql in sqls {
            self.forget(&sql);
        }
    }

    /// Ends the messages written so far with a Sync: the server owes one more `ReadyForQuery`.
    fn sync(&mut self) {
        frontend::sync(&mut self.wr);
        self.owed += 1;
    }

    /// May the pool hand this session to the next request? Only when it is in step with the
    /// server: not broken, and no answer still owed (its last request ran to `ReadyForQuery`).
    pub fn reusable(&self) -> bool {
        !self.broken && self.owed == 0
    }

    async fn flush(&mut self) -> Result<(), PipeError> {
        let r = self.stream.write_all(&self.wr).await;
        self.wr.clear();
        if r.is_err() {
            self.broken = true;
        }
        Ok(r?)
    }

    async fn next_message(&mut self) -> Result<Message, PipeError> {
        loop {
            match Message::parse(&mut self.rd) {
                Ok(Some(m)) => {
                    if let Message::ReadyForQuery(_) = m {
                        self.owed = self.owed.saturating_sub(1);
                    }
                    return Ok(m);
                }
                Ok(None) => {}
                Err(e) => {
                    self.broken = true;
                    return Err(e.into());
                }
            }
            self.rd.reserve(8192);
            let n = match self.stream.read_buf(&mut self.rd).await {
                Ok(n) => n,
                Err(e) => {
                    self.broken = true;
                    return Err(e.into());
                }
            };
            if n == 0 {
                self.broken = true;
                return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
            }
        }
    }
}

fn fallible<T>(r: std::io::Result<Option<T>>) -> Result<Option<T>, PipeError> {
    r.map_err(|e| PipeError::Protocol(e.to_string()))
}

/// An ErrorResponse in the client's terms.
fn db_error(body: &ErrorResponseBody) -> ApiError {
    let (mut code, mut message, mut position) = (String::new(), String::new(), None);
    let mut fields = body.fields();
    while let Ok(Some(f)) = fields.next() {
        match f.type_() {
            b'C' => code = String::from_utf8_lossy(f.value_bytes()).into_owned(),
            b'M' => message = String::from_utf8_lossy(f.value_bytes()).into_owned(),
            b'P' => {
                position = std::str::from_utf8(f.value_bytes())
                    .ok()
                    .and_then(|p| p.parse().ok())
            }
            _ => {}
        }
    }
    ApiError::from_db_parts(&code, &message, position)
}

/// A pool of sessions for one login (deadpool's generic pool).
pub struct Manager(pub Target);

impl managed::Manager for Manager {
    type Type = Session;
    type Error = PipeError;

    async fn create(&self) -> Result<Session, PipeError> {
        Session::connect(&self.0).await
    }

    async fn recycle(&self, s: &mut Session, _: &Metrics) -> RecycleResult<PipeError> {
        // A session whose request was abandoned mid-exchange (its HTTP client went away and the
        // handler's future was dropped) still has that request's answers on the wire: reused, it
        // would hand them to the next request. It is closed instead.
        if !s.reusable() {
            return Err(RecycleError::message(
                "the session broke or was left mid-exchange",
            ));
        }
        Ok(())
    }
}

pub type Pool = managed::Pool<Manager>;

pub fn pool(target: Target, size: usize) -> Result<Pool, String> {
    Pool::builder(Manager(target))
        .max_size(size)
        .runtime(deadpool::Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(5)))
        .build()
        .map_err(|e| e.to_string())
}
