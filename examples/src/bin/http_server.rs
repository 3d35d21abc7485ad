//! The reference server: an axum app served by `lichtara::http::Server`, so
//! that shutdown turns readiness to 503, waits out the drain delay, closes
//! the listener, closes idle keep-alive connections at once, lets requests
//! in flight finish, sends WebSockets close 1001, and cuts what is left at
//! the drain timeout.
//!
//! ```text
//! cargo run -p lichtara-examples --bin http_server -- --addr 127.0.0.1:3000
//! curl localhost:3000/slow?ms=3000 & kill -TERM <pid>   # the request still completes
//! ```
//!
//! A client gets 30 s to send a request head and a keep-alive connection
//! may stay idle 75 s (`--header-read-timeout`, `--keep-alive-timeout`).
//!
//! Routes: `GET /` (quick), `GET /slow?ms=N` (answers after N ms),
//! `GET /ready` (200, then 503 once shutdown begins), `GET /ws` (echo),
//! `POST /items?delay_ms=N` (inserts a row in a transaction that stays open
//! N ms before it commits; 201).
//!
//! The database — a SQLite file (`--db PATH`, by default one in a temporary
//! folder, so it runs with no service installed) or PostgreSQL (`--db
//! postgres://…`) — is a managed resource closed in phase 1, after the HTTP
//! drain of phase 0: requests in flight still commit, and the close is
//! bounded by its timeout even if a connection leaked. The default SQLite
//! file's temporary folder is a managed resource too, removed in phase 2,
//! once the pool has closed.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use clap::Parser;
use lichtara::Managed;
use serde::Deserialize;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};

/// The reference server of lichtara-cleanup.
#[derive(Debug, Parser)]
struct Args {
    /// Where to listen.
    #[arg(long, default_value = "127.0.0.1:3000")]
    addr: SocketAddr,
    /// How long to keep accepting after shutdown begins (readiness is 503
    /// meanwhile).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    drain_delay: Duration,
    /// How long connections get to finish before they are cut.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    drain_timeout: Duration,
    /// How long a client has to send a request head.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    header_read_timeout: Duration,
    /// How long a keep-alive connection may stay idle between requests.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "75s")]
    keep_alive_timeout: Duration,
    /// A SQLite file, or a `postgres://` URL (default: a SQLite file in a
    /// temporary folder).
    #[arg(long)]
    db: Option<String>,
    /// Leak one pooled connection at startup (for demonstrating that the
    /// pool's close is bounded).
    #[arg(long, hide = true)]
    leak_connection: bool,
}

#[derive(Debug, Deserialize)]
struct Slow {
    ms: u64,
}

async fn slow(Query(Slow { ms }): Query<Slow>) -> String {
    // An access-log line: tests wait for it to know the request is in flight.
    println!("slow request started ({ms} ms)");
    tokio::time::sleep(Duration::from_millis(ms)).await;
    format!("slept {ms} ms\n")
}

async fn ws(upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(|socket| async move {
        let mut session = lichtara::http::ws::Session::new(socket);
        while let Some(Ok(message)) = session.recv().await {
            if session.send(message).await.is_err() {
                break;
            }
        }
    })
}

#[derive(Debug, Deserialize)]
struct NewItem {
    #[serde(default)]
    delay_ms: u64,
}

async fn create_item(
    State(db): State<Managed<Database>>,
    Query(NewItem { delay_ms }): Query<NewItem>,
) -> Result<StatusCode, (StatusCode, String)> {
    println!("item request started ({delay_ms} ms)");
    db.insert_item(Duration::from_millis(delay_ms))
        .await
        .map(|()| StatusCode::CREATED)
        .map_err(|err| (StatusCode::INTERNAL_SERVER_ERROR, format!("{err}\n")))
}

fn app(db: Managed<Database>) -> Router {
    Router::new()
        .route("/", get(|| async { "ok\n" }))
        .route("/slow", get(slow))
        .route("/ready", get(lichtara::http::ready))
        .route("/ws", get(ws))
        .route("/items", post(create_item))
        .with_state(db)
}

/// The connection pool, SQLite or PostgreSQL.
#[derive(Debug, Clone)]
enum Pool {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// The database as a managed resource: closed in phase 1, after the HTTP
/// drain (phase 0), within 5 s.
#[lichtara::cleanup(order = 1, timeout = "5s")]
#[derive(Debug)]
struct Database {
    pool: Pool,
}

impl Database {
    async fn connect(db: &str) -> anyhow::Result<Self> {
        let pool = if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            let options: PgConnectOptions = db.parse()?;
            let pool = PgPoolOptions::new()
                .max_connections(10)
                .connect_with(options)
                .await?;
            sqlx::query("CREATE TABLE IF NOT EXISTS items (id BIGSERIAL PRIMARY KEY, created_at TIMESTAMPTZ NOT NULL DEFAULT now())")
                .execute(&pool)
                .await?;
            Pool::Postgres(pool)
        } else {
            let options = SqliteConnectOptions::new()
                .filename(db)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(30));
            let pool = SqlitePoolOptions::new()
                .max_connections(10)
                .connect_with(options)
                .await?;
            sqlx::query("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)")
                .execute(&pool)
                .await?;
            Pool::Sqlite(pool)
        };
        Ok(Self { pool })
    }

    /// One row, in a transaction that stays open `delay` before committing.
    async fn insert_item(&self, delay: Duration) -> Result<(), sqlx::Error> {
        match &self.pool {
            Pool::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                tokio::time::sleep(delay).await;
                sqlx::query("INSERT INTO items DEFAULT VALUES")
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await
            }
            Pool::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                sqlx::query("INSERT INTO items DEFAULT VALUES")
                    .execute(&mut *tx)
                    .await?;
                tokio::time::sleep(delay).await;
                tx.commit().await
            }
        }
    }

    /// Checks a connection out and never returns it: what a bug that keeps
    /// a connection in a forgotten task looks like to the pool.
    async fn leak_one_connection(&self) -> Result<(), sqlx::Error> {
        match &self.pool {
            Pool::Sqlite(pool) => std::mem::forget(pool.acquire().await?),
            Pool::Postgres(pool) => std::mem::forget(pool.acquire().await?),
        }
        Ok(())
    }

    /// Connections checked out of the pool right now.
    fn held(&self) -> usize {
        let (size, idle) = match &self.pool {
            Pool::Sqlite(pool) => (pool.size(), pool.num_idle()),
            Pool::Postgres(pool) => (pool.size(), pool.num_idle()),
        };
        (size as usize).saturating_sub(idle)
    }
}

impl lichtara::Cleanup for Database {
    async fn cleanup(&self) -> Result<(), lichtara::BoxError> {
        // `close` waits for every checked-out connection to come back: a
        // leaked one would hold it forever. The hook's timeout bounds it;
        // if it is hit, this guard says how many were still held.
        let mut report = HeldOnTimeout {
            db: self,
            armed: true,
        };
        let held = self.held();
        if held > 0 {
            tracing::info!(held, "closing the pool; waiting for connections in use");
        }
        match &self.pool {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
        report.armed = false;
        tracing::info!("database pool closed");
        Ok(())
    }
}

struct HeldOnTimeout<'a> {
    db: &'a Database,
    armed: bool,
}

impl Drop for HeldOnTimeout<'_> {
    fn drop(&mut self) {
        if self.armed {
            tracing::error!(
                held = self.db.held(),
                "database pool close timed out: connections are still held by requests that did not finish (or leaked)"
            );
        }
    }
}

/// The temporary folder of the default SQLite file: removed in phase 2,
/// after the pool closed in phase 1, however the server ends.
#[lichtara::cleanup(order = 2, timeout = "5s")]
#[derive(Debug)]
struct TempFolder {
    path: std::path::PathBuf,
}

impl lichtara::Cleanup for TempFolder {
    async fn cleanup(&self) -> Result<(), lichtara::BoxError> {
        tokio::fs::remove_dir_all(&self.path).await?;
        tracing::info!(path = %self.path.display(), "temporary folder removed");
        Ok(())
    }
}

/// The server's log from its start (`RUST_LOG`, info by default), on
/// stderr: what happens in normal running (accepts failing for want of
/// file descriptors, say) is seen, not only the shutdown.
fn init_logging() {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|value| value.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(LevelFilter::INFO));
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .compact()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_filter(filter),
        )
        .init();
}

#[lichtara::main(timeout = "30s")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logging();
    // The runtime owns the folder until shutdown; this handle going out of
    // scope does not remove it.
    let (db_path, _temp_folder) = match args.db {
        Some(db) => (db, None),
        None => {
            let path =
                std::env::temp_dir().join(format!("lichtara-http-server-{}", std::process::id()));
            std::fs::create_dir_all(&path)?;
            let db_path = path.join("items.sqlite").display().to_string();
            (db_path, Some(lichtara::manage(TempFolder { path })))
        }
    };
    let db = lichtara::manage(Database::connect(&db_path).await?);
    if args.leak_connection {
        db.leak_one_connection().await?;
    }
    println!("database {db_path}");
    let server = lichtara::http::Server::bind(args.addr)
        .await?
        .drain_delay(args.drain_delay)
        .drain_timeout(args.drain_timeout)
        .header_read_timeout(args.header_read_timeout)
        .keep_alive_timeout(args.keep_alive_timeout);
    println!("listening on http://{}", server.local_addr()?);
    server.serve(app(db)).await?;
    Ok(())
}
