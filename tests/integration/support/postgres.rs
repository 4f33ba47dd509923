//! The test PostgreSQL of this binary (testkit's, as `stackctl` tests want it: our image built
//! if missing, database `app`) and a blocking client for assertions.

use std::ops::Deref;

use testkit::{IfMissing, Options};

pub use testkit::postgres_image;

/// A throw-away PostgreSQL 17 server in a container of our image, removed when dropped; its
/// name, port, password, database and URLs come from [`testkit::Postgres`].
pub struct Postgres(testkit::Postgres);

impl Deref for Postgres {
    type Target = testkit::Postgres;

    fn deref(&self) -> &testkit::Postgres {
        &self.0
    }
}

impl Postgres {
    /// Starts a server (database `app`, superuser `postgres`) on a loopback port and waits, with a
    /// deadline, until it accepts connections.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// [`Postgres::start`] with extra `docker run` arguments (e.g. a volume).
    pub fn start_with(docker_args: &[&str]) -> Self {
        Self::start_as("postgres", docker_args)
    }

    /// A server whose bootstrap superuser is `superuser` (like a hosted Supabase project's,
    /// where it is `supabase_admin` and `postgres` is not a superuser).
    pub fn start_as(superuser: &str, docker_args: &[&str]) -> Self {
        let password = format!("pw{}", std::process::id());
        Self(testkit::Postgres::start(&Options {
            name_prefix: "stackctl-test-pg",
            superuser,
            password: &password,
            database: Some("app"),
            network_alias: None,
            docker_args,
            if_missing: IfMissing::Build,
        }))
    }

    /// A superuser connection.
    pub fn db(&self) -> Db {
        Db::connect(&self.url()).unwrap_or_else(|e| panic!("connecting to {}: {e}", self.name))
    }
}

/// A blocking PostgreSQL client for assertions (tokio-postgres on its own small runtime).
pub struct Db {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Db {
    pub fn connect(url: &str) -> Result<Self, tokio_postgres::Error> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let client = rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok::<_, tokio_postgres::Error>(client)
        })?;
        Ok(Self { rt, client })
    }

    /// Runs one or more statements (simple protocol).
    pub fn batch(&self, sql: &str) -> Result<(), tokio_postgres::Error> {
        self.rt.block_on(self.client.batch_execute(sql))
    }

    pub fn query(&self, sql: &str) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
        self.rt.block_on(self.client.query(sql, &[]))
    }

    /// The first column of every row, as text (the query must select text).
    pub fn strings(&self, sql: &str) -> Vec<String> {
        self.query(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect()
    }

    pub fn int(&self, sql: &str) -> i64 {
        self.query(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))[0].get::<_, i64>(0)
    }
}
