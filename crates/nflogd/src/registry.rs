//! The one place a component type is named: `registry!` makes the config enum (TOML's `type =`
//! picks the variant) and a way to reach each variant's component trait, from one line per
//! type. Adding a source, transform or sink is its folder plus that line (README, "Adding a
//! component").

/// `registry!(Enum: Trait { "toml-name" => Variant(ConfigType), ... })`
#[macro_export]
macro_rules! registry {
    ($(#[$meta:meta])* $enum:ident : $trait:ident { $($tag:literal => $variant:ident($ty:ty)),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, serde::Deserialize)]
        #[serde(tag = "type")]
        pub enum $enum {
            $(#[serde(rename = $tag)] $variant($ty),)*
        }

        impl $enum {
            /// The component behind this entry.
            pub fn component(&self) -> &dyn $trait {
                match self {
                    $($enum::$variant(c) => c,)*
                }
            }
        }
    };
}
