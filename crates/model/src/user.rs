//! Users and the timestamped facts known about them.

use crate::bucket::random_bucket;
use crate::value::Value;
use jiff::Timestamp;

/// How a user is named. The namespaces are distinct: `External("a")` and an alias are
/// different users even if the strings look alike.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UserKey {
    /// A customer-provided `external_id`.
    External(String),
    /// A `user_alias` `{alias_name, alias_label}`.
    Alias {
        /// `alias_name`.
        name: String,
        /// `alias_label`.
        label: String,
    },
    /// A `braze_id`, kept as a namespace of its own.
    Braze(String),
}

impl UserKey {
    /// The text whose hash gives the user's random bucket.
    pub fn bucket_identity(&self) -> String {
        match self {
            UserKey::External(id) | UserKey::Braze(id) => id.clone(),
            UserKey::Alias { name, label } => format!("{label}:{name}"),
        }
    }

    /// The user's `random_bucket`, 0–9999.
    pub fn random_bucket(&self) -> u16 {
        random_bucket(&self.bucket_identity())
    }
}

/// One timestamped fact about a user.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    /// When the fact became true.
    pub time: Timestamp,
    /// What happened.
    pub kind: FactKind,
}

/// The kinds of facts.
#[derive(Debug, Clone, PartialEq)]
pub enum FactKind {
    /// Attributes set (`Some`) or unset (`None`) at once; an empty list still makes
    /// the user exist.
    Attributes(Vec<(String, Option<Value>)>),
    /// A custom event; `detail` keeps the rest of the object (properties, app_id) as
    /// JSON text for export, unused by filters.
    Event {
        /// The event name.
        name: String,
        /// The remaining fields as JSON text.
        detail: Option<String>,
    },
    /// A purchase of `product`; `detail` keeps currency, price, quantity, properties.
    Purchase {
        /// The `product_id`.
        product: String,
        /// The remaining fields as JSON text.
        detail: Option<String>,
    },
    /// The user was deleted (`/users/delete`), at the fact's time. An entry of the
    /// fact log like the others: replayed in log order it forgets every fact of the
    /// key before it, and facts of the key after it make a new user. Never accepted
    /// from a client's body.
    Deletion,
}
