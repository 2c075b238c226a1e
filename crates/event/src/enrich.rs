//! What transforms add to a packet or flow record about its endpoints: where an address is
//! (GeoIP: place and network) and its name (reverse DNS). Shared with `Arc`: the same address
//! in many records costs one lookup and no copy.

use std::sync::Arc;

/// What a GeoIP database says of one address.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Place {
    pub continent_code: Option<Box<str>>,
    pub continent_name: Option<Box<str>>,
    pub country_iso_code: Option<Box<str>>,
    pub country_name: Option<Box<str>>,
    /// ISO 3166-2 (`CA-QC`).
    pub region_iso_code: Option<Box<str>>,
    pub region_name: Option<Box<str>>,
    pub city_name: Option<Box<str>>,
    pub postal_code: Option<Box<str>>,
    pub timezone: Option<Box<str>>,
    /// Latitude and longitude in millionths of a degree (exact for what the databases hold).
    pub location: Option<(i32, i32)>,
    /// The autonomous system (ASN databases).
    pub as_number: Option<u32>,
    pub as_organization: Option<Box<str>>,
}

impl Place {
    pub fn is_empty(&self) -> bool {
        *self == Place::default()
    }
}

/// One endpoint's additions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Endpoint {
    /// From a City or Country database.
    pub place: Option<Arc<Place>>,
    /// From an ASN database (`as_number`, `as_organization`).
    pub network: Option<Arc<Place>>,
    /// The name its address resolves to (PTR).
    pub domain: Option<Arc<str>>,
}

/// Additions to a record, for its source and its destination.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Enrichment {
    pub source: Endpoint,
    pub destination: Endpoint,
}
