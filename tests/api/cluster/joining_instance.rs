//! An instance that joins a cluster while the others publish (a rolling
//! restart): the streams it opens in its first moments miss nothing.

use std::{
    cell::{Cell, RefCell},
    collections::BTreeSet,
    time::Duration,
};

use futures_util::{StreamExt, future::join, stream};

use super::{
    harness::{
        LONG, Node, SHORT, TestDb, assert_exactly_once_in_order, cluster_name, event, settings,
        shared_redis_url, wait_for_health,
    },
    is_healthy_with_redis_up,
};

/// Streams opened on the new instance right after it starts.
const STREAMS: usize = 8;

/// CONTRACT §6: a resume yields every stored event after its id, also on an
/// instance that has just started. The joining instance's bridge once took
/// its starting point from the store some time after the instance took
/// streams: events committed by another instance in between were counted as
/// routed, and never reached a stream opened meanwhile.
#[actix_web::test]
async fn streams_opened_on_an_instance_joining_a_publishing_cluster_miss_nothing() {
    let db = TestDb::create().await;
    let cluster = cluster_name();
    let redis = shared_redis_url();
    for round in 0..3 {
        let publisher = Node::start(settings(
            db.database_url(),
            Some(&redis),
            &cluster,
            &format!("pub{round}"),
        ))
        .await;
        wait_for_health(&publisher, SHORT, "Redis up", is_healthy_with_redis_up).await;
        let published = RefCell::new(BTreeSet::new());
        let stop = Cell::new(false);

        let publish = async {
            let mut next = 0usize;
            while !stop.get() {
                let ids: Vec<i64> = stream::iter(next..next + 8)
                    .map(|seq| {
                        let publisher = &publisher;
                        async move { publisher.publish_one(&event("pub", seq)).await }
                    })
                    .buffer_unordered(4)
                    .collect()
                    .await;
                next += 8;
                published.borrow_mut().extend(ids);
            }
        };
        let join_and_watch = async {
            // Let the publisher get going, then start an instance into it.
            while published.borrow().len() < 40 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let joiner = Node::start(settings(
                db.database_url(),
                Some(&redis),
                &cluster,
                &format!("join{round}"),
            ))
            .await;
            let mut streams = Vec::new();
            for _ in 0..STREAMS {
                let after = *published.borrow().last().expect("published");
                streams.push((after, joiner.collect(Some(after)).await));
            }
            let enough = published.borrow().len() + 200;
            while published.borrow().len() < enough {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            stop.set(true);
            (joiner, streams)
        };
        let ((), (joiner, streams)) = join(publish, join_and_watch).await;

        let published = published.into_inner();
        for (after, stream) in &streams {
            let expected: BTreeSet<i64> = published.range(after + 1..).copied().collect();
            let collected = stream.wait_for_all(&expected, LONG).await;
            assert_exactly_once_in_order(
                &format!("round {round}: {} on {}", stream.label, joiner.instance_id),
                &collected.ids(),
                &expected,
            );
        }
    }
}
