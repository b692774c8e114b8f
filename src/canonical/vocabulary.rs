//! The one tracking vocabulary every provider's words are mapped onto.
//!
//! It is Redo's (and so EasyPost's) vocabulary. The types can only be built
//! from a valid word, so a `ShipmentStatus` in hand is always one the core
//! and the outbound automations understand.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a shipment is: the thing a fulfillment's current status is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShipmentStatus {
    PreTransit,
    Unknown,
    InTransit,
    OutForDelivery,
    AvailableForPickup,
    Delivered,
    ReturnToSender,
    Failure,
    Cancelled,
    Error,
}

/// Something that happened to a shipment without changing where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AutomationEvent {
    StalledInTransit,
    Delayed,
    ArrivingEarly,
}

/// Which way a shipment travels. Rules fire on forward fulfillments unless
/// they list `return` too, so that a customer's return reaching the
/// warehouse never tells the customer "your parcel was delivered".
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Merchant to customer: every Shopify and Redo fulfillment, and what
    /// a record written before directions existed reads back as.
    #[default]
    Forward,
    /// Customer back to merchant (Carriyo's `entity_type` REVERSE).
    Return,
}

impl Direction {
    /// Both directions, in the order they are listed.
    pub const ALL: [Direction; 2] = [Self::Forward, Self::Return];

    /// The word as config and the API spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Forward => "forward",
            Self::Return => "return",
        }
    }
}

impl FromStr for Direction {
    type Err = UnknownWord;
    fn from_str(word: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|d| d.as_str() == word)
            .ok_or_else(|| UnknownWord(word.to_owned()))
    }
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A word that is not part of the canonical vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a word of the tracking vocabulary")]
pub struct UnknownWord(pub String);

impl ShipmentStatus {
    /// Every status, in the order the vocabulary lists them.
    pub const ALL: [ShipmentStatus; 10] = [
        Self::PreTransit,
        Self::Unknown,
        Self::InTransit,
        Self::OutForDelivery,
        Self::AvailableForPickup,
        Self::Delivered,
        Self::ReturnToSender,
        Self::Failure,
        Self::Cancelled,
        Self::Error,
    ];

    /// The word as providers and our API spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PreTransit => "pre_transit",
            Self::Unknown => "unknown",
            Self::InTransit => "in_transit",
            Self::OutForDelivery => "out_for_delivery",
            Self::AvailableForPickup => "available_for_pickup",
            Self::Delivered => "delivered",
            Self::ReturnToSender => "return_to_sender",
            Self::Failure => "failure",
            Self::Cancelled => "cancelled",
            Self::Error => "error",
        }
    }
}

impl AutomationEvent {
    /// Every event, in the order the vocabulary lists them.
    pub const ALL: [AutomationEvent; 3] =
        [Self::StalledInTransit, Self::Delayed, Self::ArrivingEarly];

    /// The word as providers and our API spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StalledInTransit => "stalled_in_transit",
            Self::Delayed => "delayed",
            Self::ArrivingEarly => "arriving_early",
        }
    }
}

impl FromStr for ShipmentStatus {
    type Err = UnknownWord;
    fn from_str(word: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == word)
            .ok_or_else(|| UnknownWord(word.to_owned()))
    }
}

impl FromStr for AutomationEvent {
    type Err = UnknownWord;
    fn from_str(word: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|e| e.as_str() == word)
            .ok_or_else(|| UnknownWord(word.to_owned()))
    }
}

impl fmt::Display for ShipmentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for AutomationEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_round_trips_through_its_parser_and_serde() {
        for s in ShipmentStatus::ALL {
            assert_eq!(s.as_str().parse::<ShipmentStatus>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for e in AutomationEvent::ALL {
            assert_eq!(e.as_str().parse::<AutomationEvent>(), Ok(e));
            assert_eq!(serde_json::to_value(e).unwrap(), e.as_str());
        }
        for d in Direction::ALL {
            assert_eq!(d.as_str().parse::<Direction>(), Ok(d));
            assert_eq!(serde_json::to_value(d).unwrap(), d.as_str());
        }
    }

    #[test]
    fn words_outside_the_vocabulary_are_refused() {
        assert!("shipped".parse::<ShipmentStatus>().is_err());
        assert!("delayed".parse::<ShipmentStatus>().is_err());
        assert!("in_transit".parse::<AutomationEvent>().is_err());
        assert!(serde_json::from_str::<ShipmentStatus>("\"In_Transit\"").is_err());
    }
}
