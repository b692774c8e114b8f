//! Automation rules: which statuses and events fire which subscriber, for
//! which stores. The rules come from `[[automations]]` in config, already
//! parsed there, so every rule in hand is a valid one.

use crate::canonical::Direction;
use crate::config::AutomationSettings;
use crate::domain::Trigger;

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

    /// Whether this rule fires for `trigger` on a fulfillment of `store`
    /// going `direction`.
    pub fn fires_on(&self, store: &str, direction: Direction, trigger: Trigger) -> bool {
        self.on.contains(&trigger)
            && self.directions.contains(&direction)
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

    /// The rules that fire for `trigger` on a fulfillment of `store` going
    /// `direction`.
    pub fn firing<'a>(
        &'a self,
        store: &'a str,
        direction: Direction,
        trigger: Trigger,
    ) -> impl Iterator<Item = &'a AutomationSettings> + 'a {
        self.0
            .iter()
            .filter(move |r| r.fires_on(store, direction, trigger))
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
    use crate::canonical::{AutomationEvent, ShipmentStatus};

    fn rule(on: &[&str], stores: &[&str]) -> AutomationSettings {
        AutomationSettings {
            name: "r".into(),
            on: on.iter().map(|w| w.parse().unwrap()).collect(),
            directions: vec![Direction::Forward],
            stores: stores.iter().map(|s| s.to_string()).collect(),
            url: "https://hooks.example.com/x".parse().unwrap(),
            bearer_token: None,
            signing_secret: None,
        }
    }

    #[test]
    fn a_rule_fires_on_its_words_and_only_for_its_stores() {
        let delayed = Trigger::Event(AutomationEvent::Delayed);
        let delivered = Trigger::Status(ShipmentStatus::Delivered);
        let forward = Direction::Forward;
        let acme_only = rule(&["delayed"], &["acme"]);
        assert!(acme_only.fires_on("acme", forward, delayed));
        assert!(!acme_only.fires_on("beta", forward, delayed));
        assert!(!acme_only.fires_on("acme", forward, delivered));
        let everywhere = rule(&["delivered"], &[]);
        assert!(everywhere.fires_on("beta", forward, delivered));
    }

    #[test]
    fn a_rule_fires_only_for_the_directions_it_lists() {
        let delivered = Trigger::Status(ShipmentStatus::Delivered);
        let forward_only = rule(&["delivered"], &[]);
        assert!(forward_only.fires_on("acme", Direction::Forward, delivered));
        assert!(!forward_only.fires_on("acme", Direction::Return, delivered));
        let returns = AutomationSettings {
            directions: vec![Direction::Return],
            ..rule(&["delivered"], &[])
        };
        assert!(returns.fires_on("acme", Direction::Return, delivered));
        assert!(!returns.fires_on("acme", Direction::Forward, delivered));
    }
}
