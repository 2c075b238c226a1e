//! Transforms: nodes of the pipeline graph that take events from sources or other transforms
//! and hand them on, changed (enrichment) or fewer (filter). A stateless transform runs in the
//! thread of each source that feeds it, with no queue in between; a stateful one runs in a
//! thread of its own behind a bounded queue (`topology`).
//!
//! `action` is not a node: it is the prefix → action table the packet decoders consult.

pub mod action;
pub mod filter;
pub mod geoip;
pub mod guard;
pub mod rdns;
pub mod trace;

use crate::metrics::ComponentCounters;
use anyhow::Result;
use event::{Enrichment, Event, FlowKey};
use std::sync::Arc;

crate::registry!(
    /// `[transforms.NAME]`: one line per transform type.
    TransformConfig: TransformType {
        "filter" => Filter(filter::FilterConfig),
        "geoip" => Geoip(geoip::GeoipConfig),
        "guard" => Guard(guard::GuardConfig),
        "rdns" => Rdns(rdns::RdnsConfig),
        "trace" => Trace(trace::TraceConfig),
    }
);

/// What an instance is built with.
pub struct TransformContext {
    pub name: String,
    /// Shared by all of the transform's instances: `received` in, `sent` on, `ignored` removed.
    pub counters: Arc<ComponentCounters>,
}

/// A transform type: what it takes, its checks, and how an instance is made.
pub trait TransformType {
    /// The sources and transforms it takes events from.
    fn inputs(&self) -> &[String];

    /// Checks of this transform alone, before anything starts.
    fn validate(&self) -> Result<()> {
        Ok(())
    }

    /// A running instance. A stateless transform gets one per source thread it runs in, so
    /// what instances share (a database, a cache) they share through an `Arc`.
    fn build(&self, ctx: &TransformContext) -> Result<Box<dyn Transform>>;

    /// Whether it keeps state across events (a guard counting failures): it then runs in a
    /// thread of its own, fed by a queue, instead of in its sources' threads.
    fn stateful(&self) -> bool {
        false
    }

    /// Whether it reads programs' log lines (a guard): line sources feeding it then hand on
    /// the lines that are not netfilter records instead of counting them as ignored.
    fn takes_lines(&self) -> bool {
        false
    }

    /// The capabilities it needs to run (a guard changing the ruleset).
    fn capabilities(&self) -> Vec<crate::privileges::Capability> {
        Vec::new()
    }
}

/// A running transform: changes a batch in place (enriches events, removes some).
pub trait Transform: Send {
    fn apply(&mut self, batch: &mut Vec<Event>);

    /// Another instance for another thread (a source that reads on several, such as the
    /// syslog listener's connections), sharing what instances share.
    fn another(&self) -> Box<dyn Transform>;

    /// Called at least every 100 ms on a stateful transform, with or without input, for what
    /// time alone decides (a ban that ends); what it puts in `out` is sent on.
    fn tick(&mut self, _out: &mut Vec<Event>) {}

    /// Called once when its inputs have ended: what it still holds goes in `out`.
    fn end(&mut self, out: &mut Vec<Event>) {
        self.tick(out);
    }
}

/// Calls `f` with the endpoints of each packet and flow record of `batch` (records without IP
/// endpoints are skipped) and the record's enrichment, for enriching transforms to fill.
pub fn each_endpoints(
    batch: &mut [Event],
    mut f: impl FnMut(&FlowKey, &mut Option<Box<Enrichment>>),
) {
    for e in batch.iter_mut() {
        let (key, enrich) = match e {
            Event::Packet(p) => (p.key(), &mut p.enrich),
            Event::Flow(f) => (f.key(), &mut f.enrich),
            _ => continue,
        };
        if let Some(key) = key {
            f(&key, enrich);
        }
    }
}
