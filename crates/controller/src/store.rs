//! The store: SQLite (default, a WAL file under the state directory) or PostgreSQL, through one
//! sqlx `Any` pool and one set of SQL texts (`$1` placeholders work on both). Migrations are
//! embedded (one set for both backends) and applied at open.
//!
//! Every API write runs in a [`WriteTx`]: one transaction that also appends the change to the
//! revision log. On SQLite writes are serialised in-process (one writer lane: SQLite has one
//! writer anyway, and a lane avoids `SQLITE_BUSY` on read-to-write upgrades); on PostgreSQL they
//! run concurrently and the revision counter row, taken last, orders commits.

use std::{str::FromStr, sync::Arc, time::Duration};

use sqlx::{
    Any, AnyConnection, AnyPool, Executor, Row, Transaction,
    any::{AnyConnectOptions, AnyPoolOptions},
    migrate::Migrator,
};
use tokio::sync::{Mutex, MutexGuard, Notify};

/// One set of migrations serves both backends: the schema sticks to types both have and the
/// `Any` driver maps (TEXT, BIGINT, BOOLEAN).
static MIGRATIONS: Migrator = sqlx::migrate!("./migrations");

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite (bundled), one file in WAL mode.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// The open store.
#[derive(Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// SQLite only: the single writer lane.
    writer: Option<Mutex<()>>,
    /// Woken after every commit that appended revisions (the watch tails the log on it).
    commits: Arc<Notify>,
}

/// Why the store cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL is neither `sqlite:` nor `postgres:`.
    #[error("database url {0:?}: expected sqlite://PATH or postgres://...")]
    BadUrl(String),
    /// Connecting or running a query failed.
    #[error("database: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migrating the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl Store {
    /// Opens (creating if needed) the database at `url` and applies pending migrations.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::BadUrl(url.to_owned()));
        };
        let options = AnyConnectOptions::from_str(url)?;
        let pool = match backend {
            Backend::Sqlite => {
                AnyPoolOptions::new()
                    // No ping before each use: it is one more round trip through the
                    // connection's worker thread on every request.
                    .test_before_acquire(false)
                    .max_connections(4)
                    .min_connections(1)
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            // WAL: readers never wait for the writer. synchronous=NORMAL: a
                            // commit is in the WAL (the OS has it) before we answer, so a
                            // killed process loses nothing acknowledged; only a power cut can
                            // lose the last transactions (FULL would fsync every commit).
                            conn.execute(
                                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                                 PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
                            )
                            .await?;
                            Ok(())
                        })
                    })
                    .connect_with(options)
                    .await?
            }
            Backend::Postgres => {
                AnyPoolOptions::new()
                    .test_before_acquire(false)
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await?
            }
        };
        MIGRATIONS.run(&pool).await?;
        let writer = (backend == Backend::Sqlite).then(|| Mutex::new(()));
        Ok(Self {
            pool,
            backend,
            writer,
            commits: Arc::new(Notify::new()),
        })
    }

    /// The pool, for reads.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Notified after every commit that appended to the revision log.
    pub fn commits(&self) -> Arc<Notify> {
        Arc::clone(&self.commits)
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Starts a write transaction.
    pub async fn write(&self) -> Result<WriteTx<'_>, sqlx::Error> {
        let guard = match &self.writer {
            Some(lane) => Some(lane.lock().await),
            None => None,
        };
        let tx = match self.backend {
            // Take the write lock now, not at the first write, so a read-then-write
            // transaction never has to upgrade.
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(WriteTx {
            tx,
            _guard: guard,
            changes: Vec::new(),
            backend: self.backend,
            commits: Arc::clone(&self.commits),
        })
    }

    /// The newest revision in the log (0 when empty).
    pub async fn current_revision(&self) -> Result<i64, sqlx::Error> {
        let row = sqlx::query("SELECT rev FROM revision_counter WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        row.try_get(0)
    }

    /// Closes the pool (checkpointing SQLite's WAL).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// How a read inside a write transaction locks the row it reads (PostgreSQL only: SQLite's
/// single writer already excludes every other writer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// A plain read.
    None,
    /// `FOR SHARE`: the row must not change or go away before we commit.
    Share,
    /// `FOR UPDATE`: we are going to change the row.
    Update,
}

/// One change to a resource, as the revision log records it.
#[derive(Debug, Clone)]
pub struct Change {
    /// Resource collection name (`network`, `subnet`, `port`, `user`...).
    pub resource: &'static str,
    /// The resource id.
    pub id: String,
    /// `create`, `update` or `delete`.
    pub operation: Operation,
    /// The owning project ('' for global resources).
    pub project_id: String,
    /// The full representation after the change (for deletes: before).
    pub body: String,
}

/// What happened to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// It was made.
    Create,
    /// It changed.
    Update,
    /// It was removed.
    Delete,
}

impl Operation {
    /// The name stored in the log.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }
}

/// A write transaction: changes recorded with [`WriteTx::record`] are appended to the revision
/// log at [`WriteTx::commit`], in the same transaction. Dropping it rolls back.
pub struct WriteTx<'a> {
    tx: Transaction<'static, Any>,
    _guard: Option<MutexGuard<'a, ()>>,
    changes: Vec<Change>,
    backend: Backend,
    commits: Arc<Notify>,
}

impl std::fmt::Debug for WriteTx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTx")
            .field("changes", &self.changes.len())
            .finish()
    }
}

impl WriteTx<'_> {
    /// The connection to run statements on.
    pub fn conn(&mut self) -> &mut AnyConnection {
        &mut self.tx
    }

    /// The SQL suffix that takes `lock` on the rows a `SELECT` reads.
    pub fn lock(&self, lock: Lock) -> &'static str {
        match (self.backend, lock) {
            (Backend::Sqlite, _) | (_, Lock::None) => "",
            (Backend::Postgres, Lock::Share) => " FOR SHARE",
            (Backend::Postgres, Lock::Update) => " FOR UPDATE",
        }
    }

    /// Notes a change for the revision log.
    pub fn record(&mut self, change: Change) {
        self.changes.push(change);
    }

    /// Appends the recorded changes to the revision log and commits; returns the last revision
    /// (or the current one when nothing was recorded).
    pub async fn commit(mut self) -> Result<i64, sqlx::Error> {
        let count = i64::try_from(self.changes.len()).unwrap_or(i64::MAX);
        // The counter row is taken last: on PostgreSQL it serialises the tail of concurrent
        // writers, so revisions become visible in order.
        let row =
            sqlx::query("UPDATE revision_counter SET rev = rev + $1 WHERE id = 1 RETURNING rev")
                .bind(count)
                .fetch_one(&mut *self.tx)
                .await?;
        let last: i64 = row.try_get(0)?;
        let now = now();
        let mut rev = last - count;
        for change in std::mem::take(&mut self.changes) {
            rev += 1;
            sqlx::query(
                "INSERT INTO revisions (rev, resource, resource_id, operation, project_id, body, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(rev)
            .bind(change.resource)
            .bind(change.id)
            .bind(change.operation.as_str())
            .bind(change.project_id)
            .bind(change.body)
            .bind(now.as_str())
            .execute(&mut *self.tx)
            .await?;
        }
        if count > 0 && self.backend == Backend::Postgres {
            // Delivered at commit to every replica's listener (the watch's wake-up).
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(crate::watch::CHANNEL)
                .bind(last.to_string())
                .execute(&mut *self.tx)
                .await?;
        }
        self.tx.commit().await?;
        if count > 0 {
            self.commits.notify_one();
        }
        Ok(last)
    }
}

/// The current time as Neutron prints it: `YYYY-MM-DDTHH:MM:SSZ`.
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sqlite_opens_migrates_and_logs() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let store = Store::open(&url).await.unwrap();
        assert_eq!(store.current_revision().await.unwrap(), 0);
        let mut tx = store.write().await.unwrap();
        for id in ["a", "b"] {
            tx.record(Change {
                resource: "network",
                id: id.into(),
                operation: Operation::Create,
                project_id: "p".into(),
                body: "{}".into(),
            });
        }
        assert_eq!(tx.commit().await.unwrap(), 2);
        // A dropped transaction records nothing.
        let mut tx = store.write().await.unwrap();
        tx.record(Change {
            resource: "network",
            id: "c".into(),
            operation: Operation::Create,
            project_id: "p".into(),
            body: "{}".into(),
        });
        drop(tx);
        assert_eq!(store.current_revision().await.unwrap(), 2);
        // Reopening applies no migration twice.
        store.close().await;
        let store = Store::open(&url).await.unwrap();
        assert_eq!(store.current_revision().await.unwrap(), 2);
    }

    #[test]
    fn timestamps_have_second_precision() {
        let stamp = now();
        assert_eq!(stamp.len(), 20, "{stamp}");
        assert!(stamp.ends_with('Z'));
    }
}
