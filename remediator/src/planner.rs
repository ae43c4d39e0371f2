//! One serialized lane per cluster.

use tokio::sync::mpsc;

use crate::journal::StoredEvent;

#[derive(Clone)]
pub struct Handle {
    tx: mpsc::UnboundedSender<Vec<StoredEvent>>,
}

impl Handle {
    pub fn submit(&self, events: Vec<StoredEvent>) {
        let _ = self.tx.send(events);
    }
}
