//! Two brokers on one PostgreSQL database without Redis each route only
//! their own events while their ids interleave: a client's resume point
//! then skips the other's for good. The second says so (it does not
//! refuse to start: a rolling update overlaps the old process and the
//! new), until the first has stopped.

use std::time::Duration;

use crate::helpers::{BrokerProcess, SHORT, eventually};

use super::harness::{LONG, TestDb};

const SHARED: &str = "another broker serves this database";
const ALONE: &str = "no other broker without Redis holds this database now";

#[actix_web::test]
async fn a_second_unclustered_broker_on_one_database_is_warned_of_until_the_first_stops() {
    // Arrange
    let db = TestDb::create().await;
    let dir = tempfile::tempdir().expect("a scratch directory");
    let client = reqwest::Client::new();
    let mut first = BrokerProcess::spawn_on_store(&db.url(), dir.path().join("first.log"));
    first.wait_until_ready(&client).await;

    // Act
    let mut second = BrokerProcess::spawn_on_store(&db.url(), dir.path().join("second.log"));
    second.wait_until_ready(&client).await;

    // Assert: the second warns, once; the first, alone before it, does not.
    eventually(SHORT, "the second broker's warning", || async {
        second.logs().contains(SHARED).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let logs = second.logs();
    assert_eq!(logs.matches(SHARED).count(), 1, "{logs}");
    assert!(
        logs.lines()
            .any(|l| l.contains(SHARED) && l.contains("WARN")),
        "{logs}"
    );
    assert!(!first.logs().contains(SHARED), "{}", first.logs());

    // Act 2: the first stops (a rolling update's old process).
    first.sigterm();
    assert_eq!(first.wait_for_exit(SHORT).await.code(), Some(0));

    // Assert 2: the second takes the database over, and says so.
    eventually(LONG, "the second broker alone", || async {
        second.logs().contains(ALONE).then_some(())
    })
    .await;
    second.sigterm();
    assert_eq!(second.wait_for_exit(SHORT).await.code(), Some(0));
}
