// @generated automatically by Diesel CLI.

diesel::table! {
    broker_state (key) {
        key -> Text,
        value -> BigInt,
    }
}

diesel::table! {
    events (id) {
        id -> BigInt,
        event_type -> Text,
        data -> Text,
        project_id -> Nullable<Text>,
        user_id -> Nullable<Text>,
        task_id -> Nullable<Text>,
        idempotency_key -> Nullable<Text>,
        trace_context -> Nullable<Text>,
        created_at_ms -> BigInt,
        seq -> Nullable<BigInt>,
    }
}

diesel::table! {
    task_events (task_id, id) {
        task_id -> Text,
        id -> BigInt,
    }
}

diesel::table! {
    tasks (task_id) {
        task_id -> Text,
        status -> Text,
        progress -> Double,
        stage -> Nullable<Text>,
        message -> Nullable<Text>,
        result -> Nullable<Text>,
        error -> Nullable<Text>,
        project_id -> Nullable<Text>,
        created_at_ms -> BigInt,
        updated_at_ms -> BigInt,
        task_type -> Nullable<Text>,
        first_token_at_ms -> Nullable<BigInt>,
        last_token_at_ms -> Nullable<BigInt>,
        chat_id -> Nullable<Text>,
        last_seq -> Nullable<BigInt>,
        message_id -> Nullable<Text>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(broker_state, events, task_events, tasks,);
