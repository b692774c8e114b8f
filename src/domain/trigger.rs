//! What an automation rule fires on: a status a fulfillment moved to, or
//! an event. Config parses rules' `on` words into it, the core matches
//! applies against it, and every delivery records it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::canonical::{AutomationEvent, ShipmentStatus};

/// What a rule fires on: a status the fulfillment moved to, or an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Trigger {
    Status(ShipmentStatus),
    Event(AutomationEvent),
}

/// A word in `on` that is neither a status nor an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is neither a shipment status ({statuses}) nor an automation event ({events})",
    statuses = words(ShipmentStatus::ALL.iter().map(|s| s.as_str())),
    events = words(AutomationEvent::ALL.iter().map(|e| e.as_str()))
)]
pub struct UnknownTrigger(pub String);

fn words<'a>(list: impl Iterator<Item = &'a str>) -> String {
    list.collect::<Vec<_>>().join(", ")
}

impl Trigger {
    /// The word, as rules and deliveries spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Status(s) => s.as_str(),
            Self::Event(e) => e.as_str(),
        }
    }

    /// `status` or `event`: the `type` of a delivery's payload, so a
    /// subscriber can tell a status change from an event without a list.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Status(_) => "status",
            Self::Event(_) => "event",
        }
    }
}

impl FromStr for Trigger {
    type Err = UnknownTrigger;
    fn from_str(word: &str) -> Result<Self, Self::Err> {
        word.parse()
            .map(Self::Status)
            .or_else(|_| word.parse().map(Self::Event))
            .map_err(|_| UnknownTrigger(word.to_owned()))
    }
}

impl fmt::Display for Trigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Trigger {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Trigger {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_parse_as_statuses_or_events() {
        assert_eq!(
            "delivered".parse(),
            Ok(Trigger::Status(ShipmentStatus::Delivered))
        );
        assert_eq!(
            "delayed".parse(),
            Ok(Trigger::Event(AutomationEvent::Delayed))
        );
        let err = "shiped".parse::<Trigger>().unwrap_err().to_string();
        assert!(err.contains("'shiped'"), "{err}");
        assert!(
            err.contains("in_transit") && err.contains("arriving_early"),
            "{err}"
        );
    }
}
