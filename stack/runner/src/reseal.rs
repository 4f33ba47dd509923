//! Sealing stored worker secrets again under the current `RUNNER_SECRETS_KEY` after a rotation,
//! while the key still carries the earlier ones (`RUNNER_SECRETS_KEY_PREVIOUS`). Every replica
//! runs it as it starts. It is idempotent, and replicas running it at once do no harm: a row is
//! updated only while it still holds the nonce that was read.

use tokio_postgres::GenericClient;

use crate::db::DbError;
use crate::secrets::{OpenedWith, SecretsError, SecretsKey};

#[derive(Debug, thiserror::Error)]
pub enum ResealError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Seal(#[from] SecretsError),
}

/// What a pass did.
#[derive(Debug, Default, PartialEq)]
pub struct Resealed {
    /// Rows sealed again under the current key.
    pub resealed: u64,
    /// `(worker, secret)` that open with none of the keys: they stay as they are.
    pub unopenable: Vec<(String, String)>,
}

/// Seal again, under the current key, every stored secret that only an earlier key opens.
pub async fn reseal(
    client: &impl GenericClient,
    key: &SecretsKey,
) -> Result<Resealed, ResealError> {
    let rows = client
        .query(
            "SELECT worker, name, nonce, sealed FROM runner.worker_secrets ORDER BY worker, name",
            &[],
        )
        .await
        .map_err(|e| DbError::new("reading worker secrets", e))?;
    let mut out = Resealed::default();
    for r in rows {
        let (worker, name): (String, String) = (r.get(0), r.get(1));
        let (nonce, sealed): (Vec<u8>, Vec<u8>) = (r.get(2), r.get(3));
        match key.open_with(&worker, &name, &nonce, &sealed) {
            Ok((_, OpenedWith::Current)) => {}
            Ok((secret, OpenedWith::Previous)) => {
                let (new_nonce, new_sealed) = key.seal(&worker, &name, secret.expose())?;
                out.resealed += client
                    .execute(
                        "UPDATE runner.worker_secrets
                            SET nonce = $3, sealed = $4, updated_at = now()
                          WHERE worker = $1 AND name = $2 AND nonce = $5",
                        &[&worker, &name, &new_nonce, &new_sealed, &nonce],
                    )
                    .await
                    .map_err(|e| DbError::new("sealing a worker secret again", e))?;
            }
            Err(_) => out.unopenable.push((worker, name)),
        }
    }
    Ok(out)
}
