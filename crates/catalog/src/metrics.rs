//! The catalog's own metrics, beside the request metrics every service
//! records: how reservations and releases end.

use crate::stock::Release;

/// Reservations answered, by `outcome`: `reserved` and `rejected` for those
/// this call recorded, `repeat` for an order that had an outcome already
/// (a retry of orders, or a reservation after its release).
pub const RESERVATIONS: &str = "catalog_reservations_total";
/// Releases answered, by `outcome`: `returned` (reserved stock given
/// back), `tombstone` (released before any reservation), `unchanged` (a
/// repeat, or an order that was rejected and held nothing).
pub const RELEASES: &str = "catalog_releases_total";

/// The counters, their handles taken once.
#[derive(Clone)]
pub struct StockMetrics {
    reserved: metrics::Counter,
    rejected: metrics::Counter,
    repeat: metrics::Counter,
    returned: metrics::Counter,
    tombstone: metrics::Counter,
    unchanged: metrics::Counter,
}

impl std::fmt::Debug for StockMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StockMetrics").finish_non_exhaustive()
    }
}

impl StockMetrics {
    /// Registers the counters with the process-wide recorder.
    pub fn new() -> Self {
        // Handles taken before the recorder exists would record nothing.
        shop_common::metrics::handle();
        let reservations =
            |outcome: &'static str| metrics::counter!(RESERVATIONS, "outcome" => outcome);
        let releases = |outcome: &'static str| metrics::counter!(RELEASES, "outcome" => outcome);
        Self {
            reserved: reservations("reserved"),
            rejected: reservations("rejected"),
            repeat: reservations("repeat"),
            returned: releases(Release::Returned.label()),
            tombstone: releases(Release::Tombstone.label()),
            unchanged: releases(Release::Unchanged.label()),
        }
    }

    /// Counts one reservation: a repeat unless `recorded`, else by whether
    /// it was `rejected`.
    pub fn reservation(&self, recorded: bool, rejected: bool) {
        match (recorded, rejected) {
            (false, _) => &self.repeat,
            (true, false) => &self.reserved,
            (true, true) => &self.rejected,
        }
        .increment(1);
    }

    /// Counts one release by what it changed.
    pub fn release(&self, effect: Release) {
        match effect {
            Release::Returned => &self.returned,
            Release::Tombstone => &self.tombstone,
            Release::Unchanged => &self.unchanged,
        }
        .increment(1);
    }
}

impl Default for StockMetrics {
    fn default() -> Self {
        Self::new()
    }
}
