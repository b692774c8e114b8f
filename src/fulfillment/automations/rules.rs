//! Automation rules: which statuses and events fire which subscriber, for
//! which stores. The rules come from `[[automations]]` in config, already
//! parsed there, so every rule in hand is a valid one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::canonical::{AutomationEvent, ShipmentStatus};
use crate::config::AutomationSettings;

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

impl AutomationSettings {
    /// The target URL with any password in it masked, for listings.
    pub fn display_url(&self) -> String {
        let mut url = self.url.clone();
        if url.password().is_some() {
            // Only fails for URLs that cannot have credentials at all.
            let _ = url.set_password(Some("***"));
        }
        url.to_string()
    }

    /// Whether this rule fires for `trigger` on a fulfillment of `store`.
    pub fn fires_on(&self, store: &str, trigger: Trigger) -> bool {
        self.on.contains(&trigger)
            && (self.stores.is_empty() || self.stores.iter().any(|s| s == store))
    }
}

/// Every configured rule, in config order.
#[derive(Debug, Clone, Default)]
pub struct Rules(Vec<AutomationSettings>);

impl Rules {
    /// The rules of the configuration.
    pub fn new(rules: Vec<AutomationSettings>) -> Self {
        Self(rules)
    }

    /// The rules that fire for `trigger` on a fulfillment of `store`.
    pub fn firing<'a>(
        &'a self,
        store: &'a str,
        trigger: Trigger,
    ) -> impl Iterator<Item = &'a AutomationSettings> + 'a {
        self.0.iter().filter(move |r| r.fires_on(store, trigger))
    }

    /// Whether any rule listens for `trigger` in any store: derived events
    /// nobody listens for are not tracked at all.
    pub fn listen_for(&self, trigger: Trigger) -> bool {
        self.0.iter().any(|r| r.on.contains(&trigger))
    }

    /// A rule by name.
    pub fn get(&self, name: &str) -> Option<&AutomationSettings> {
        self.0.iter().find(|r| r.name == name)
    }

    /// Every rule, in config order.
    pub fn all(&self) -> &[AutomationSettings] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(on: &[&str], stores: &[&str]) -> AutomationSettings {
        AutomationSettings {
            name: "r".into(),
            on: on.iter().map(|w| w.parse().unwrap()).collect(),
            stores: stores.iter().map(|s| s.to_string()).collect(),
            url: "https://hooks.example.com/x".parse().unwrap(),
            bearer_token: None,
            signing_secret: None,
        }
    }

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

    #[test]
    fn a_rule_fires_on_its_words_and_only_for_its_stores() {
        let delayed = Trigger::Event(AutomationEvent::Delayed);
        let delivered = Trigger::Status(ShipmentStatus::Delivered);
        let acme_only = rule(&["delayed"], &["acme"]);
        assert!(acme_only.fires_on("acme", delayed));
        assert!(!acme_only.fires_on("beta", delayed));
        assert!(!acme_only.fires_on("acme", delivered));
        let everywhere = rule(&["delivered"], &[]);
        assert!(everywhere.fires_on("beta", delivered));
    }
}
