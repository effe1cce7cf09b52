//! PostgreSQL's health probes: the round trip `/health` reports, and the
//! small write the health sampler makes while writes fail.

use diesel_async::{AsyncConnection, RunQueryDsl};

use super::{
    Deadline, StoreError, pg_marks,
    postgres::{COMMIT_ORDER_LOCK, PostgresStore, bound_transaction},
};

impl PostgresStore {
    pub async fn ping(&self, deadline: &Deadline) -> Result<(), StoreError> {
        let mut connection = self.connection(deadline).await?;
        diesel::sql_query("SELECT 1")
            .execute(&mut connection)
            .await?;
        Ok(())
    }

    pub async fn probe_write(&self, deadline: &Deadline) -> Result<(), StoreError> {
        let mut connection = self.connection(deadline).await?;
        connection
            .transaction::<_, StoreError, _>(async |c| {
                // The locks a batch takes: the commit order's, and the one
                // every insert and task update takes (a table another
                // session locked fails the probe as it fails them).
                let locks = format!(
                    " SELECT pg_advisory_xact_lock({COMMIT_ORDER_LOCK}); \
                     LOCK TABLE events, tasks IN ROW EXCLUSIVE MODE;"
                );
                bound_transaction(c, deadline, &locks).await?;
                pg_marks::raise(c, pg_marks::WRITE_PROBE, crate::domain::now_ms()).await?;
                deadline.begin_commit()?;
                Ok(())
            })
            .await
    }
}
