//! Prints one line per round: endpoint states, the acting coordinator and which sources
//! failed (`cargo run -p greenplum-catalog --example watch -- ROUNDS`, libpq environment).

use std::time::Duration;

use greenplum_catalog::{ClusterReader, ReaderConfig, Source};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rounds: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10);
    let mut reader = ClusterReader::new(ReaderConfig::from_libpq_env()?);
    for _ in 0..rounds {
        let s = reader.snapshot().await;
        let endpoints: Vec<String> = s
            .endpoints
            .iter()
            .map(|e| format!("{}={}", e.endpoint, e.state.as_str()))
            .collect();
        let failed: Vec<&str> = Source::ALL
            .iter()
            .filter(|source| match source {
                Source::Endpoints => false,
                Source::Segments => s.segments.is_err(),
                Source::Replication => s.replication.is_err(),
                Source::Standby => s.standby.is_err(),
                Source::History => s.history.is_err(),
                Source::Recovery => s.recovery.is_err(),
            })
            .map(|source| source.as_str())
            .collect();
        println!(
            "{} acting={:?} state={} failed={:?}",
            endpoints.join(" "),
            s.acting_coordinator,
            s.cluster_state().as_str(),
            failed
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Ok(())
}
