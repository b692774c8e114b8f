//! `providers/NAME/provider.toml`: a webhook sender described as data,
//! parsed into a [`Definition`]; every problem names the file, the line
//! and the key.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use super::auth::{Auth, Encoding, SecretForm};
use super::pointer::{Fallbacks, Pointer};
use crate::canonical::DefinedName;
use crate::providers::status_map::StatusMap;

/// A definition that cannot be used, with where the problem is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {problem}")]
pub struct DefinitionError {
    pub file: String,
    pub line: usize,
    pub problem: String,
}

/// Where a delivery's id, for dedup, is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryId {
    Header(String),
    Body(Fallbacks),
}

/// Which deliveries carry tracking news: those whose word at `pointer`
/// is in `accept`; the others are answered 200 and ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventTypes {
    pub pointer: Fallbacks,
    pub accept: Vec<String>,
}

/// One place a status word may be, and the status map table it is looked
/// up in. A definition lists them in order; the first word its table
/// knows wins (AfterShip's sub-status, else its status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusWord {
    pub table: String,
    pub pointer: Pointer,
}

/// The canonical fields, as pointers into the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    pub order_id: Fallbacks,
    pub fulfillment_id: Fallbacks,
    pub tracking_number: Option<Fallbacks>,
    pub carrier: Option<Fallbacks>,
    pub occurred_at: Option<Fallbacks>,
    pub eta: Option<Fallbacks>,
    pub message: Option<Fallbacks>,
    /// A boolean: true when the shipment is a customer's return.
    pub is_return: Option<Fallbacks>,
    pub address1: Option<Fallbacks>,
    pub city: Option<Fallbacks>,
    pub state: Option<Fallbacks>,
    pub country: Option<Fallbacks>,
    pub postal_code: Option<Fallbacks>,
    pub latitude: Option<Fallbacks>,
    pub longitude: Option<Fallbacks>,
}

/// What the sender expects back for a delivery taken (or a repeat).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// A 2xx status.
    pub status: u16,
    /// Sent as it is with `content_type`; unset, shipgate's
    /// acknowledgement (`accepted`, `duplicate`, `event_id`) is sent.
    pub body: Option<String>,
    pub content_type: String,
}

/// One data-defined provider: everything its route and adapter need.
#[derive(Debug, Clone)]
pub struct Definition {
    pub name: DefinedName,
    /// How people write the sender's name, for documents.
    pub title: String,
    pub auth: Auth,
    pub delivery_id: Option<DeliveryId>,
    pub event_types: Option<EventTypes>,
    pub status: Vec<StatusWord>,
    pub fields: Fields,
    pub answer: Answer,
    pub map: StatusMap,
    /// Where the definition was read from, for messages.
    pub file: String,
    /// The line of its `name`, for a refusal of a name given twice.
    pub name_line: usize,
}

/// The file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: Spanned<String>,
    title: Option<String>,
    auth: RawAuth,
    delivery_id: Option<RawDeliveryId>,
    event_type: Option<RawEventType>,
    status: Spanned<Vec<RawStatusWord>>,
    fields: RawFields,
    answer: Option<RawAnswer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    scheme: Spanned<String>,
    header: Option<Spanned<String>>,
    encoding: Option<Spanned<String>>,
    prefix: Option<String>,
    secret_form: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeliveryId {
    header: Option<Spanned<String>>,
    pointer: Option<Spanned<OneOrMany>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEventType {
    pointer: Spanned<OneOrMany>,
    accept: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStatusWord {
    table: Spanned<String>,
    pointer: Spanned<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFields {
    order_id: Spanned<OneOrMany>,
    fulfillment_id: Spanned<OneOrMany>,
    tracking_number: Option<Spanned<OneOrMany>>,
    carrier: Option<Spanned<OneOrMany>>,
    occurred_at: Option<Spanned<OneOrMany>>,
    eta: Option<Spanned<OneOrMany>>,
    message: Option<Spanned<OneOrMany>>,
    is_return: Option<Spanned<OneOrMany>>,
    address1: Option<Spanned<OneOrMany>>,
    city: Option<Spanned<OneOrMany>>,
    state: Option<Spanned<OneOrMany>>,
    country: Option<Spanned<OneOrMany>>,
    postal_code: Option<Spanned<OneOrMany>>,
    latitude: Option<Spanned<OneOrMany>>,
    longitude: Option<Spanned<OneOrMany>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnswer {
    status: Option<Spanned<u16>>,
    body: Option<String>,
    content_type: Option<String>,
}

/// A pointer, or a list of fallbacks each with its own place in the file.
enum OneOrMany {
    One(String),
    Many(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> Visitor<'de> for Either {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON Pointer or a list of them (fallbacks, first match wins)")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(v.to_owned()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut all = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<String>>()? {
                    all.push(item);
                }
                Ok(OneOrMany::Many(all))
            }
        }
        d.deserialize_any(Either)
    }
}

/// Reads positions in one file's text as line numbers.
struct Source<'a> {
    file: &'a str,
    text: &'a str,
}

impl Source<'_> {
    fn line(&self, offset: usize) -> usize {
        self.text[..offset.min(self.text.len())]
            .matches('\n')
            .count()
            + 1
    }

    fn error(&self, offset: usize, problem: impl Into<String>) -> DefinitionError {
        DefinitionError {
            file: self.file.to_owned(),
            line: self.line(offset),
            problem: problem.into(),
        }
    }

    /// A field's pointers, each checked; errors name `key`.
    fn fallbacks(&self, key: &str, raw: Spanned<OneOrMany>) -> Result<Fallbacks, DefinitionError> {
        let start = raw.span().start;
        let texts = match raw.into_inner() {
            OneOrMany::One(text) => vec![(start, text)],
            OneOrMany::Many(all) => all
                .into_iter()
                .map(|s| (s.span().start, s.into_inner()))
                .collect(),
        };
        let mut pointers = Vec::new();
        for (at, text) in texts {
            let pointer = Pointer::parse(&text)
                .map_err(|e| self.error(at, format!("key `{key}`: {e}")))?
                .on_line(self.line(at));
            pointers.push(pointer);
        }
        Fallbacks::new(pointers).map_err(|e| self.error(start, format!("key `{key}`: {e}")))
    }

    fn optional(
        &self,
        key: &str,
        raw: Option<Spanned<OneOrMany>>,
    ) -> Result<Option<Fallbacks>, DefinitionError> {
        raw.map(|raw| self.fallbacks(key, raw)).transpose()
    }
}

/// A header name as HTTP allows it, in lower case.
fn header_name(text: &str) -> Option<String> {
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    (!text.is_empty() && text.chars().all(token)).then(|| text.to_ascii_lowercase())
}

impl Definition {
    /// Parses `provider.toml`'s `text` (`file` names it in errors) with
    /// its status map, already parsed.
    pub fn parse(file: &str, text: &str, map: StatusMap) -> Result<Self, DefinitionError> {
        let source = Source { file, text };
        let raw: Raw = toml::from_str(text)
            .map_err(|e| source.error(e.span().map_or(0, |s| s.start), e.message().to_owned()))?;
        let name_at = raw.name.span().start;
        let name = DefinedName::intern(raw.name.get_ref())
            .map_err(|e| source.error(name_at, format!("key `name`: {e}")))?;
        let auth = auth(&source, raw.auth)?;
        let delivery_id = match raw.delivery_id {
            None => None,
            Some(RawDeliveryId {
                header: Some(header),
                pointer: None,
            }) => Some(DeliveryId::Header(
                header_name(header.get_ref()).ok_or_else(|| {
                    source.error(
                        header.span().start,
                        format!(
                            "key `delivery_id.header`: '{}' is not an HTTP header name",
                            header.get_ref()
                        ),
                    )
                })?,
            )),
            Some(RawDeliveryId {
                header: None,
                pointer: Some(pointer),
            }) => Some(DeliveryId::Body(
                source.fallbacks("delivery_id.pointer", pointer)?,
            )),
            Some(_) => {
                return Err(source.error(
                    text.find("[delivery_id]").unwrap_or(0),
                    "key `delivery_id`: give exactly one of `header` and `pointer`",
                ))
            }
        };
        let event_types = match raw.event_type {
            None => None,
            Some(e) => Some(EventTypes {
                pointer: source.fallbacks("event_type.pointer", e.pointer)?,
                accept: e.accept,
            }),
        };
        let status_at = raw.status.span().start;
        let mut status = Vec::new();
        for (i, word) in raw.status.into_inner().into_iter().enumerate() {
            let table = word.table.get_ref();
            if !map.has_table(table) {
                return Err(source.error(
                    word.table.span().start,
                    format!("key `status[{i}].table`: the status map has no table [{table}]"),
                ));
            }
            let at = word.pointer.span().start;
            let pointer = Pointer::parse(word.pointer.get_ref())
                .map_err(|e| source.error(at, format!("key `status[{i}].pointer`: {e}")))?
                .on_line(source.line(at));
            status.push(StatusWord {
                table: table.clone(),
                pointer,
            });
        }
        if status.is_empty() {
            return Err(source.error(
                status_at,
                "key `status`: list at least one { table, pointer } where the status word is",
            ));
        }
        let f = raw.fields;
        let fields = Fields {
            order_id: source.fallbacks("fields.order_id", f.order_id)?,
            fulfillment_id: source.fallbacks("fields.fulfillment_id", f.fulfillment_id)?,
            tracking_number: source.optional("fields.tracking_number", f.tracking_number)?,
            carrier: source.optional("fields.carrier", f.carrier)?,
            occurred_at: source.optional("fields.occurred_at", f.occurred_at)?,
            eta: source.optional("fields.eta", f.eta)?,
            message: source.optional("fields.message", f.message)?,
            is_return: source.optional("fields.is_return", f.is_return)?,
            address1: source.optional("fields.address1", f.address1)?,
            city: source.optional("fields.city", f.city)?,
            state: source.optional("fields.state", f.state)?,
            country: source.optional("fields.country", f.country)?,
            postal_code: source.optional("fields.postal_code", f.postal_code)?,
            latitude: source.optional("fields.latitude", f.latitude)?,
            longitude: source.optional("fields.longitude", f.longitude)?,
        };
        let answer = match raw.answer {
            None => Answer {
                status: 200,
                body: None,
                content_type: "application/json".into(),
            },
            Some(a) => {
                if let Some(status) = &a.status {
                    if !(200..300).contains(status.get_ref()) {
                        return Err(source.error(
                            status.span().start,
                            format!(
                                "key `answer.status`: {} is not a 2xx status; a sender retries \
                                 anything else",
                                status.get_ref()
                            ),
                        ));
                    }
                }
                Answer {
                    status: a.status.map_or(200, Spanned::into_inner),
                    body: a.body,
                    content_type: a.content_type.unwrap_or_else(|| "application/json".into()),
                }
            }
        };
        Ok(Self {
            title: raw.title.unwrap_or_else(|| name.as_str().to_owned()),
            name,
            auth,
            delivery_id,
            event_types,
            status,
            fields,
            answer,
            map,
            file: file.to_owned(),
            name_line: source.line(name_at),
        })
    }

    /// Every pointer with the key it is written under, for the check that
    /// each reaches a value in at least one sample.
    pub fn pointers(&self) -> Vec<(String, &Pointer)> {
        let f = &self.fields;
        let body_id = match &self.delivery_id {
            Some(DeliveryId::Body(f)) => Some(f),
            _ => None,
        };
        let lists = [
            ("delivery_id.pointer", body_id),
            (
                "event_type.pointer",
                self.event_types.as_ref().map(|e| &e.pointer),
            ),
            ("fields.order_id", Some(&f.order_id)),
            ("fields.fulfillment_id", Some(&f.fulfillment_id)),
            ("fields.tracking_number", f.tracking_number.as_ref()),
            ("fields.carrier", f.carrier.as_ref()),
            ("fields.occurred_at", f.occurred_at.as_ref()),
            ("fields.eta", f.eta.as_ref()),
            ("fields.message", f.message.as_ref()),
            ("fields.is_return", f.is_return.as_ref()),
            ("fields.address1", f.address1.as_ref()),
            ("fields.city", f.city.as_ref()),
            ("fields.state", f.state.as_ref()),
            ("fields.country", f.country.as_ref()),
            ("fields.postal_code", f.postal_code.as_ref()),
            ("fields.latitude", f.latitude.as_ref()),
            ("fields.longitude", f.longitude.as_ref()),
        ];
        let mut all: Vec<(String, &Pointer)> = lists
            .into_iter()
            .flat_map(|(key, fallbacks)| {
                fallbacks
                    .map(Fallbacks::pointers)
                    .unwrap_or_default()
                    .iter()
                    .map(move |p| (key.to_owned(), p))
            })
            .collect();
        for (i, word) in self.status.iter().enumerate() {
            all.push((format!("status[{i}].pointer"), &word.pointer));
        }
        all
    }
}

/// `[auth]`, checked for its scheme.
fn auth(source: &Source<'_>, raw: RawAuth) -> Result<Auth, DefinitionError> {
    let scheme_at = raw.scheme.span().start;
    let header = |required: bool| -> Result<String, DefinitionError> {
        match &raw.header {
            Some(h) => header_name(h.get_ref()).ok_or_else(|| {
                source.error(
                    h.span().start,
                    format!(
                        "key `auth.header`: '{}' is not an HTTP header name",
                        h.get_ref()
                    ),
                )
            }),
            None if required => Err(source.error(
                scheme_at,
                format!(
                    "key `auth.header`: scheme '{}' needs the header its credential comes in",
                    raw.scheme.get_ref()
                ),
            )),
            None => Ok(String::new()),
        }
    };
    let only_hmac = |key: &str, set: bool| -> Result<(), DefinitionError> {
        if set {
            return Err(source.error(
                scheme_at,
                format!("key `auth.{key}` is for scheme hmac-sha256 only"),
            ));
        }
        Ok(())
    };
    match raw.scheme.get_ref().as_str() {
        "hmac-sha256" => {
            let encoding = match raw
                .encoding
                .as_ref()
                .map(|e| (e.span().start, e.get_ref().as_str()))
            {
                Some((_, "base64")) => Encoding::Base64,
                Some((_, "hex")) => Encoding::Hex,
                Some((at, other)) => {
                    return Err(source.error(
                        at,
                        format!("key `auth.encoding`: '{other}' is not base64 or hex"),
                    ))
                }
                None => {
                    return Err(source.error(
                        scheme_at,
                        "key `auth.encoding`: hmac-sha256 needs base64 or hex",
                    ))
                }
            };
            let secret_form = match raw
                .secret_form
                .as_ref()
                .map(|e| (e.span().start, e.get_ref().as_str()))
            {
                None | Some((_, "as-is")) => SecretForm::AsIs,
                Some((_, "nfkd")) => SecretForm::Nfkd,
                Some((at, other)) => {
                    return Err(source.error(
                        at,
                        format!("key `auth.secret_form`: '{other}' is not as-is or nfkd"),
                    ))
                }
            };
            Ok(Auth::Hmac {
                header: header(true)?,
                encoding,
                prefix: raw.prefix.clone().unwrap_or_default(),
                secret_form,
            })
        }
        scheme @ ("token" | "basic" | "bearer") => {
            only_hmac("encoding", raw.encoding.is_some())?;
            only_hmac("prefix", raw.prefix.is_some())?;
            only_hmac("secret_form", raw.secret_form.is_some())?;
            match scheme {
                "token" => Ok(Auth::Token {
                    header: header(true)?,
                }),
                _ if raw.header.is_some() => Err(source.error(
                    scheme_at,
                    format!("key `auth.header`: scheme {scheme} always uses Authorization"),
                )),
                "basic" => Ok(Auth::Basic),
                _ => Ok(Auth::Bearer),
            }
        }
        other => Err(source.error(
            scheme_at,
            format!(
                "key `auth.scheme`: '{other}' is not an auth scheme (hmac-sha256, token, basic, \
                 bearer)"
            ),
        )),
    }
}
