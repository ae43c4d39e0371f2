//! Prints one snapshot of a cluster as JSON, reading the libpq environment
//! (`PGHOST=cdw,scdw PGPORT=5432 PGUSER=gpadmin cargo run -p greenplum-catalog --example snapshot`).

use greenplum_catalog::{ClusterReader, ReaderConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = ReaderConfig::from_libpq_env()?;
    let mut reader = ClusterReader::new(config);
    let snapshot = reader.snapshot().await;
    let health = snapshot.health();
    println!("{}", serde_json::to_string_pretty(&snapshot)?);
    println!("{}", serde_json::to_string_pretty(&health)?);
    if std::env::args().any(|a| a == "--fts-probe") {
        println!(
            "fts probe requested: {:?}",
            reader.request_fts_probe().await
        );
    }
    Ok(())
}
