//! Daily partitions of `event_rows`: created ahead, dropped after the retention period. Rows that
//! arrived for a day without a partition sit in `event_rows_default` and are moved into the day's
//! partition when it is created, so no row is ever rejected or lost.

use chrono::{Days, NaiveDate, Utc};
use diesel::sql_types::Text;
use diesel::QueryableByName;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::{Pool, StoreError};

fn partition_name(day: NaiveDate) -> String {
    format!("event_rows_p{}", day.format("%Y%m%d"))
}

#[derive(QueryableByName)]
struct Partition {
    #[diesel(sql_type = Text)]
    name: String,
}

async fn existing_partitions(conn: &mut AsyncPgConnection) -> Result<Vec<NaiveDate>, StoreError> {
    let rows: Vec<Partition> = diesel::sql_query(
        "SELECT c.relname::text AS name FROM pg_inherits i \
         JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent \
         WHERE p.relname = 'event_rows' AND c.relname LIKE 'event\\_rows\\_p%'",
    )
    .load(conn)
    .await?;
    Ok(rows
        .iter()
        .filter_map(|p| {
            NaiveDate::parse_from_str(p.name.strip_prefix("event_rows_p")?, "%Y%m%d").ok()
        })
        .collect())
}

/// Creates one day's partition, taking over any rows of that day from the default partition.
async fn create_partition(conn: &mut AsyncPgConnection, day: NaiveDate) -> Result<(), StoreError> {
    let name = partition_name(day);
    let from = format!("{day} 00:00:00+00");
    let to = format!("{} 00:00:00+00", day + Days::new(1));
    let range = format!("created_at >= '{from}' AND created_at < '{to}'");
    let statements = [
        format!("CREATE TABLE {name} (LIKE event_rows INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"),
        format!("INSERT INTO {name} SELECT * FROM event_rows_default WHERE {range}"),
        format!("DELETE FROM event_rows_default WHERE {range}"),
        format!(
            "ALTER TABLE event_rows ATTACH PARTITION {name} FOR VALUES FROM ('{from}') TO ('{to}')"
        ),
    ];
    conn.transaction::<_, diesel::result::Error, _>(async |conn| {
        for statement in &statements {
            diesel::sql_query(statement).execute(conn).await?;
        }
        Ok(())
    })
    .await?;
    log::info!("created partition {name}");
    Ok(())
}

/// Makes sure partitions exist from yesterday to `ahead_days` ahead and drops those older than
/// `retention_days`. Runs at start and then every hour.
pub async fn maintain(pool: &Pool, ahead_days: u32, retention_days: u32) -> Result<(), StoreError> {
    let mut conn = pool.get().await?;
    let today = Utc::now().date_naive();
    let existing = existing_partitions(&mut conn).await?;
    let first = today - Days::new(1);
    for offset in 0..=u64::from(ahead_days) + 1 {
        let day = first + Days::new(offset);
        if !existing.contains(&day) {
            create_partition(&mut conn, day).await?;
        }
    }
    let oldest_kept = today - Days::new(u64::from(retention_days));
    for day in existing.into_iter().filter(|d| *d < oldest_kept) {
        let name = partition_name(day);
        diesel::sql_query(format!("DROP TABLE IF EXISTS {name}"))
            .execute(&mut conn)
            .await?;
        log::info!("dropped partition {name} (older than {retention_days} days)");
    }
    Ok(())
}
