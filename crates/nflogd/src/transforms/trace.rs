//! `trace`: gathers iptables' TRACE lines and `xtables-monitor --trace` output from line
//! sources into one record per traced packet with its path (`netfilter.trace.path`), as the
//! `nftrace` source gives for nf_tables. Everything else passes through.

use super::{Transform, TransformContext, TransformType};
use crate::trace::legacy::TextTraces;
use crate::units::Duration as ConfigDuration;
use anyhow::{bail, Result};
use event::Event;
use serde::Deserialize;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceConfig {
    pub inputs: Vec<String>,
    /// A packet's path is complete when no line came for it this long (a drop completes it at
    /// once). Default 250 ms.
    #[serde(default = "default_idle")]
    pub idle: ConfigDuration,
}

fn default_idle() -> ConfigDuration {
    ConfigDuration(Duration::from_millis(250))
}

impl TransformType for TraceConfig {
    fn inputs(&self) -> &[String] {
        &self.inputs
    }

    fn validate(&self) -> Result<()> {
        if self.idle.0 < Duration::from_millis(10) || self.idle.0 > Duration::from_secs(60) {
            bail!("idle: {:?} is out of range (10ms to 60s)", self.idle.0);
        }
        Ok(())
    }

    fn stateful(&self) -> bool {
        true
    }

    // xtables-monitor's lines are not netfilter LOG lines: line sources hand them on as lines.
    fn takes_lines(&self) -> bool {
        true
    }

    fn build(&self, _ctx: &TransformContext) -> Result<Box<dyn Transform>> {
        Ok(Box::new(TraceTransform(TextTraces::new(self.idle.0))))
    }
}

struct TraceTransform(TextTraces);

impl Transform for TraceTransform {
    fn apply(&mut self, batch: &mut Vec<Event>) {
        self.0.apply(batch);
    }

    fn another(&self) -> Box<dyn Transform> {
        unreachable!("a stateful transform runs in one thread")
    }

    fn tick(&mut self, out: &mut Vec<Event>) {
        self.0.expired(out);
    }

    fn end(&mut self, out: &mut Vec<Event>) {
        self.0.drain(out);
    }
}
