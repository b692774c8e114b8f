//! One adapter per provider. An adapter only turns a delivery's bytes and
//! headers into an [`Observation`](crate::canonical::Observation): it
//! verifies, parses and maps words, and knows nothing of storage or HTTP
//! answers. What they share (signatures, keys, JSON with field paths,
//! dates) is written once here and in `verify`.

pub mod carriyo;
pub mod carriyo_auth;
pub mod defined;
pub mod redo;
pub mod shopify;
pub mod status_map;
pub mod verify;

use std::borrow::Cow;

use actix_web::http::header::HeaderMap;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::de::DeserializeOwned;

use crate::canonical::{json, time, ProviderTime, MAX_ID_BYTES};

/// Why an adapter refused a delivery; always says which header, field or
/// value is at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// Bad or missing signature, key or token: 401, nothing stored.
    #[error("{0}")]
    Unauthorized(String),
    /// Credentials that do not open this tenant (Carriyo answers a wrong
    /// key or tenant-id so): 403, nothing stored.
    #[error("{0}")]
    Forbidden(String),
    /// A body or header that cannot be understood: 400, nothing stored.
    #[error("{0}")]
    Invalid(String),
    /// A well-formed request whose field `field` an API refuses, as
    /// Shopify's REST API does: 422 with the field and `message`
    /// (Shopify's words first, such as "can't be blank").
    #[error("field `{field}` {message}")]
    Unprocessable { field: String, message: String },
}

/// A header's value, or why it cannot be used.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, Rejection> {
    match headers.get(name) {
        None => Ok(None),
        Some(value) => value
            .to_str()
            .map(|v| Some(v.trim()).filter(|v| !v.is_empty()))
            .map_err(|_| Rejection::Invalid(format!("header {name} is not readable text"))),
    }
}

/// A header that must be present, or `missing` as the rejection.
pub fn required_header<'a>(
    headers: &'a HeaderMap,
    name: &str,
    missing: fn(String) -> Rejection,
) -> Result<&'a str, Rejection> {
    header(headers, name)?.ok_or_else(|| missing(format!("header {name} is missing")))
}

/// Parses a JSON body into `T`; errors name the field by its path.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, Rejection> {
    // Tracking the path costs an allocation per field, so only a body that
    // fails pays for it: parsed a second time, to say where.
    json::from_bytes(body).map_err(|plain| locate_json_error::<T>(body, plain))
}

/// Why `body` is not a `T`, naming the field at fault.
fn locate_json_error<T: DeserializeOwned>(body: &[u8], plain: serde_json::Error) -> Rejection {
    let mut de = serde_json::Deserializer::from_slice(body);
    let e = match serde_path_to_error::deserialize::<_, T>(&mut de) {
        Err(e) => e,
        // The value parsed; what follows it did not.
        Ok(_) => return Rejection::Invalid(format!("the body is not valid JSON: {plain}")),
    };
    let inner = e.inner();
    if inner.is_syntax() || inner.is_eof() {
        Rejection::Invalid(format!("the body is not valid JSON: {inner}"))
    } else if e.path().to_string() == "." {
        Rejection::Invalid(format!("the body has the wrong shape: {inner}"))
    } else {
        Rejection::Invalid(format!("field `{}`: {inner}", e.path()))
    }
}

/// An RFC 3339 date-time from field `field`, in UTC and in the years
/// RFC 3339 can write.
pub fn parse_time(field: &str, value: &str) -> Result<DateTime<Utc>, Rejection> {
    let t = DateTime::parse_from_rfc3339(value.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            Rejection::Invalid(format!(
                "field `{field}`: '{value}' is not an RFC 3339 date-time like 2026-11-20T10:00:00Z"
            ))
        })?;
    rfc3339_year(field, value, t)
}

/// `t`, read from `value` of field `field`, when its UTC year is one of
/// [`time::YEARS`].
fn rfc3339_year(field: &str, value: &str, t: DateTime<Utc>) -> Result<DateTime<Utc>, Rejection> {
    time::in_rfc3339_years(t).ok_or_else(|| {
        Rejection::Invalid(format!(
            "field `{field}`: '{value}' falls in year {} in UTC; times must fall in the years \
             0000 to 9999",
            t.year()
        ))
    })
}

/// The optional time of the news in field `field`, kept with the field's
/// name so that a time too far ahead is refused naming it.
pub fn parse_event_time(
    field: impl Into<Cow<'static, str>>,
    value: Option<&str>,
) -> Result<Option<ProviderTime>, Rejection> {
    let Some(value) = value else {
        return Ok(None);
    };
    let field = field.into();
    let at = parse_time(&field, value)?;
    Ok(Some(ProviderTime { at, field }))
}

/// [`parse_event_time`] for a field whose value may lack an offset: such
/// a time is read in `zone` (see [`time::parse_in_zone`]).
pub fn parse_local_event_time(
    field: impl Into<Cow<'static, str>>,
    value: Option<&str>,
    zone: Tz,
) -> Result<Option<ProviderTime>, Rejection> {
    let Some(value) = value else {
        return Ok(None);
    };
    let field = field.into();
    let at = time::parse_in_zone(value.trim(), zone).ok_or_else(|| {
        Rejection::Invalid(format!(
            "field `{field}`: '{value}' is not a date-time like 2026-11-20T10:00:00+04:00 \
             or 2026-11-20T10:00:00"
        ))
    })?;
    let at = rfc3339_year(&field, value, at)?;
    Ok(Some(ProviderTime { at, field }))
}

/// [`parse_eta`] that also takes a date-time without an offset, whose date
/// is taken as written.
pub fn parse_local_eta(field: &str, value: Option<&str>) -> Result<Option<NaiveDate>, Rejection> {
    match value.map(str::trim).and_then(time::parse_naive) {
        Some(local) => eta_year(field, local.date()).map(Some),
        None => parse_eta(field, value),
    }
}

/// An estimated delivery date from field `field`: a plain date, or a
/// date-time whose date is taken where it was written (the carrier's local
/// day, not UTC's). ETAs are not news times: one far ahead is allowed.
pub fn parse_eta(field: &str, value: Option<&str>) -> Result<Option<NaiveDate>, Rejection> {
    let Some(value) = value.map(str::trim) else {
        return Ok(None);
    };
    let date = match NaiveDate::parse_from_str(value, "%Y-%m-%d") {
        Ok(date) => date,
        Err(_) => DateTime::parse_from_rfc3339(value)
            .map(|t| t.date_naive())
            .map_err(|_| {
                Rejection::Invalid(format!(
                    "field `{field}`: '{value}' is not a date (2026-11-24) or RFC 3339 date-time"
                ))
            })?,
    };
    eta_year(field, date).map(Some)
}

/// `date` when its year is one of [`time::YEARS`].
fn eta_year(field: &str, date: NaiveDate) -> Result<NaiveDate, Rejection> {
    if time::YEARS.contains(&date.year()) {
        Ok(date)
    } else {
        Err(Rejection::Invalid(format!(
            "field `{field}`: {date} falls in year {}; dates must fall in the years 0000 to 9999",
            date.year()
        )))
    }
}

/// An id from a provider (`what` names its field or header), refused when
/// longer than [`MAX_ID_BYTES`].
pub fn bounded_id<T: AsRef<str>>(what: &str, id: T) -> Result<T, Rejection> {
    let len = id.as_ref().len();
    if len > MAX_ID_BYTES {
        return Err(Rejection::Invalid(format!(
            "{what} is {len} bytes long; ids are at most {MAX_ID_BYTES} bytes"
        )));
    }
    Ok(id)
}

/// [`bounded_id`] for an optional id.
pub fn bounded_optional_id<T: AsRef<str>>(
    what: &str,
    id: Option<T>,
) -> Result<Option<T>, Rejection> {
    id.map(|id| bounded_id(what, id)).transpose()
}

/// Empty strings from providers mean "not known".
pub fn known(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// What the adapters' unit tests share: headers as a provider sends them
/// and the real samples under `providers/<provider>/samples/`.
#[cfg(test)]
pub(crate) mod test_support {
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};

    pub fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    pub fn sample(provider: &str, name: &str) -> Vec<u8> {
        let path = format!(
            "{}/providers/{provider}/samples/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Shape {
        items: Vec<Item>,
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Item {
        quantity: u32,
    }

    #[test]
    fn json_errors_name_the_field_path_or_say_it_is_not_json() {
        let err =
            parse_json::<Shape>(br#"{"items":[{"quantity":1},{"quantity":"2"}]}"#).unwrap_err();
        assert!(err.to_string().contains("items[1].quantity"), "{err}");
        let err = parse_json::<Shape>(b"status=in_transit").unwrap_err();
        assert!(err.to_string().contains("not valid JSON"), "{err}");
        let err = parse_json::<Shape>(br#"{"other":1}"#).unwrap_err();
        assert!(err.to_string().contains("items"), "{err}");
        let err = parse_json::<Shape>(br#"{"items":[]} {"items":[]}"#).unwrap_err();
        assert!(
            err.to_string().contains("not valid JSON") && err.to_string().contains("trailing"),
            "{err}"
        );
        assert!(parse_json::<Shape>(br#" {"items":[{"quantity":1}]} "#).is_ok());
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Named {
        name: String,
    }

    #[test]
    fn a_body_that_is_not_utf8_is_refused_saying_where() {
        let err = parse_json::<Named>(b"{\"name\":\"Caf\xe9\"}").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("invalid unicode") && text.contains("column 13"),
            "{text}"
        );
        let parsed = parse_json::<Named>("{\"name\":\"Café\"}".as_bytes()).unwrap();
        assert_eq!(parsed.name, "Café");
    }

    #[test]
    fn etas_take_the_local_date_of_a_date_time() {
        let late_evening = parse_eta("eta", Some("2026-11-24T22:00:00-05:00")).unwrap();
        assert_eq!(late_evening, "2026-11-24".parse().ok());
        assert_eq!(
            parse_eta("eta", Some("2026-11-24")).unwrap(),
            "2026-11-24".parse().ok()
        );
        let err = parse_eta("eta", Some("next tuesday")).unwrap_err();
        assert!(err.to_string().contains("`eta`"), "{err}");
    }

    #[test]
    fn times_and_dates_outside_four_digit_years_are_refused_naming_the_field() {
        let err = parse_time("happened_at", "0000-01-01T00:00:00+23:59").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("`happened_at`") && text.contains("year -1"),
            "{text}"
        );
        assert!(parse_time("happened_at", "9999-12-31T23:59:59-00:01").is_err());
        assert!(parse_time("happened_at", "0000-01-01T00:00:00Z").is_ok());
        let zone: Tz = "Asia/Dubai".parse().unwrap();
        let local = parse_local_event_time("update_date", Some("0000-01-01T01:00:00"), zone);
        assert!(
            matches!(&local, Err(Rejection::Invalid(m)) if m.contains("`update_date`")),
            "{local:?}"
        );
        for eta in ["-0001-12-31", "+10000-01-01"] {
            let date = NaiveDate::parse_from_str(eta, "%Y-%m-%d");
            if date.is_ok() {
                let err = parse_eta("eta", Some(eta)).unwrap_err();
                assert!(err.to_string().contains("`eta`"), "{err}");
            }
        }
        let far_eta = parse_eta("eta", Some("2099-01-01")).unwrap();
        assert_eq!(
            far_eta,
            "2099-01-01".parse().ok(),
            "an ETA far ahead is allowed"
        );
    }

    #[test]
    fn ids_are_bounded_naming_where_they_came_from() {
        assert_eq!(
            bounded_id("field `id`", "a".repeat(255)).unwrap().len(),
            255
        );
        let err = bounded_id("field `fulfillmentId`", "a".repeat(256)).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("`fulfillmentId`") && text.contains("256 bytes"),
            "{text}"
        );
        assert_eq!(bounded_optional_id::<&str>("header x", None), Ok(None));
    }

    #[test]
    fn event_times_keep_their_field() {
        let t = parse_event_time("happened_at", Some("2026-11-20T10:00:00-05:00"))
            .unwrap()
            .unwrap();
        assert_eq!(t.field, "happened_at");
        assert_eq!(t.at.to_rfc3339(), "2026-11-20T15:00:00+00:00");
        assert_eq!(parse_event_time("happened_at", None), Ok(None));
    }

    #[test]
    fn times_name_their_field() {
        assert!(parse_time("happened_at", "2026-11-20T10:00:00-05:00").is_ok());
        let err = parse_time("happened_at", "20/11/2026").unwrap_err();
        assert!(err.to_string().contains("happened_at") && err.to_string().contains("20/11/2026"));
    }
}
