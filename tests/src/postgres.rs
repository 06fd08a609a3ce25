//! PostgreSQL for the outbox and inbox suites: a schema of the test's own
//! on the shared server, or a private server the test can stop.
//!
//! The shared server is `POSTAGE_TEST_DATABASE_URL` (default
//! `host=127.0.0.1 port=5432 user=postgres dbname=test`). A server that
//! cannot be reached fails the test saying so; nothing is skipped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use postage_postgres::Database;

/// How long connecting, or dropping a test schema, may take.
const LIMIT: Duration = Duration::from_secs(20);

/// The shared test database's address.
pub fn database_url() -> String {
    std::env::var("POSTAGE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres dbname=test".to_owned())
}

/// A schema of the test's own, with Postage's tables (migrated), dropped
/// when the value is dropped (also when the test fails).
#[derive(Debug)]
pub struct TestSchema {
    /// Its name.
    pub name: String,
    /// The address of the database with this schema first on the
    /// `search_path`: for child processes (`POSTAGE_DATABASE_URL`).
    pub url: String,
    /// A pool on it.
    pub database: Database,
    base: String,
}

impl TestSchema {
    /// Creates a schema named after `prefix` on the shared server.
    pub async fn create(prefix: &str) -> Self {
        Self::create_on(&database_url(), prefix).await
    }

    /// Creates a schema named after `prefix` on the server at `base`.
    pub async fn create_on(base: &str, prefix: &str) -> Self {
        crate::init_tracing();
        let name = crate::unique(prefix).replace('-', "_");
        let admin = connect(base).await;
        if let Err(e) = admin.batch_execute(&format!("CREATE SCHEMA {name}")).await {
            panic!("cannot create schema {name}: {e}");
        }
        let url = format!("{base} options='-c search_path={name}'");
        let database = Database::new(&url).unwrap_or_else(|e| panic!("bad address {url}: {e}"));
        database
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("migrations failed: {e}"));
        TestSchema {
            name,
            url,
            database,
            base: base.to_owned(),
        }
    }

    /// A client on the schema, outside the pool.
    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }

    /// The first column of the first row of `sql`, a count.
    pub async fn count(&self, sql: &str) -> i64 {
        let client = self
            .database
            .pool()
            .get()
            .await
            .unwrap_or_else(|e| panic!("no connection: {e}"));
        client
            .query_one(sql, &[])
            .await
            .and_then(|row| row.try_get(0))
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let base = self.base.clone();
        let name = self.name.clone();
        // A runtime of its own: the test's may be gone or busy.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            let dropping = async {
                let (client, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
                    .await
                    .ok()?;
                tokio::spawn(connection);
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .await
                    .ok()
            };
            runtime.block_on(async { tokio::time::timeout(LIMIT, dropping).await.ok()? })
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            tracing::warn!(schema = self.name, "the test schema could not be dropped");
        }
    }
}

/// A client on `url`, failing the test loudly when PostgreSQL is away.
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let connecting = tokio_postgres::connect(url, tokio_postgres::NoTls);
    match tokio::time::timeout(LIMIT, connecting).await {
        Ok(Ok((client, connection))) => {
            tokio::spawn(connection);
            client
        }
        Err(_) => panic!("PostgreSQL at {url} did not answer within {LIMIT:?}"),
        Ok(Err(e)) => panic!(
            "PostgreSQL is not reachable at {url} ({e}). Start it, or set \
             POSTAGE_TEST_DATABASE_URL; `bash .ci/run` starts it for you."
        ),
    }
}

/// A PostgreSQL server of the test's own (its own data directory and
/// port, run as the `postgres` user), which the test may stop and start.
/// Stopped and removed when dropped.
#[derive(Debug)]
pub struct PrivatePostgres {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
}

impl PrivatePostgres {
    /// Creates and starts a server with its files under `base` (the
    /// test's `CARGO_TARGET_TMPDIR`).
    pub fn start(base: &str) -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| {
                versions
                    .filter_map(Result::ok)
                    .map(|version| version.path().join("bin"))
                    .filter(|bin| bin.join("initdb").exists())
                    .max()
            })
            .unwrap_or_else(|| panic!("no PostgreSQL server binaries under /usr/lib/postgresql"));
        let dir = Path::new(base).join(crate::unique("pg"));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {dir:?}: {e}"));
        run(Command::new("chown").args(["postgres:postgres"]).arg(&dir));
        let port = crate::node::free_port();
        let server = PrivatePostgres { dir, bin, port };
        server.as_postgres(
            "initdb",
            &[
                "-D",
                &server.data(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        server.boot();
        server
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// Runs one of the server's tools as the `postgres` user.
    fn as_postgres(&self, tool: &str, args: &[&str]) {
        run(Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(tool))
            .args(args));
    }

    /// The address of its `postgres` database.
    pub fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    /// Starts it (again) and waits until it accepts connections.
    pub fn boot(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log").display().to_string();
        self.as_postgres(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the private PostgreSQL did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops it at once (`-m immediate`: connections are cut, as when
    /// the server dies).
    pub fn stop(&self) {
        self.as_postgres(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data(), "-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
