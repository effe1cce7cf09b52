//! An idle instance's PostgreSQL goes away and comes back: with no publish
//! to fail, the health sampler's round trip is what tells. `sse_store_up`
//! follows it (alert SseBrokerStoreUnavailable reads it), and the log says
//! once where the outage began and once where it ended.

use std::time::Duration;

use super::harness::{LONG, TestDb, poll};
use crate::helpers::BrokerProcess;

/// `sse_store_up` as `/metrics` shows it now.
async fn store_up(client: &reqwest::Client, broker: &BrokerProcess) -> Option<f64> {
    let exposition = client
        .get(format!("{}/metrics", broker.address))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    exposition
        .lines()
        .find(|line| line.starts_with("sse_store_up ") || line.starts_with("sse_store_up{"))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
}

async fn wait_for_store_up(client: &reqwest::Client, broker: &BrokerProcess, wanted: f64) {
    poll(LONG, &format!("sse_store_up {wanted}"), || async {
        match store_up(client, broker).await {
            Some(value) if value == wanted => Ok(()),
            other => Err(format!("sse_store_up is {other:?}")),
        }
    })
    .await;
}

const SILENT: &str = "the event store does not answer its health round trip";
const BACK: &str = "the event store answers its health round trip again";

#[actix_web::test]
async fn an_idle_instance_logs_a_store_outage_once_where_it_begins_and_ends() {
    // Arrange: an instance nobody publishes to.
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().expect("a scratch directory");
    let mut broker = BrokerProcess::spawn_on_store(&db.url(), dir.path().join("broker.log"));
    let client = reqwest::Client::new();
    broker.wait_until_ready(&client).await;
    wait_for_store_up(&client, &broker, 1.0).await;

    // Act 1: the database refuses every session for a few seconds.
    db.close_for_now().await;
    wait_for_store_up(&client, &broker, 0.0).await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Assert 1: one WARN for the outage, with its cause, not one a second.
    let logs = broker.logs();
    assert_eq!(logs.matches(SILENT).count(), 1, "{logs}");
    let line = logs.lines().find(|l| l.contains(SILENT)).expect("the line");
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("error"), "the cause is given: {line}");
    assert!(!logs.contains(BACK), "{logs}");

    // Act 2: the database takes sessions again.
    db.reopen().await;
    wait_for_store_up(&client, &broker, 1.0).await;

    // Assert 2: one INFO line for the return, saying how long it lasted.
    poll(LONG, "the return logged", || async {
        let logs = broker.logs();
        match logs.lines().find(|l| l.contains(BACK)) {
            Some(line) if line.contains("INFO") && line.contains("silent_for_secs") => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let logs = broker.logs();
    assert_eq!(logs.matches(SILENT).count(), 1, "{logs}");
    assert_eq!(logs.matches(BACK).count(), 1, "{logs}");
}
