//! Scraping an exporter as Prometheus would: sequential GETs of /metrics over a kept-alive
//! connection, each timed from request to the last byte of the body.

use std::io::Read;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub struct Scraper {
    agent: ureq::Agent,
    url: String,
}

pub struct Scrape {
    pub took: Duration,
    pub bytes: usize,
    pub body: String,
}

impl Scraper {
    pub fn new(port: u16) -> Scraper {
        Scraper {
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(60))
                .build(),
            url: format!("http://127.0.0.1:{port}/metrics"),
        }
    }

    pub fn scrape(&self) -> Result<Scrape> {
        let started = Instant::now();
        let response = self
            .agent
            .get(&self.url)
            .call()
            .with_context(|| format!("GET {}", self.url))?;
        if response.status() != 200 {
            bail!("GET {}: status {}", self.url, response.status());
        }
        let mut body = String::new();
        response
            .into_reader()
            .read_to_string(&mut body)
            .with_context(|| format!("reading the body of {}", self.url))?;
        Ok(Scrape {
            took: started.elapsed(),
            bytes: body.len(),
            body,
        })
    }
}
