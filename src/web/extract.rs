//! Extractors that turn every malformed input into a problem answer naming the field.

use super::AppState;
use crate::domain::access::Actor;
use crate::error::{Error, FieldError};
use crate::store::{Ctx, Expected, Page};
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts};
use serde::de::DeserializeOwned;
use std::net::SocketAddr;

/// A JSON body parsed strictly: wrong types, unknown or missing fields and bad enum values are
/// 422 with the field's path; broken JSON is 400; a body over the limit is 413.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for Json<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Error> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let m = v
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            });
        if !is_json {
            return Err(Error::BadRequest {
                code: "unsupported_media_type",
                message: "send the body as application/json".into(),
                fields: vec![],
            });
        }
        let bytes = body_bytes(req, state).await?;
        parse_json(&bytes).map(Json)
    }
}

/// Reads a whole request body: over the limit is 413, a client that stops sending before the
/// end is 408 (the body timeout of `web::server`).
pub async fn body_bytes<S: Send + Sync>(
    req: Request,
    state: &S,
) -> Result<axum::body::Bytes, Error> {
    axum::body::Bytes::from_request(req, state)
        .await
        .map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                Error::PayloadTooLarge
            } else if timed_out(&e) {
                Error::RequestTimeout
            } else {
                Error::BadRequest {
                    code: "unreadable_body",
                    message: e.body_text(),
                    fields: vec![],
                }
            }
        })
}

fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// Parses JSON, naming the offending field on failure. Text with control characters (NUL and
/// the like, see `domain::text`) is refused naming its field.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes)
        && let Some(path) = control_in(&value, String::new())
    {
        return Err(control_error(path));
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    match serde_path_to_error::deserialize::<_, T>(de) {
        Ok(v) => Ok(v),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            use serde_json::error::Category;
            // serde_json reports some type mismatches (a number where an enum goes) as syntax
            // errors; a body that parses as JSON has a data problem, not a syntax one.
            let is_json = serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok();
            match inner.classify() {
                Category::Syntax | Category::Eof | Category::Io if !is_json => {
                    Err(Error::BadRequest {
                        code: "malformed_json",
                        message: format!("the body is not valid JSON: {inner}"),
                        fields: vec![],
                    })
                }
                _ => Err(Error::Validation(vec![data_error(
                    &path,
                    &inner.to_string(),
                )])),
            }
        }
    }
}

/// The path (`items[2].description`) of the first string, or key, holding a control character.
fn control_in(value: &serde_json::Value, path: String) -> Option<String> {
    use crate::domain::text::has_forbidden_control;
    use serde_json::Value;
    match value {
        Value::String(s) => has_forbidden_control(s).then_some(path),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| control_in(v, format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let here = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if has_forbidden_control(k) {
                Some(here)
            } else {
                control_in(v, here)
            }
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => None,
    }
}

fn control_error(field: String) -> Error {
    Error::field(
        field,
        "invalid_characters",
        "contains control characters (such as NUL) that text may not hold",
    )
}

/// Refuses query parameters whose name or value holds a control character.
pub fn check_query_text(query: &str) -> Result<(), Error> {
    use crate::domain::text::has_forbidden_control;
    for (k, v) in form_urlencoded_parse(query) {
        if has_forbidden_control(&k) || has_forbidden_control(&v) {
            return Err(control_error(k.into_owned()));
        }
    }
    Ok(())
}

fn data_error(path: &str, msg: &str) -> FieldError {
    let msg = msg.split(" at line ").next().unwrap_or(msg).to_owned();
    let quoted = |prefix: &str| {
        msg.strip_prefix(prefix)
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned)
    };
    let join = |name: String| {
        if path == "." || path.is_empty() {
            name
        } else {
            format!("{path}.{name}")
        }
    };
    if let Some(name) = quoted("missing field `") {
        return FieldError::new(join(name), "required", "this field is required");
    }
    if let Some(name) = quoted("unknown field `") {
        // The path already ends at the unknown key.
        let field = if path.ends_with(&name) {
            path.to_owned()
        } else {
            join(name)
        };
        return FieldError::new(field, "unknown_field", msg);
    }
    let field = if path == "." {
        String::new()
    } else {
        path.to_owned()
    };
    let code = if msg.starts_with("unknown variant") {
        "unknown_value"
    } else {
        "invalid_value"
    };
    FieldError::new(field, code, msg)
}

/// Query parameters parsed strictly, naming the offending parameter.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        let q = parts.uri.query().unwrap_or("");
        check_query_text(q)?;
        let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(q));
        serde_path_to_error::deserialize::<_, T>(de)
            .map(Query)
            .map_err(|e| {
                let field = e.path().to_string();
                Error::Validation(vec![FieldError::new(
                    if field == "." { String::new() } else { field },
                    "invalid_parameter",
                    e.into_inner().to_string(),
                )])
            })
    }
}

fn form_urlencoded_parse(q: &str) -> url::form_urlencoded::Parse<'_> {
    url::form_urlencoded::parse(q.as_bytes())
}

/// Turns `limit` and `cursor` parameters into a page, refusing nonsense.
pub fn page(limit: Option<i64>, cursor: Option<&str>) -> Result<Page, Error> {
    let limit = limit.unwrap_or(Page::DEFAULT);
    if !(1..=Page::MAX).contains(&limit) {
        return Err(Error::field(
            "limit",
            "out_of_range",
            format!("limit must be between 1 and {}", Page::MAX),
        ));
    }
    let after = match cursor.filter(|c| !c.is_empty()) {
        Some(c) => Some(c.parse::<i64>().ok().filter(|v| *v > 0).ok_or_else(|| {
            Error::field(
                "cursor",
                "invalid_cursor",
                "use the next_cursor of a previous page",
            )
        })?),
        None => None,
    };
    Ok(Page { limit, after })
}

/// The signed-in user, checked on every request against the database (a disabled user's
/// token stops working at once).
pub struct Auth(pub Ctx);

impl FromRequestParts<AppState> for Auth {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let token = bearer(parts)?;
        let now = state.clock.now();
        let (user_id, family) = state.keys.verify(token, now).ok_or(Error::Unauthorized(
            "the access token is invalid or expired",
        ))?;
        let row = crate::store::sessions::active_user(&state.db, user_id, &family, now)
            .await?
            .ok_or(Error::Unauthorized(
                "the access token is invalid or expired",
            ))?;
        super::limits::api(state, user_id).await?;
        let actor: Actor = row.actor();
        Ok(Auth(Ctx {
            actor,
            now,
            ip: client_ip(parts),
            session: family,
        }))
    }
}

/// The Bearer token of a request.
pub fn bearer(parts: &Parts) -> Result<&str, Error> {
    parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or(Error::Unauthorized(
            "sign in and send the access token as a Bearer token",
        ))
}

/// The client's address as worked out from the connection and trusted proxies' headers.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub std::net::IpAddr);

pub fn client_ip(parts: &Parts) -> String {
    if let Some(ClientAddr(ip)) = parts.extensions.get::<ClientAddr>() {
        return ip.to_string();
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default()
}

/// The `If-Match` header as a version number, if present.
pub struct IfMatch(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Error> {
        let Some(v) = parts.headers.get(header::IF_MATCH) else {
            return Ok(IfMatch(None));
        };
        let s = v.to_str().unwrap_or("").trim();
        let s = s.strip_prefix("W/").unwrap_or(s).trim_matches('"');
        s.parse::<i64>()
            .map(|v| IfMatch(Some(v)))
            .map_err(|_| Error::BadRequest {
                code: "invalid_if_match",
                message: "If-Match must be the ETag of the record, e.g. \"3\"".into(),
                fields: vec![],
            })
    }
}

impl IfMatch {
    pub fn expected(&self, body: Option<i64>) -> Result<Expected, Error> {
        crate::store::expected(self.0, body)
    }
}

/// A numeric record id from the path. Anything else cannot name a record: 404.
pub struct IdPath(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for IdPath {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Error> {
        let axum::extract::Path(raw) =
            axum::extract::Path::<String>::from_request_parts(parts, state)
                .await
                .map_err(|_| Error::NotFound)?;
        raw.parse::<i64>().map(IdPath).map_err(|_| Error::NotFound)
    }
}

/// The caller's IP address, for the audit log ("" when unknown, as in in-process tests).
pub struct ClientIp(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(parts)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only parsed")]
    struct Body {
        name: String,
        items: Vec<Item>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only parsed")]
    struct Item {
        description: String,
        quantity: Option<i64>,
    }

    /// Arbitrary JSON values a few levels deep, with any text in strings and keys.
    fn json() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::Bool),
            any::<i64>().prop_map(Into::into),
            any::<String>().prop_map(serde_json::Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        // Any bytes at all: an answer, never a panic.
        #[test]
        fn json_bodies_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_json::<Body>(&bytes);
        }

        // Any JSON: accepted only when it has no control character anywhere, and refused
        // naming a path when it has one.
        #[test]
        fn json_text_with_control_characters_is_never_accepted(value in json()) {
            let bytes = serde_json::to_vec(&value).unwrap();
            let has_control = {
                fn any_control(v: &serde_json::Value) -> bool {
                    use crate::domain::text::has_forbidden_control as bad;
                    match v {
                        serde_json::Value::String(s) => bad(s),
                        serde_json::Value::Array(a) => a.iter().any(any_control),
                        serde_json::Value::Object(m) => {
                            m.iter().any(|(k, v)| bad(k) || any_control(v))
                        }
                        _ => false,
                    }
                }
                any_control(&value)
            };
            match parse_json::<serde_json::Value>(&bytes) {
                Ok(_) => prop_assert!(!has_control),
                Err(Error::Validation(f)) => {
                    prop_assert!(has_control);
                    prop_assert_eq!(f[0].code, "invalid_characters");
                }
                Err(other) => prop_assert!(false, "unexpected {:?}", other),
            }
        }

        // A control character in a known field is refused with that field's path.
        #[test]
        fn the_refusal_names_the_field(
            good in "[a-zа-я ]{0,10}",
            bad in "[a-z]{0,3}[\u{0}-\u{8}\u{b}\u{c}\u{e}-\u{1f}\u{7f}][a-z]{0,3}",
            at in 0usize..3,
        ) {
            let mut items: Vec<_> = (0..3)
                .map(|_| serde_json::json!({"description": good.clone()}))
                .collect();
            items[at]["description"] = serde_json::Value::String(bad);
            let body = serde_json::json!({"name": good, "items": items});
            match parse_json::<Body>(&serde_json::to_vec(&body).unwrap()) {
                Err(Error::Validation(f)) => {
                    prop_assert_eq!(&f[0].field, &format!("items[{at}].description"));
                }
                other => prop_assert!(false, "accepted: {:?}", other),
            }
        }

        // Query strings: any bytes, percent-escaped or not, never panic; text with a control
        // character is refused.
        #[test]
        fn query_strings_never_panic_and_refuse_controls(q in any::<String>()) {
            let decoded: Vec<(String, String)> = url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect();
            let has_control = decoded.iter().any(|(k, v)| {
                crate::domain::text::has_forbidden_control(k)
                    || crate::domain::text::has_forbidden_control(v)
            });
            prop_assert_eq!(check_query_text(&q).is_err(), has_control);
        }
    }
}
