//! Browser sessions: a signed cookie naming a session family (revoked by the same rules as
//! API tokens), CSRF tokens, and the language choice.

use super::AppState;
use super::extract::client_ip;
use super::i18n::{Lang, Tr};
use crate::auth::secret_hash;
use crate::store::{Ctx, sessions, users::UserRow};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};

pub const SESSION_COOKIE: &str = "ferum_session";
pub const LANG_COOKIE: &str = "ferum_lang";
/// A random value for the double-submit CSRF check of the sign-in forms (no session yet).
pub const PRE_COOKIE: &str = "ferum_pre";

/// The value of cookie `name`, if sent.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` header value: HttpOnly, SameSite=Lax, Path=/, Secure behind HTTPS.
pub fn set_cookie(name: &str, value: &str, max_age: Option<i64>, secure: bool) -> HeaderValue {
    let mut c = cookie::Cookie::new(name.to_owned(), value.to_owned());
    c.set_http_only(true);
    c.set_same_site(cookie::SameSite::Lax);
    c.set_path("/");
    c.set_secure(secure);
    if let Some(s) = max_age {
        c.set_max_age(cookie::time::Duration::seconds(s));
    }
    HeaderValue::from_str(&c.to_string()).expect("cookie values are ASCII")
}

/// The CSRF token of a session: derived from its secret family, so it needs no storage.
pub fn csrf_for(family: &str) -> String {
    secret_hash(&format!("csrf:{family}"))
}

/// The language of this browser: its remembered choice, else the one its `Accept-Language`
/// prefers, else Russian.
pub fn lang_of(headers: &HeaderMap) -> Lang {
    cookie(headers, LANG_COOKIE)
        .and_then(Lang::parse)
        .or_else(|| {
            headers
                .get(axum::http::header::ACCEPT_LANGUAGE)
                .and_then(|h| h.to_str().ok())
                .and_then(Lang::from_accept_language)
        })
        .unwrap_or(Lang::Ru)
}

/// The language and time zone of a request's pages.
pub fn tr_of(parts: &Parts) -> Tr {
    Tr {
        lang: lang_of(&parts.headers),
        tz: parts
            .extensions
            .get::<super::pages::PageFlags>()
            .map_or(super::pages::DEFAULT_TZ, |f| f.tz),
    }
}

/// The language, as an extractor for pages anyone may see.
pub struct Language(pub Tr);

impl<S: Send + Sync> FromRequestParts<S> for Language {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Language(tr_of(parts)))
    }
}

/// A signed-in browser: who, their context for the store, the form token and language.
pub struct Viewer {
    pub ctx: Ctx,
    pub user: UserRow,
    pub csrf: String,
    pub tr: Tr,
}

impl Viewer {
    /// Whether the posted form token belongs to this session.
    pub fn csrf_ok(&self, token: &str) -> bool {
        crate::domain::totp::constant_time_eq(token.as_bytes(), self.csrf.as_bytes())
    }
}

/// The answer to a form without a valid token.
pub fn forbidden(tr: Tr) -> Response {
    (
        axum::http::StatusCode::FORBIDDEN,
        axum::response::Html(super::pages::error_page(
            tr,
            axum::http::StatusCode::FORBIDDEN,
            tr.t("error.csrf"),
        )),
    )
        .into_response()
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let tr = tr_of(parts);
        let to_login = || {
            let next = parts
                .uri
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_owned();
            let encoded: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
            Redirect::to(&format!("/login?next={encoded}")).into_response()
        };
        let now = state.clock.now();
        let Some((user, family)) =
            cookie(&parts.headers, SESSION_COOKIE).and_then(|c| state.keys.verify_web(c, now))
        else {
            return Err(to_login());
        };
        let row = match sessions::active_user(&state.db, user, &family, now).await {
            Ok(Some(row)) => row,
            Ok(None) => return Err(to_login()),
            Err(e) => return Err(e.into_response()),
        };
        let ctx = Ctx {
            actor: row.actor(),
            now,
            ip: client_ip(parts),
            session: family.clone(),
        };
        Ok(Viewer {
            ctx,
            user: row,
            csrf: csrf_for(&family),
            tr,
        })
    }
}
