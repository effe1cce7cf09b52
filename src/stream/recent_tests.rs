use std::time::Duration;

use bytes::Bytes;
use serde_json::json;

use super::*;
use crate::domain::{EventType, TypeFilter, Viewer};

const DAY: Duration = Duration::from_secs(86_400);

fn event(id: i64, event_type: &str, created_at_ms: i64) -> (StoredEvent, Bytes) {
    let event = StoredEvent {
        id: Some(EventId(id)),
        event_type: EventType::parse(event_type).unwrap(),
        data: json!({ "n": id }),
        project_id: None,
        user_id: None,
        task_id: None,
        created_at_ms,
        trace_context: None,
    };
    (event, Bytes::from(format!("id: {id}\n\n")))
}

fn batch(ids: std::ops::RangeInclusive<i64>) -> Vec<(StoredEvent, Bytes)> {
    ids.map(|id| event(id, "commit", now_ms())).collect()
}

fn only(event_type: &str) -> Subscription {
    Subscription {
        event_types: TypeFilter::only([EventType::parse(event_type).unwrap()]),
        project_id: None,
        task_id: None,
        viewer: Viewer::anonymous(),
    }
}

fn ids(page: &RecentPage) -> Vec<i64> {
    page.frames.iter().map(|f| f.event.id.unwrap().0).collect()
}

#[test]
fn a_resume_inside_the_window_reads_every_later_event_in_pages() {
    let recent = RecentFrames::new(100, usize::MAX, DAY);
    recent.extend(Some(EventId(10)), batch(11..=15));
    recent.extend(Some(EventId(15)), batch(16..=20));

    let first = recent.page_after(EventId(12), &only("commit"), 3).unwrap();
    assert_eq!(ids(&first), [13, 14, 15]);
    assert!(!first.exhausted);
    let rest = recent
        .page_after(first.through, &only("commit"), 3)
        .unwrap();
    assert_eq!(ids(&rest), [16, 17, 18]);
    let last = recent.page_after(rest.through, &only("commit"), 3).unwrap();
    assert_eq!(ids(&last), [19, 20]);
    assert!(last.exhausted);
    assert_eq!(last.through, EventId(20));
    // The floor itself is a resume point: everything after it is held.
    assert_eq!(
        ids(&recent
            .page_after(EventId(10), &only("commit"), 100)
            .unwrap())
        .len(),
        10
    );
}

#[test]
fn a_resume_point_before_the_window_goes_to_the_store() {
    let recent = RecentFrames::new(100, usize::MAX, DAY);
    recent.extend(Some(EventId(10)), batch(11..=15));
    assert!(recent.page_after(EventId(9), &only("commit"), 10).is_none());
    // Nothing is known before the first batch with a predecessor.
    let cold = RecentFrames::new(100, usize::MAX, DAY);
    assert!(cold.page_after(EventId(0), &only("commit"), 10).is_none());
}

#[test]
fn a_batch_that_does_not_continue_the_window_starts_it_over() {
    let recent = RecentFrames::new(100, usize::MAX, DAY);
    recent.extend(Some(EventId(10)), batch(11..=15));
    // Ids 16 and 17 were committed elsewhere and never routed here.
    recent.extend(Some(EventId(17)), batch(18..=19));
    assert!(
        recent
            .page_after(EventId(15), &only("commit"), 10)
            .is_none()
    );
    assert_eq!(
        ids(&recent.page_after(EventId(17), &only("commit"), 10).unwrap()),
        [18, 19]
    );
    // An unknown predecessor holds only what comes after the batch's first event.
    recent.extend(None, batch(30..=32));
    assert!(
        recent
            .page_after(EventId(29), &only("commit"), 10)
            .is_none()
    );
    assert_eq!(
        ids(&recent.page_after(EventId(30), &only("commit"), 10).unwrap()),
        [31, 32]
    );
}

#[test]
fn the_window_is_bounded_by_count_and_bytes_and_moves_its_floor() {
    let recent = RecentFrames::new(4, usize::MAX, DAY);
    recent.extend(Some(EventId(0)), batch(1..=10));
    assert_eq!(recent.len(), 4);
    assert!(recent.page_after(EventId(5), &only("commit"), 10).is_none());
    assert_eq!(
        ids(&recent.page_after(EventId(6), &only("commit"), 10).unwrap()),
        [7, 8, 9, 10]
    );

    let one_entry = event(1, "commit", now_ms()).1.len() + ENTRY_OVERHEAD;
    let by_bytes = RecentFrames::new(100, one_entry * 3, DAY);
    by_bytes.extend(Some(EventId(0)), batch(1..=9));
    assert_eq!(by_bytes.len(), 3);
}

#[test]
fn only_matching_events_are_returned_but_every_event_moves_the_position() {
    let recent = RecentFrames::new(100, usize::MAX, DAY);
    let now = now_ms();
    recent.extend(
        Some(EventId(0)),
        [
            event(1, "commit", now),
            event(2, "deploy", now),
            event(3, "commit", now),
        ],
    );
    let page = recent.page_after(EventId(0), &only("deploy"), 10).unwrap();
    assert_eq!(ids(&page), [2]);
    assert_eq!(page.through, EventId(3));
    assert!(page.exhausted);
}

#[test]
fn events_past_retention_are_left_to_the_store() {
    let recent = RecentFrames::new(100, usize::MAX, Duration::from_secs(60));
    let old = now_ms() - 120_000;
    recent.extend(
        Some(EventId(0)),
        [event(1, "commit", old), event(2, "commit", now_ms())],
    );
    // The old event left the window when the batch came in.
    assert_eq!(recent.len(), 1);
    assert!(recent.page_after(EventId(0), &only("commit"), 10).is_none());
    assert_eq!(
        ids(&recent.page_after(EventId(1), &only("commit"), 10).unwrap()),
        [2]
    );
}

#[test]
fn a_disabled_window_holds_nothing() {
    let recent = RecentFrames::new(0, usize::MAX, DAY);
    recent.extend(Some(EventId(0)), batch(1..=3));
    assert!(recent.is_empty());
    assert!(recent.page_after(EventId(0), &only("commit"), 10).is_none());
}

#[test]
fn only_task_events_keep_their_data_every_event_keeps_its_frame() {
    let recent = RecentFrames::new(100, usize::MAX, DAY);
    let (plain, plain_frame) = event(1, "commit", now_ms());
    let (mut task_event, task_frame) = event(2, "text", now_ms());
    task_event.task_id = Some(crate::domain::TaskRef::parse("t-1").unwrap());
    task_event.data = json!({ "delta": "hello" });
    recent.extend(
        Some(EventId(0)),
        [
            (plain, plain_frame.clone()),
            (task_event, task_frame.clone()),
        ],
    );
    let everything = Subscription {
        event_types: TypeFilter::All,
        ..only("commit")
    };
    let page = recent.page_after(EventId(0), &everything, 10).unwrap();
    assert_eq!(ids(&page), [1, 2]);
    assert_eq!(page.frames[0].frame, plain_frame);
    assert_eq!(page.frames[0].event.data, serde_json::Value::Null);
    assert_eq!(page.frames[1].frame, task_frame);
    assert_eq!(page.frames[1].event.data, json!({ "delta": "hello" }));
}

#[test]
fn frames_are_held_byte_for_byte_across_blocks() {
    let recent = RecentFrames::new(10_000, usize::MAX, DAY);
    // Small frames fill several blocks; one frame is larger than a block.
    let frame_of = |id: i64| {
        let size = if id == 500 {
            FRAME_BLOCK_BYTES + 10
        } else {
            700 + id as usize % 50
        };
        Bytes::from(vec![b'a' + (id % 26) as u8; size])
    };
    let events: Vec<_> = (1..=1_000)
        .map(|id| (event(id, "commit", now_ms()).0, frame_of(id)))
        .collect();
    recent.extend(Some(EventId(0)), events);
    let page = recent
        .page_after(EventId(0), &only("commit"), 2_000)
        .unwrap();
    assert_eq!(ids(&page), (1..=1_000).collect::<Vec<_>>());
    for held in &page.frames {
        assert_eq!(held.frame, frame_of(held.event.id.unwrap().0));
    }
}
