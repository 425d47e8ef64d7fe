//! Work-packages, guarantees and cores: the rows the work-package tracker
//! (`analytics::packages`) keeps — one per (package, node) in `work_package_sightings`, a summary
//! per package in `work_packages`, guarantee receipts, the funnel per minute and core, guarantee
//! counts per hour, node and core — and the queries of `/api/work-packages`, `/api/cores` and
//! `/api/guarantees`. No query here reads raw events.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel::sql_types::{
    Array, BigInt, Bool, Bytea, Double, Integer, Nullable, SmallInt, Text, Timestamptz,
};
use diesel::QueryableByName;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;

use super::StoreError;

/// A guarantor's role for one package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// It got the package from a builder (Work-package submission).
    Primary = 1,
    /// Another guarantor shared it (Work-package being shared).
    Secondary = 2,
}

/// The stages a package goes through, as the funnel counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Stage {
    Received = 1,
    Authorized = 2,
    Refined = 3,
    ReportBuilt = 4,
    GuaranteeBuilt = 5,
    Distributed = 6,
    Failed = 7,
}

impl Stage {
    pub const ALL: [Stage; 7] = [
        Stage::Received,
        Stage::Authorized,
        Stage::Refined,
        Stage::ReportBuilt,
        Stage::GuaranteeBuilt,
        Stage::Distributed,
        Stage::Failed,
    ];

    /// As the API names it.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Received => "received",
            Stage::Authorized => "authorized",
            Stage::Refined => "refined",
            Stage::ReportBuilt => "report_built",
            Stage::GuaranteeBuilt => "guarantee_built",
            Stage::Distributed => "distributed",
            Stage::Failed => "failed",
        }
    }

    fn of(number: i16) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| *s as i16 == number)
    }
}

/// (package hash, node) of a sighting.
pub type PackageKey = ([u8; 32], Arc<str>);

/// What one node's events said about one work-package since the last rollup: the earliest time
/// of each stage (its own clock), and counts to add.
#[derive(Debug, Clone)]
pub struct PackageSighting {
    pub first_at: DateTime<Utc>,
    pub role: Role,
    pub core: u16,
    pub duplicate: bool,
    /// Stage times: submitted, then one per [`Stage`] (the failure's last).
    pub submitted_at: Option<DateTime<Utc>>,
    pub stages: [Option<DateTime<Utc>>; 7],
    pub failure_reason: Option<String>,
    pub report_hash: Option<[u8; 32]>,
    pub refine_gas: i64,
    pub refine_ns: i64,
    pub shares_failed: i32,
    pub guarantees_sent: i32,
    pub guarantee_send_failures: i32,
}

impl PackageSighting {
    pub fn new(at: DateTime<Utc>, role: Role, core: u16) -> PackageSighting {
        PackageSighting {
            first_at: at,
            role,
            core,
            duplicate: false,
            submitted_at: None,
            stages: [None; 7],
            failure_reason: None,
            report_hash: None,
            refine_gas: 0,
            refine_ns: 0,
            shares_failed: 0,
            guarantees_sent: 0,
            guarantee_send_failures: 0,
        }
    }

    pub fn stage_mut(&mut self, stage: Stage) -> &mut Option<DateTime<Utc>> {
        &mut self.stages[stage as usize - 1]
    }
}

/// Guarantees counted for one (hour, guarantor node, core).
#[derive(Debug, Default, Clone, Copy)]
pub struct GuaranteeCounts {
    pub built: i32,
    pub sent: i32,
    pub send_failed: i32,
}

/// Guarantees counted for one (hour, receiving node), whatever their core.
#[derive(Debug, Default, Clone, Copy)]
pub struct ReceiverCounts {
    pub received: i32,
    pub receive_failed: i32,
    pub discarded: i32,
}

/// Packages reaching a stage in one (minute, core), and for refines their gas and time.
#[derive(Debug, Default, Clone, Copy)]
pub struct FunnelCell {
    pub packages: i64,
    pub refine_gas: i64,
    pub refine_ns: i64,
}

/// What the work-package tracker hands to the rollup.
#[derive(Debug, Default)]
pub struct PackageChanges {
    pub sightings: HashMap<PackageKey, PackageSighting>,
    /// (work-report hash, receiving node) → the earliest Guarantee received.
    pub receipts: HashMap<([u8; 32], Arc<str>), DateTime<Utc>>,
    /// The packages of those receipts, whose summaries change with them.
    pub received_packages: BTreeSet<[u8; 32]>,
    pub funnel: HashMap<(DateTime<Utc>, u16, Stage), FunnelCell>,
    /// (hour, guarantor node, core) → counts.
    pub guarantees: HashMap<(DateTime<Utc>, Arc<str>, i32), GuaranteeCounts>,
    /// (hour, receiving node) → counts.
    pub receivers: HashMap<(DateTime<Utc>, Arc<str>), ReceiverCounts>,
}

impl PackageChanges {
    pub fn is_empty(&self) -> bool {
        self.sightings.is_empty()
            && self.receipts.is_empty()
            && self.funnel.is_empty()
            && self.guarantees.is_empty()
            && self.receivers.is_empty()
    }

    /// The counts (funnel, guarantees) taken out, to be written with a later rollup.
    pub fn take_counts(&mut self) -> PackageChanges {
        PackageChanges {
            funnel: std::mem::take(&mut self.funnel),
            guarantees: std::mem::take(&mut self.guarantees),
            receivers: std::mem::take(&mut self.receivers),
            ..PackageChanges::default()
        }
    }

    /// Adds the counts of `held` (from [`PackageChanges::take_counts`]) to these.
    pub fn add_counts(&mut self, held: PackageChanges) {
        for (key, cell) in held.funnel {
            let sum = self.funnel.entry(key).or_default();
            sum.packages += cell.packages;
            sum.refine_gas = sum.refine_gas.saturating_add(cell.refine_gas);
            sum.refine_ns = sum.refine_ns.saturating_add(cell.refine_ns);
        }
        for (key, counts) in held.guarantees {
            let sum = self.guarantees.entry(key).or_default();
            sum.built += counts.built;
            sum.sent += counts.sent;
            sum.send_failed += counts.send_failed;
        }
        for (key, counts) in held.receivers {
            let sum = self.receivers.entry(key).or_default();
            sum.received += counts.received;
            sum.receive_failed += counts.receive_failed;
            sum.discarded += counts.discarded;
        }
    }

    /// Entries held, against the tracker's ceiling.
    pub fn len(&self) -> usize {
        self.sightings.len()
            + self.receipts.len()
            + self.funnel.len()
            + self.guarantees.len()
            + self.receivers.len()
    }
}

const UPSERT_SIGHTINGS: &str = "\
INSERT INTO work_package_sightings (hash, node_key, role, core, duplicate, first_at, submitted_at,
    received_at, authorized_at, refined_at, report_built_at, guarantee_built_at, distributed_at,
    failed_at, failure_reason, report_hash, refine_gas, refine_ns, shares_failed, guarantees_sent,
    guarantee_send_failures)
SELECT v.hash, k.node_key, v.role, v.core, v.duplicate, v.first_at, v.submitted_at, v.received_at,
    v.authorized_at, v.refined_at, v.report_built_at, v.guarantee_built_at, v.distributed_at,
    v.failed_at, v.failure_reason, v.report_hash, v.refine_gas, v.refine_ns, v.shares_failed,
    v.guarantees_sent, v.guarantee_send_failures
FROM unnest($1::bytea[], $2::text[], $3::int2[], $4::int4[], $5::bool[], $6::timestamptz[],
    $7::timestamptz[], $8::timestamptz[], $9::timestamptz[], $10::timestamptz[], $11::timestamptz[],
    $12::timestamptz[], $13::timestamptz[], $14::timestamptz[], $15::text[], $16::bytea[],
    $17::int8[], $18::int8[], $19::int4[], $20::int4[], $21::int4[])
    AS v(hash, node_id, role, core, duplicate, first_at, submitted_at, received_at, authorized_at,
         refined_at, report_built_at, guarantee_built_at, distributed_at, failed_at,
         failure_reason, report_hash, refine_gas, refine_ns, shares_failed, guarantees_sent,
         guarantee_send_failures)
JOIN node_keys k ON k.node_id = v.node_id
ON CONFLICT (hash, node_key) DO UPDATE SET
    duplicate = work_package_sightings.duplicate OR EXCLUDED.duplicate,
    first_at = LEAST(work_package_sightings.first_at, EXCLUDED.first_at),
    submitted_at = LEAST(work_package_sightings.submitted_at, EXCLUDED.submitted_at),
    received_at = LEAST(work_package_sightings.received_at, EXCLUDED.received_at),
    authorized_at = LEAST(work_package_sightings.authorized_at, EXCLUDED.authorized_at),
    refined_at = LEAST(work_package_sightings.refined_at, EXCLUDED.refined_at),
    report_built_at = LEAST(work_package_sightings.report_built_at, EXCLUDED.report_built_at),
    guarantee_built_at = LEAST(work_package_sightings.guarantee_built_at,
                               EXCLUDED.guarantee_built_at),
    distributed_at = LEAST(work_package_sightings.distributed_at, EXCLUDED.distributed_at),
    failed_at = LEAST(work_package_sightings.failed_at, EXCLUDED.failed_at),
    failure_reason = COALESCE(work_package_sightings.failure_reason, EXCLUDED.failure_reason),
    report_hash = COALESCE(work_package_sightings.report_hash, EXCLUDED.report_hash),
    refine_gas = work_package_sightings.refine_gas + EXCLUDED.refine_gas,
    refine_ns = work_package_sightings.refine_ns + EXCLUDED.refine_ns,
    shares_failed = work_package_sightings.shares_failed + EXCLUDED.shares_failed,
    guarantees_sent = work_package_sightings.guarantees_sent + EXCLUDED.guarantees_sent,
    guarantee_send_failures = work_package_sightings.guarantee_send_failures
        + EXCLUDED.guarantee_send_failures";

const UPSERT_RECEIPTS: &str = "\
INSERT INTO guarantee_receipts (report_hash, node_key, received_at)
SELECT v.report_hash, k.node_key, v.at
FROM unnest($1::bytea[], $2::text[], $3::timestamptz[]) AS v(report_hash, node_id, at)
JOIN node_keys k ON k.node_id = v.node_id
ON CONFLICT (report_hash, node_key)
DO UPDATE SET received_at = LEAST(guarantee_receipts.received_at, EXCLUDED.received_at)";

/// Sums up the packages named in $1 from all their sightings and receipts, whoever wrote them.
const SUMMARISE_PACKAGES: &str = "\
WITH packages AS (
    SELECT s.hash, min(s.core) AS core, min(s.first_at) AS first_at,
        min(s.received_at) AS received_at, min(s.authorized_at) AS authorized_at,
        min(s.refined_at) AS refined_at, min(s.report_built_at) AS report_built_at,
        min(s.guarantee_built_at) AS guarantee_built_at, min(s.distributed_at) AS distributed_at,
        min(s.failed_at) AS failed_at, sum(s.refine_gas)::int8 AS refine_gas,
        sum(s.refine_ns)::int8 AS refine_ns, count(*)::int4 AS nodes,
        (count(*) FILTER (WHERE s.duplicate))::int4 AS duplicates,
        count(s.guarantee_built_at)::int4 AS guarantees_built,
        sum(s.guarantees_sent)::int4 AS guarantees_sent,
        sum(s.guarantee_send_failures)::int4 AS guarantee_send_failures,
        min(s.failure_reason) AS failure_reason,
        (array_agg(s.report_hash) FILTER (WHERE s.report_hash IS NOT NULL))[1] AS report_hash
    FROM work_package_sightings s WHERE s.hash = ANY($1::bytea[]) GROUP BY s.hash)
INSERT INTO work_packages (hash, core, first_at, received_at, authorized_at, refined_at,
    report_built_at, guarantee_built_at, distributed_at, failed_at, refine_gas, refine_ns, nodes,
    duplicates, guarantees_built, guarantees_sent, guarantee_send_failures, failure_reason,
    report_hash, receivers, last_receipt_at)
SELECT p.*, COALESCE(r.receivers, 0), r.last_receipt_at
FROM packages p LEFT JOIN LATERAL (
    SELECT count(*)::int4 AS receivers, max(g.received_at) AS last_receipt_at
    FROM guarantee_receipts g WHERE g.report_hash = p.report_hash) r ON true
ORDER BY p.hash
ON CONFLICT (hash) DO UPDATE SET core = EXCLUDED.core, first_at = EXCLUDED.first_at,
    received_at = EXCLUDED.received_at, authorized_at = EXCLUDED.authorized_at,
    refined_at = EXCLUDED.refined_at, report_built_at = EXCLUDED.report_built_at,
    guarantee_built_at = EXCLUDED.guarantee_built_at, distributed_at = EXCLUDED.distributed_at,
    failed_at = EXCLUDED.failed_at, refine_gas = EXCLUDED.refine_gas,
    refine_ns = EXCLUDED.refine_ns, nodes = EXCLUDED.nodes, duplicates = EXCLUDED.duplicates,
    guarantees_built = EXCLUDED.guarantees_built, guarantees_sent = EXCLUDED.guarantees_sent,
    guarantee_send_failures = EXCLUDED.guarantee_send_failures,
    failure_reason = EXCLUDED.failure_reason, report_hash = EXCLUDED.report_hash,
    receivers = EXCLUDED.receivers, last_receipt_at = EXCLUDED.last_receipt_at";

const UPSERT_FUNNEL: &str = "\
INSERT INTO work_package_funnel_minute (minute, core, stage, packages, refine_gas, refine_ns)
SELECT * FROM unnest($1::timestamptz[], $2::int4[], $3::int2[], $4::int8[], $5::int8[], $6::int8[])
ON CONFLICT (minute, core, stage) DO UPDATE SET
    packages = work_package_funnel_minute.packages + EXCLUDED.packages,
    refine_gas = work_package_funnel_minute.refine_gas + EXCLUDED.refine_gas,
    refine_ns = work_package_funnel_minute.refine_ns + EXCLUDED.refine_ns";

const UPSERT_GUARANTEES: &str = "\
INSERT INTO guarantee_counts_hourly (hour, node_key, core, built, sent, send_failed)
SELECT v.hour, k.node_key, v.core, v.built, v.sent, v.send_failed
FROM unnest($1::timestamptz[], $2::text[], $3::int4[], $4::int4[], $5::int4[], $6::int4[])
    AS v(hour, node_id, core, built, sent, send_failed)
JOIN node_keys k ON k.node_id = v.node_id
ON CONFLICT (hour, node_key, core) DO UPDATE SET
    built = guarantee_counts_hourly.built + EXCLUDED.built,
    sent = guarantee_counts_hourly.sent + EXCLUDED.sent,
    send_failed = guarantee_counts_hourly.send_failed + EXCLUDED.send_failed";

const UPSERT_RECEIVERS: &str = "\
INSERT INTO guarantee_receiver_counts_hourly (hour, node_key, received, receive_failed, discarded)
SELECT v.hour, k.node_key, v.received, v.receive_failed, v.discarded
FROM unnest($1::timestamptz[], $2::text[], $3::int4[], $4::int4[], $5::int4[])
    AS v(hour, node_id, received, receive_failed, discarded)
JOIN node_keys k ON k.node_id = v.node_id
ON CONFLICT (hour, node_key) DO UPDATE SET
    received = guarantee_receiver_counts_hourly.received + EXCLUDED.received,
    receive_failed = guarantee_receiver_counts_hourly.receive_failed + EXCLUDED.receive_failed,
    discarded = guarantee_receiver_counts_hourly.discarded + EXCLUDED.discarded";

/// Writes the changes (rows in key order, so concurrent writers never deadlock), then sums up
/// each package they touched. Inside the rollup's transaction.
pub async fn write(
    conn: &mut AsyncPgConnection,
    changes: &PackageChanges,
) -> Result<(), diesel::result::Error> {
    let mut touched: BTreeSet<[u8; 32]> = changes.received_packages.clone();
    if !changes.sightings.is_empty() {
        let rows: BTreeMap<_, _> = changes.sightings.iter().collect();
        touched.extend(rows.keys().map(|k| k.0));
        let time = |f: &dyn Fn(&PackageSighting) -> Option<DateTime<Utc>>| -> Vec<_> {
            rows.values().map(|s| f(s)).collect::<Vec<_>>()
        };
        let stage = |stage: Stage| time(&|s: &PackageSighting| s.stages[stage as usize - 1]);
        let int = |f: fn(&PackageSighting) -> i32| rows.values().map(|s| f(s)).collect::<Vec<_>>();
        let long = |f: fn(&PackageSighting) -> i64| rows.values().map(|s| f(s)).collect::<Vec<_>>();
        diesel::sql_query(UPSERT_SIGHTINGS)
            .bind::<Array<Bytea>, _>(rows.keys().map(|k| k.0.to_vec()).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(rows.keys().map(|k| &*k.1).collect::<Vec<_>>())
            .bind::<Array<SmallInt>, _>(rows.values().map(|s| s.role as i16).collect::<Vec<_>>())
            .bind::<Array<Integer>, _>(int(|s| i32::from(s.core)))
            .bind::<Array<Bool>, _>(rows.values().map(|s| s.duplicate).collect::<Vec<_>>())
            .bind::<Array<Timestamptz>, _>(rows.values().map(|s| s.first_at).collect::<Vec<_>>())
            .bind::<Array<Nullable<Timestamptz>>, _>(time(&|s| s.submitted_at))
            .bind::<Array<Nullable<Timestamptz>>, _>(stage(Stage::Received))
            .bind::<Array<Nullable<Timestamptz>>, _>(stage(Stage::Authorized))
            .bind::<Array<Nullable<Timestamptz>>, _>(stage(Stage::Refined))
            .bind::<Array<Nullable<Timestamptz>>, _>(stage(Stage::ReportBuilt))
            .bind::<Array<Nullable<Timestamptz>>, _>(stage(Stage::GuaranteeBuilt))
            .bind::<Array<Nullable<Timestamptz>>, _>(stage(Stage::Distributed))
            .bind::<Array<Nullable<Timestamptz>>, _>(stage(Stage::Failed))
            .bind::<Array<Nullable<Text>>, _>(
                rows.values()
                    .map(|s| s.failure_reason.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind::<Array<Nullable<Bytea>>, _>(
                rows.values()
                    .map(|s| s.report_hash.map(|h| h.to_vec()))
                    .collect::<Vec<_>>(),
            )
            .bind::<Array<BigInt>, _>(long(|s| s.refine_gas))
            .bind::<Array<BigInt>, _>(long(|s| s.refine_ns))
            .bind::<Array<Integer>, _>(int(|s| s.shares_failed))
            .bind::<Array<Integer>, _>(int(|s| s.guarantees_sent))
            .bind::<Array<Integer>, _>(int(|s| s.guarantee_send_failures))
            .execute(conn)
            .await?;
    }
    if !changes.receipts.is_empty() {
        let rows: BTreeMap<_, _> = changes.receipts.iter().collect();
        diesel::sql_query(UPSERT_RECEIPTS)
            .bind::<Array<Bytea>, _>(rows.keys().map(|k| k.0.to_vec()).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(rows.keys().map(|k| &*k.1).collect::<Vec<_>>())
            .bind::<Array<Timestamptz>, _>(rows.values().map(|t| **t).collect::<Vec<_>>())
            .execute(conn)
            .await?;
    }
    if !touched.is_empty() {
        diesel::sql_query(SUMMARISE_PACKAGES)
            .bind::<Array<Bytea>, _>(touched.iter().map(|h| h.to_vec()).collect::<Vec<_>>())
            .execute(conn)
            .await?;
    }
    if !changes.funnel.is_empty() {
        let rows: BTreeMap<_, _> = changes.funnel.iter().collect();
        diesel::sql_query(UPSERT_FUNNEL)
            .bind::<Array<Timestamptz>, _>(rows.keys().map(|k| k.0).collect::<Vec<_>>())
            .bind::<Array<Integer>, _>(rows.keys().map(|k| i32::from(k.1)).collect::<Vec<_>>())
            .bind::<Array<SmallInt>, _>(rows.keys().map(|k| k.2 as i16).collect::<Vec<_>>())
            .bind::<Array<BigInt>, _>(rows.values().map(|c| c.packages).collect::<Vec<_>>())
            .bind::<Array<BigInt>, _>(rows.values().map(|c| c.refine_gas).collect::<Vec<_>>())
            .bind::<Array<BigInt>, _>(rows.values().map(|c| c.refine_ns).collect::<Vec<_>>())
            .execute(conn)
            .await?;
    }
    if !changes.guarantees.is_empty() {
        let rows: BTreeMap<_, _> = changes.guarantees.iter().collect();
        let count =
            |f: fn(&GuaranteeCounts) -> i32| rows.values().map(|c| f(c)).collect::<Vec<_>>();
        diesel::sql_query(UPSERT_GUARANTEES)
            .bind::<Array<Timestamptz>, _>(rows.keys().map(|k| k.0).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(rows.keys().map(|k| &*k.1).collect::<Vec<_>>())
            .bind::<Array<Integer>, _>(rows.keys().map(|k| k.2).collect::<Vec<_>>())
            .bind::<Array<Integer>, _>(count(|c| c.built))
            .bind::<Array<Integer>, _>(count(|c| c.sent))
            .bind::<Array<Integer>, _>(count(|c| c.send_failed))
            .execute(conn)
            .await?;
    }
    if !changes.receivers.is_empty() {
        let rows: BTreeMap<_, _> = changes.receivers.iter().collect();
        let count = |f: fn(&ReceiverCounts) -> i32| rows.values().map(|c| f(c)).collect::<Vec<_>>();
        diesel::sql_query(UPSERT_RECEIVERS)
            .bind::<Array<Timestamptz>, _>(rows.keys().map(|k| k.0).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(rows.keys().map(|k| &*k.1).collect::<Vec<_>>())
            .bind::<Array<Integer>, _>(count(|c| c.received))
            .bind::<Array<Integer>, _>(count(|c| c.receive_failed))
            .bind::<Array<Integer>, _>(count(|c| c.discarded))
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Deletes the per-node rows, the funnel and the cores' Status counts older than `minute_days`,
/// the summaries and guarantee counts older than `hour_days`; returns how many rows went.
pub async fn prune(
    conn: &mut AsyncPgConnection,
    minute_days: u32,
    hour_days: u32,
) -> Result<usize, StoreError> {
    super::delete_older_than(
        conn,
        &[
            ("work_package_sightings", "first_at", minute_days),
            ("guarantee_receipts", "received_at", minute_days),
            ("work_package_funnel_minute", "minute", minute_days),
            ("core_status_minute", "minute", minute_days),
            ("work_packages", "first_at", hour_days),
            ("guarantee_counts_hourly", "hour", hour_days),
            ("guarantee_receiver_counts_hourly", "hour", hour_days),
        ],
    )
    .await
}

/// A work-package, summed up over the nodes that reported it.
#[derive(Debug, Clone, Serialize, QueryableByName)]
pub struct PackageSummary {
    #[diesel(sql_type = Text)]
    pub hash: String,
    #[diesel(sql_type = Integer)]
    pub core: i32,
    #[serde(with = "crate::time::rfc3339")]
    #[diesel(sql_type = Timestamptz)]
    pub first_seen_at: DateTime<Utc>,
    /// Milliseconds from the first sighting to each stage's first time on any node.
    #[serde(flatten)]
    #[diesel(embed)]
    pub stages: StageTimes,
    /// From the guarantee built to the last validator that reported receiving it.
    #[diesel(sql_type = Nullable<Double>)]
    pub guarantee_reach_ms: Option<f64>,
    #[diesel(sql_type = Nullable<Text>)]
    pub failure_reason: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub work_report_hash: Option<String>,
    /// Guarantor nodes that reported it.
    #[diesel(sql_type = Integer)]
    pub nodes: i32,
    #[diesel(sql_type = Integer)]
    pub duplicates: i32,
    #[diesel(sql_type = Integer)]
    pub guarantees_built: i32,
    #[diesel(sql_type = Integer)]
    pub guarantees_sent: i32,
    #[diesel(sql_type = Integer)]
    pub guarantee_send_failures: i32,
    /// Nodes that reported receiving its guarantee.
    #[diesel(sql_type = Integer)]
    pub guarantee_receivers: i32,
    #[diesel(sql_type = BigInt)]
    pub refine_gas: i64,
    #[diesel(sql_type = BigInt)]
    pub refine_ns: i64,
}

/// When a package reached each stage, in ms from its first sighting; a package's summary and a
/// guarantor's journey both have them, as columns `<stage>_at`.
#[derive(Debug, Clone, Serialize, QueryableByName)]
pub struct StageTimes {
    #[diesel(sql_type = Nullable<Double>)]
    pub received_ms: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub authorized_ms: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub refined_ms: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub report_built_ms: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub guarantee_built_ms: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub distributed_ms: Option<f64>,
    #[diesel(sql_type = Nullable<Double>)]
    pub failed_ms: Option<f64>,
}

impl StageTimes {
    const STAGES: [&'static str; 7] = [
        "received",
        "authorized",
        "refined",
        "report_built",
        "guarantee_built",
        "distributed",
        "failed",
    ];

    /// The select list of the stages of `table`'s `<stage>_at` columns since `first_at`.
    fn columns(table: &str) -> String {
        Self::STAGES
            .map(|s| ms_since(&format!("{table}.{s}_at"), "p.first_at", &format!("{s}_ms")))
            .join(", ")
    }
}

fn ms_since(column: &str, from: &str, name: &str) -> String {
    format!("(extract(epoch FROM {column} - {from}) * 1000)::float8 AS {name}")
}

fn summary_columns() -> String {
    let stages = StageTimes::columns("p");
    format!(
        "'0x' || encode(p.hash, 'hex') AS hash, p.core, p.first_at AS first_seen_at, {stages}, \
         {}, p.failure_reason, '0x' || encode(p.report_hash, 'hex') AS work_report_hash, \
         p.nodes, p.duplicates, p.guarantees_built, p.guarantees_sent, \
         p.guarantee_send_failures, p.receivers AS guarantee_receivers, p.refine_gas, p.refine_ns",
        ms_since(
            "p.last_receipt_at",
            "p.guarantee_built_at",
            "guarantee_reach_ms"
        )
    )
}

/// Which packages a list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// A guarantee was built.
    Guaranteed,
    /// A guarantor said Work-package failed, and none built a guarantee.
    Failed,
    /// Neither (yet): where it is is its furthest stage.
    Pending,
}

impl Status {
    fn condition(self) -> &'static str {
        match self {
            Status::Guaranteed => "p.guarantee_built_at IS NOT NULL",
            Status::Failed => "p.failed_at IS NOT NULL AND p.guarantee_built_at IS NULL",
            Status::Pending => "p.failed_at IS NULL AND p.guarantee_built_at IS NULL",
        }
    }
}

/// Packages first seen in `[from, to)`, newest first, at most `limit`.
pub async fn list(
    conn: &mut AsyncPgConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    core: Option<i32>,
    status: Option<Status>,
    limit: i64,
) -> Result<Vec<PackageSummary>, StoreError> {
    let mut conditions = vec!["p.first_at >= $1", "p.first_at < $2"];
    if core.is_some() {
        conditions.push("p.core = $4");
    }
    if let Some(status) = status {
        conditions.push(status.condition());
    }
    let sql = format!(
        "SELECT {} FROM work_packages p WHERE {} ORDER BY p.first_at DESC LIMIT $3",
        summary_columns(),
        conditions.join(" AND ")
    );
    let query = diesel::sql_query(sql)
        .into_boxed()
        .bind::<Timestamptz, _>(from)
        .bind::<Timestamptz, _>(to)
        .bind::<BigInt, _>(limit);
    Ok(match core {
        Some(core) => query.bind::<Integer, _>(core).load(conn).await?,
        None => query.load(conn).await?,
    })
}

/// One package's summary.
pub async fn summary(
    conn: &mut AsyncPgConnection,
    hash: &[u8],
) -> Result<Option<PackageSummary>, StoreError> {
    let mut rows: Vec<PackageSummary> = diesel::sql_query(format!(
        "SELECT {} FROM work_packages p WHERE p.hash = $1",
        summary_columns()
    ))
    .bind::<Bytea, _>(hash)
    .load(conn)
    .await?;
    Ok(rows.pop())
}

/// One guarantor node's journey with a package, times in ms from the package's first sighting.
#[derive(Debug, Clone, Serialize, QueryableByName)]
pub struct Journey {
    #[diesel(sql_type = Text)]
    pub node_id: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub implementation: Option<String>,
    /// `primary` or `secondary` guarantor.
    #[diesel(sql_type = Text)]
    pub role: String,
    #[diesel(sql_type = Bool)]
    pub duplicate: bool,
    #[diesel(sql_type = Nullable<Double>)]
    pub submitted_ms: Option<f64>,
    #[serde(flatten)]
    #[diesel(embed)]
    pub stages: StageTimes,
    #[diesel(sql_type = Nullable<Text>)]
    pub failure_reason: Option<String>,
    #[diesel(sql_type = Integer)]
    pub shares_failed: i32,
    #[diesel(sql_type = Integer)]
    pub guarantees_sent: i32,
    #[diesel(sql_type = Integer)]
    pub guarantee_send_failures: i32,
    #[diesel(sql_type = BigInt)]
    pub refine_gas: i64,
    #[diesel(sql_type = BigInt)]
    pub refine_ns: i64,
}

/// Every guarantor's journey with the package `hash`, earliest first.
pub async fn journeys(
    conn: &mut AsyncPgConnection,
    hash: &[u8],
) -> Result<Vec<Journey>, StoreError> {
    let stages = format!(
        "{}, {}",
        ms_since("s.submitted_at", "p.first_at", "submitted_ms"),
        StageTimes::columns("s")
    );
    Ok(diesel::sql_query(format!(
        "SELECT k.node_id, n.implementation_name AS implementation, \
             CASE s.role WHEN 1 THEN 'primary' ELSE 'secondary' END AS role, s.duplicate, \
             {stages}, s.failure_reason, s.shares_failed, s.guarantees_sent, \
             s.guarantee_send_failures, s.refine_gas, s.refine_ns \
         FROM work_package_sightings s JOIN work_packages p ON p.hash = s.hash \
         JOIN node_keys k ON k.node_key = s.node_key LEFT JOIN nodes n ON n.node_id = k.node_id \
         WHERE s.hash = $1 ORDER BY s.first_at, k.node_id"
    ))
    .bind::<Bytea, _>(hash)
    .load(conn)
    .await?)
}

/// A node that reported receiving a package's guarantee, ms after the guarantee was built.
#[derive(Debug, Clone, Serialize, QueryableByName)]
pub struct Receipt {
    #[diesel(sql_type = Text)]
    pub node_id: String,
    #[diesel(sql_type = Nullable<Double>)]
    pub after_ms: Option<f64>,
}

pub async fn receipts(
    conn: &mut AsyncPgConnection,
    hash: &[u8],
) -> Result<Vec<Receipt>, StoreError> {
    Ok(diesel::sql_query(format!(
        "SELECT k.node_id, {} FROM work_packages p \
         JOIN guarantee_receipts g ON g.report_hash = p.report_hash \
         JOIN node_keys k ON k.node_key = g.node_key WHERE p.hash = $1 ORDER BY g.received_at",
        ms_since("g.received_at", "p.guarantee_built_at", "after_ms")
    ))
    .bind::<Bytea, _>(hash)
    .load(conn)
    .await?)
}

/// One funnel cell as read: packages of `core` that reached `stage` in the minute.
#[derive(Debug, QueryableByName)]
pub struct FunnelRow {
    #[diesel(sql_type = Timestamptz)]
    pub minute: DateTime<Utc>,
    #[diesel(sql_type = Integer)]
    pub core: i32,
    #[diesel(sql_type = SmallInt)]
    stage: i16,
    #[diesel(sql_type = BigInt)]
    pub packages: i64,
    #[diesel(sql_type = BigInt)]
    pub refine_gas: i64,
    #[diesel(sql_type = BigInt)]
    pub refine_ns: i64,
}

impl FunnelRow {
    pub fn stage(&self) -> Option<Stage> {
        Stage::of(self.stage)
    }
}

/// The funnel's minutes in `[from, to)`, of one core or all.
pub async fn funnel(
    conn: &mut AsyncPgConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    core: Option<i32>,
) -> Result<Vec<FunnelRow>, StoreError> {
    let sql = "SELECT minute, core, stage, packages, refine_gas, refine_ns \
               FROM work_package_funnel_minute WHERE minute >= $1 AND minute < $2";
    let query = diesel::sql_query(match core {
        Some(_) => format!("{sql} AND core = $3"),
        None => sql.to_owned(),
    })
    .into_boxed()
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to);
    Ok(match core {
        Some(core) => query.bind::<Integer, _>(core).load(conn).await?,
        None => query.load(conn).await?,
    })
}

/// Guarantees of one guarantor node and core in a range.
#[derive(Debug, Clone, Serialize, QueryableByName)]
pub struct GuarantorCounts {
    #[diesel(sql_type = Text)]
    pub node_id: String,
    #[diesel(sql_type = Integer)]
    pub core: i32,
    #[diesel(sql_type = BigInt)]
    pub built: i64,
    #[diesel(sql_type = BigInt)]
    pub sent: i64,
    #[diesel(sql_type = BigInt)]
    pub send_failed: i64,
}

/// The guarantor counts in the hours `[from, to)`, per node and core, most built first, at most
/// `limit`; of one node only, when given. Summed by PostgreSQL over `int4` columns (a bigint's
/// `sum` would be a slow numeric).
pub async fn guarantors(
    conn: &mut AsyncPgConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    node: Option<&str>,
    limit: i64,
) -> Result<Vec<GuarantorCounts>, StoreError> {
    let sql = "SELECT k.node_id, g.core, sum(g.built) AS built, sum(g.sent) AS sent, \
                   sum(g.send_failed) AS send_failed \
               FROM guarantee_counts_hourly g JOIN node_keys k ON k.node_key = g.node_key \
               WHERE g.hour >= $1 AND g.hour < $2";
    let query =
        diesel::sql_query(format!(
        "{sql} {} GROUP BY k.node_id, g.core ORDER BY built DESC, k.node_id, g.core LIMIT {limit}",
        if node.is_some() { "AND k.node_id = $3" } else { "" }
    ))
        .into_boxed()
        .bind::<Timestamptz, _>(from)
        .bind::<Timestamptz, _>(to);
    Ok(match node {
        Some(node) => query.bind::<Text, _>(node).load(conn).await?,
        None => query.load(conn).await?,
    })
}

/// The guarantor nodes of one core in a range: how many, and the most building ones first.
#[derive(Debug, Clone, QueryableByName)]
pub struct CoreGuarantors {
    #[diesel(sql_type = Integer)]
    pub core: i32,
    #[diesel(sql_type = BigInt)]
    pub guarantors: i64,
    #[diesel(sql_type = Array<Text>)]
    pub top: Vec<String>,
}

/// Each core's guarantor nodes (those that built its guarantees) in the hours `[from, to)`: their
/// number and the `top` that built most.
pub async fn core_guarantors(
    conn: &mut AsyncPgConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    top: u32,
) -> Result<Vec<CoreGuarantors>, StoreError> {
    Ok(diesel::sql_query(format!(
        "SELECT g.core, count(*) AS guarantors, \
             (array_agg(k.node_id ORDER BY g.built DESC, k.node_id))[1:{top}] AS top \
         FROM (SELECT core, node_key, sum(built) AS built FROM guarantee_counts_hourly \
               WHERE hour >= $1 AND hour < $2 AND built > 0 GROUP BY core, node_key) g \
         JOIN node_keys k ON k.node_key = g.node_key GROUP BY g.core"
    ))
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .load(conn)
    .await?)
}

/// Guarantees one node received, failed to receive or discarded in a range, any core.
#[derive(Debug, Clone, Serialize, QueryableByName)]
pub struct ReceiverTotals {
    #[diesel(sql_type = Text)]
    pub node_id: String,
    #[diesel(sql_type = BigInt)]
    pub received: i64,
    #[diesel(sql_type = BigInt)]
    pub receive_failed: i64,
    #[diesel(sql_type = BigInt)]
    pub discarded: i64,
}

/// The receiving side's counts in the hours `[from, to)`, per node, most received first.
pub async fn receivers(
    conn: &mut AsyncPgConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<ReceiverTotals>, StoreError> {
    Ok(diesel::sql_query(
        "SELECT k.node_id, sum(r.received) AS received, sum(r.receive_failed) AS receive_failed, \
             sum(r.discarded) AS discarded \
         FROM guarantee_receiver_counts_hourly r JOIN node_keys k ON k.node_key = r.node_key \
         WHERE r.hour >= $1 AND r.hour < $2 GROUP BY k.node_id ORDER BY received DESC, k.node_id",
    )
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .load(conn)
    .await?)
}

/// What the Status reports of one minute said of one core.
#[derive(Debug, Clone, QueryableByName)]
pub struct CoreStatusRow {
    #[diesel(sql_type = Timestamptz)]
    pub minute: DateTime<Utc>,
    #[diesel(sql_type = Integer)]
    pub core: i32,
    /// Status reports sampled, and the guarantees they counted for the core.
    #[diesel(sql_type = BigInt)]
    pub samples: i64,
    #[diesel(sql_type = BigInt)]
    pub guarantees: i64,
}

/// The cores' Status counts of the minutes `[from, to)`, of one core when given.
pub async fn core_status(
    conn: &mut AsyncPgConnection,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    core: Option<i32>,
) -> Result<Vec<CoreStatusRow>, StoreError> {
    Ok(diesel::sql_query(
        "SELECT minute, core, samples, guarantees FROM core_status_minute \
         WHERE minute >= $1 AND minute < $2 AND ($3::int4 IS NULL OR core = $3)",
    )
    .bind::<Timestamptz, _>(from)
    .bind::<Timestamptz, _>(to)
    .bind::<Nullable<Integer>, _>(core)
    .load(conn)
    .await?)
}
