//! Interface index → name (and device type), cached and kept current from rtnetlink link events.

use event::Interface;
use nfnetlink::rtnl::{LinkChange, LinkResolver};
use std::collections::HashMap;
use std::sync::Arc;

pub struct IfNames {
    resolver: Option<LinkResolver>,
    cache: HashMap<u32, (Arc<str>, u16)>,
    empty: Arc<str>,
}

impl Default for IfNames {
    fn default() -> Self {
        Self::new()
    }
}

impl IfNames {
    /// Opens rtnetlink sockets in the calling thread's namespace; without them names stay empty.
    pub fn new() -> Self {
        let resolver = match LinkResolver::open(true) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(
                    "cannot open rtnetlink for interface names ({e}); names will be empty"
                );
                None
            }
        };
        IfNames {
            resolver,
            cache: HashMap::new(),
            empty: Arc::from(""),
        }
    }

    /// Applies link changes announced since the last call.
    pub fn refresh(&mut self) {
        let Some(r) = self.resolver.as_mut() else {
            return;
        };
        for c in r.changes() {
            match c {
                LinkChange::New(l) => {
                    self.cache
                        .insert(l.index, (Arc::from(l.name.as_str()), l.hwtype));
                }
                LinkChange::Removed(i) => {
                    self.cache.remove(&i);
                }
            }
        }
    }

    pub fn get(&mut self, index: u32) -> Interface {
        if let Some((name, hwtype)) = self.cache.get(&index) {
            return Interface {
                index: Some(index),
                name: name.clone(),
                hwtype: Some(*hwtype),
            };
        }
        let found = self
            .resolver
            .as_mut()
            .and_then(|r| r.lookup(index).ok().flatten());
        match found {
            Some(l) => {
                let name: Arc<str> = Arc::from(l.name.as_str());
                self.cache.insert(index, (name.clone(), l.hwtype));
                Interface {
                    index: Some(index),
                    name,
                    hwtype: Some(l.hwtype),
                }
            }
            None => Interface {
                index: Some(index),
                name: self.empty.clone(),
                hwtype: None,
            },
        }
    }
}
