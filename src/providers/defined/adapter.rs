//! A defined provider's adapter: a delivery's body, read through its
//! definition's pointers, becomes an [`Observation`], or is recognised as
//! an event type the definition does not take.

use actix_web::http::header::HeaderMap;
use chrono_tz::Tz;
use serde_json::Value;

use super::definition::{Definition, DeliveryId};
use super::pointer::{Fallbacks, Pointer};
use crate::canonical::{Direction, EventKind, FulfillmentKey, Location, Observation, Provider};
use crate::providers::{bounded_id, header, parse_local_eta, parse_local_event_time, Rejection};

/// What a verified delivery is.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// Tracking news for the store's fulfillment.
    News(Box<Observation>),
    /// An event type the definition does not take: answered 200, and
    /// nothing stored.
    Ignored { event_type: String },
}

impl Definition {
    /// The provider this definition defines.
    pub fn provider(&self) -> Provider {
        Provider::Defined(self.name)
    }

    /// Reads a delivery for `store`, whose local times are in `zone`. A
    /// required field no pointer reaches is refused naming the pointers.
    pub fn read(
        &self,
        store: &str,
        zone: Tz,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Reading, Rejection> {
        let body: Value = serde_json::from_slice(body)
            .map_err(|e| Rejection::Invalid(format!("the body is not valid JSON: {e}")))?;
        if let Some(types) = &self.event_types {
            let event_type = required_text(&types.pointer, &body)?;
            if !types.accept.contains(&event_type) {
                return Ok(Reading::Ignored { event_type });
            }
        }
        let fields = &self.fields;
        let order_ref = required_id(&fields.order_id, &body)?;
        let fulfillment_ref = required_id(&fields.fulfillment_id, &body)?;
        let (kind, raw_status) = self.status_of(&body)?;
        let occurred_at = match optional_text(fields.occurred_at.as_ref(), &body)? {
            None => None,
            Some((pointer, value)) => {
                parse_local_event_time(pointer.to_string(), Some(&value), zone)?
            }
        };
        let estimated_delivery = match optional_text(fields.eta.as_ref(), &body)? {
            None => None,
            Some((pointer, value)) => parse_local_eta(&pointer.to_string(), Some(&value))?,
        };
        let tracking_number = match optional_text(fields.tracking_number.as_ref(), &body)? {
            None => None,
            Some((pointer, value)) => Some(bounded_id(&describe(pointer), value)?),
        };
        let is_return = match fields.is_return.as_ref().and_then(|f| f.find(&body)) {
            None => false,
            Some((_, Value::Bool(b))) => *b,
            Some((pointer, other)) => {
                return Err(Rejection::Invalid(format!(
                    "{} is {other}, not true or false",
                    describe(pointer)
                )))
            }
        };
        let text = |f: &Option<Fallbacks>| -> Result<Option<String>, Rejection> {
            Ok(optional_text(f.as_ref(), &body)?.map(|(_, v)| v))
        };
        let location = Location {
            address1: text(&fields.address1)?,
            city: text(&fields.city)?,
            state: text(&fields.state)?,
            country: text(&fields.country)?,
            postal_code: text(&fields.postal_code)?,
            latitude: number(fields.latitude.as_ref(), &body)?,
            longitude: number(fields.longitude.as_ref(), &body)?,
        };
        Ok(Reading::News(Box::new(Observation {
            provider: self.provider(),
            key: FulfillmentKey {
                store: store.to_owned(),
                order_ref,
                fulfillment_ref,
            },
            direction: if is_return {
                Direction::Return
            } else {
                Direction::Forward
            },
            carrier: text(&fields.carrier)?,
            tracking_number,
            kind,
            raw_status,
            message: text(&fields.message)?,
            occurred_at,
            estimated_delivery,
            location: location.non_empty(),
            source_id: None,
            delivery_id: self.delivery_id_of(headers, &body)?,
        })))
    }

    /// The first status word its table knows, with the word; else the
    /// first word present, unmapped; 400 when there is none.
    fn status_of(&self, body: &Value) -> Result<(EventKind, String), Rejection> {
        let mut first = None;
        for word in &self.status {
            let Some(text) = text_at(&word.pointer, body)? else {
                continue;
            };
            if let Some(mapping) = self.map.lookup(&word.table, &text) {
                return Ok((mapping.kind(), text));
            }
            first.get_or_insert(text);
        }
        match first {
            Some(word) => Ok((EventKind::Unmapped, word)),
            None => {
                let tried: Vec<String> =
                    self.status.iter().map(|w| w.pointer.to_string()).collect();
                Err(Rejection::Invalid(format!(
                    "the body has no status word at {}; nothing stored",
                    tried.join(", then ")
                )))
            }
        }
    }

    fn delivery_id_of(
        &self,
        headers: &HeaderMap,
        body: &Value,
    ) -> Result<Option<String>, Rejection> {
        match &self.delivery_id {
            None => Ok(None),
            Some(DeliveryId::Header(name)) => header(headers, name)?
                .map(|id| bounded_id(&format!("header {name}"), id.to_owned()))
                .transpose(),
            Some(DeliveryId::Body(pointers)) => match optional_text(Some(pointers), body)? {
                None => Ok(None),
                Some((pointer, id)) => bounded_id(&describe(pointer), id).map(Some),
            },
        }
    }
}

/// How a refusal names a pointer.
fn describe(pointer: &Pointer) -> String {
    format!("the value at {pointer}")
}

/// A value as text: a string (trimmed; empty is missing) or a number.
fn text_at(pointer: &Pointer, body: &Value) -> Result<Option<String>, Rejection> {
    match pointer.find(body) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_owned()).filter(|s| !s.is_empty())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(other) => Err(Rejection::Invalid(format!(
            "{} is {}, not text or a number",
            describe(pointer),
            kind_of(other)
        ))),
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The first of `fallbacks` that holds text, with its pointer.
fn optional_text<'f>(
    fallbacks: Option<&'f Fallbacks>,
    body: &Value,
) -> Result<Option<(&'f Pointer, String)>, Rejection> {
    for pointer in fallbacks.map(Fallbacks::pointers).unwrap_or_default() {
        if let Some(text) = text_at(pointer, body)? {
            return Ok(Some((pointer, text)));
        }
    }
    Ok(None)
}

/// A required field's text; 400 naming every pointer tried.
fn required_text(fallbacks: &Fallbacks, body: &Value) -> Result<String, Rejection> {
    optional_text(Some(fallbacks), body)?
        .map(|(_, text)| text)
        .ok_or_else(|| {
            Rejection::Invalid(format!(
                "the body has no value at {fallbacks}; nothing stored"
            ))
        })
}

/// A required id, at most [`crate::canonical::MAX_ID_BYTES`] long; 400
/// naming the pointers otherwise.
fn required_id(fallbacks: &Fallbacks, body: &Value) -> Result<String, Rejection> {
    bounded_id(
        &format!("the id at {fallbacks}"),
        required_text(fallbacks, body)?,
    )
}

/// A coordinate: a number, or text holding one.
fn number(fallbacks: Option<&Fallbacks>, body: &Value) -> Result<Option<f64>, Rejection> {
    let Some((pointer, value)) = fallbacks.and_then(|f| f.find(body)) else {
        return Ok(None);
    };
    let parsed = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    parsed
        .filter(|n: &f64| n.is_finite())
        .map(Some)
        .ok_or_else(|| {
            Rejection::Invalid(format!("{} is {value}, not a number", describe(pointer)))
        })
}
