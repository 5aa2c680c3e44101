//! MySQL / MariaDB CDC in process: snapshot + binlog of one table as Debezium JSON and as an
//! Arrow batch, the position saved after each printed batch.
//!
//! ```bash
//! ./scripts/services.sh up && source "$(./scripts/services.sh env)"
//! mariadb -h127.0.0.1 -P33306 -uroot -e "CREATE DATABASE IF NOT EXISTS shop; \
//!   CREATE TABLE IF NOT EXISTS shop.orders (id INT PRIMARY KEY, status VARCHAR(20))"
//! cargo run -p strata-examples --example mysql_cdc -- shop.orders
//! ```
//! Stops after 5 s without a change; run it again to continue where it stopped.

use std::time::{Duration, Instant};

use strata_connectors::mysql_cdc::{MysqlCdcConfig, MysqlCdcSource, to_batch};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("STRATA_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:33306".into());
    let table = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "shop.orders".into());
    let config = MysqlCdcConfig::new(url, vec![table], "out/mysql_cdc_example_state.json");
    let mut source = MysqlCdcSource::open(config).await?;
    for w in &source.server_info().warnings {
        eprintln!("warning: {w}");
    }
    let mut last = Instant::now();
    while last.elapsed() < Duration::from_secs(5) {
        let Some(batch) = source.next_batch(Duration::from_millis(500)).await? else {
            break;
        };
        if !batch.events.is_empty() {
            last = Instant::now();
            for e in &batch.events {
                println!("{}", e.to_json());
            }
            println!(
                "{}",
                arrow::util::pretty::pretty_format_batches(&[to_batch(&batch.events)?])?
            );
        }
        if let Some(state) = &batch.state {
            source.commit(state)?;
        }
    }
    Ok(())
}
