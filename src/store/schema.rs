// The diesel view of migrations/ (kept by hand to match; `diesel print-schema` regenerates it).

diesel::table! {
    nodes (node_id) {
        node_id -> Text,
        peer_id -> Bytea,
        implementation_name -> Text,
        implementation_version -> Text,
        gp_version -> Text,
        node_flags -> Int8,
        note -> Text,
        genesis_hash -> Text,
        jam_params -> Nullable<Jsonb>,
        core_count -> Nullable<Int4>,
        validator_count -> Nullable<Int4>,
        peer_address -> Jsonb,
        remote_address -> Nullable<Text>,
        current_session_id -> Nullable<Int8>,
        is_connected -> Bool,
        first_seen_at -> Timestamptz,
        connected_at -> Nullable<Timestamptz>,
        last_seen_at -> Nullable<Timestamptz>,
        disconnected_at -> Nullable<Timestamptz>,
        event_count -> Int8,
        protocol_version -> Int2,
        params_layout -> Text,
        jam_params_raw -> Nullable<Bytea>,
    }
}

diesel::table! {
    node_sessions (session_id) {
        session_id -> Int8,
        node_id -> Nullable<Text>,
        remote_address -> Nullable<Text>,
        connected_at -> Timestamptz,
        disconnected_at -> Nullable<Timestamptz>,
        disconnect_reason -> Nullable<Text>,
        events_received -> Int8,
        events_stored -> Int8,
        events_rate_limited -> Int8,
        decode_failures -> Int8,
        events_dropped -> Int8,
        protocol_version -> Nullable<Int2>,
        gp_version -> Nullable<Text>,
        params_layout -> Nullable<Text>,
        refusal -> Nullable<Text>,
        claimed_node_id -> Nullable<Text>,
        claimed_implementation -> Nullable<Text>,
        core_count -> Nullable<Int4>,
        dangling_references -> Int8,
    }
}

diesel::table! {
    session_undefined_events (session_id, discriminator) {
        session_id -> Int8,
        discriminator -> Int2,
        node_id -> Text,
        event_count -> Int8,
    }
}

diesel::table! {
    event_rows (id, created_at) {
        id -> Int8,
        created_at -> Timestamptz,
        timestamp -> Timestamptz,
        session_id -> Int8,
        event_id -> Int8,
        node_key -> Int4,
        event_type -> Int2,
        body -> Bytea,
        ref_id -> Nullable<Int8>,
    }
}

diesel::table! {
    node_keys (node_key) {
        node_key -> Int4,
        node_id -> Text,
    }
}

diesel::table! {
    decoded_events (id) {
        id -> Int8,
        node_id -> Text,
        session_id -> Int8,
        event_id -> Int8,
        event_type -> Int2,
        timestamp -> Timestamptz,
        created_at -> Timestamptz,
        data -> Json,
    }
}

diesel::table! {
    decode_failures (id) {
        id -> Int8,
        node_id -> Text,
        session_id -> Int8,
        event_id -> Int8,
        created_at -> Timestamptz,
        error -> Text,
        raw -> Bytea,
    }
}

diesel::table! {
    rate_limit_gaps (session_id, first_event_id) {
        session_id -> Int8,
        first_event_id -> Int8,
        node_id -> Text,
        last_event_id -> Int8,
        first_timestamp -> Timestamptz,
        last_timestamp -> Timestamptz,
        event_count -> Int8,
    }
}

diesel::table! {
    node_status (node_id) {
        node_id -> Text,
        event_row -> Int8,
        timestamp -> Timestamptz,
        data -> Jsonb,
    }
}

diesel::table! {
    blocks (event_row) {
        event_row -> Int8,
        node_id -> Text,
        kind -> Text,
        slot -> Nullable<Int8>,
        header_hash -> Nullable<Text>,
        timestamp -> Timestamptz,
    }
}

diesel::table! {
    type_counts_minute (minute, event_type) {
        minute -> Timestamptz,
        event_count -> Int8,
        event_type -> Int2,
    }
}

diesel::table! {
    node_counts_minute (minute, node_key) {
        minute -> Timestamptz,
        event_count -> Int8,
        node_key -> Int4,
    }
}

diesel::table! {
    type_counts_hourly (hour, event_type) {
        hour -> Timestamptz,
        event_count -> Int8,
        event_type -> Int2,
    }
}

diesel::table! {
    node_counts_hourly (hour, node_key) {
        hour -> Timestamptz,
        event_count -> Int8,
        node_key -> Int4,
    }
}

diesel::table! {
    event_stats_hourly (node_id, event_type, hour) {
        node_id -> Text,
        event_type -> Int2,
        hour -> Timestamptz,
        event_count -> Int8,
    }
}

diesel::joinable!(node_status -> nodes (node_id));

diesel::allow_tables_to_appear_in_same_query!(
    nodes,
    node_sessions,
    event_rows,
    node_status,
    blocks
);
