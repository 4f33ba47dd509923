//! `runner worker rm`: remove a worker and revoke its tokens; its tenant and data stay.

use tokio_postgres::Client;

use super::tokens::{Revoke, revoke_tokens};
use super::{AdminError, db};

/// Remove a worker (versions, schedule, secrets) and revoke its tokens. Its tenant and data
/// stay. Returns false when no such worker exists.
pub async fn remove(client: &mut Client, name: &str) -> Result<bool, AdminError> {
    let had_db = client
        .query_opt(
            "SELECT db_tenant FROM runner.workers WHERE name = $1",
            &[&name],
        )
        .await
        .map_err(db("reading the worker"))?
        .is_some_and(|r| r.get::<_, Option<String>>(0).is_some());
    let tx = client
        .transaction()
        .await
        .map_err(db("starting the removal"))?;
    tx.execute(
        "DELETE FROM runner.schedules WHERE name = 'worker:' || $1",
        &[&name],
    )
    .await
    .map_err(db("removing the worker's schedule"))?;
    let n = tx
        .execute("DELETE FROM runner.workers WHERE name = $1", &[&name])
        .await
        .map_err(db("removing the worker"))?;
    tx.commit().await.map_err(db("committing the removal"))?;
    if had_db {
        revoke_tokens(client, name, Revoke::AllBut(None)).await?;
    }
    Ok(n > 0)
}
