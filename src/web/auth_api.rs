//! Sign-in: password, second factor (TOTP or recovery code), refresh-token rotation, logout.

use super::AppState;
use super::extract::{Auth, ClientIp, Json};
use super::problem::Problem;
use crate::auth::{MfaPurpose, verify_password};
use crate::domain::ids::UserId;
use crate::domain::totp;
use crate::error::{Error, Result};
use crate::store::{audit, mfa, sessions, users};
use axum::extract::{FromRequestParts, State};
use axum::http::{StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

/// Tokens of a new or refreshed session.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    /// Short-lived signed access token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// Opaque, single-use: exchange at `/auth/refresh` for new tokens.
    pub refresh_token: String,
}

/// The password was right; a second factor is needed.
#[derive(Serialize, utoipa::ToSchema)]
pub struct MfaChallenge {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfa_required: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mfa_enrollment_required: Option<bool>,
    /// Valid for five minutes, for the second-factor endpoints only.
    pub mfa_token: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum LoginResponse {
    Tokens(TokenResponse),
    Mfa(MfaChallenge),
}

/// Records an event about `user`'s own account (sign-ins, second factor) in `tx`.
async fn audit_user(
    tx: &mut crate::store::Tx,
    now: DateTime<Utc>,
    user: UserId,
    ip: &str,
    action: &'static str,
) -> Result<()> {
    audit::insert(
        tx,
        now,
        Some(user),
        ip,
        action,
        "user",
        Some(user.0),
        None,
        None,
    )
    .await
}

fn audit_event(
    s: &AppState,
    user: Option<UserId>,
    ip: &str,
    action: &'static str,
    details: Option<serde_json::Value>,
) -> impl std::future::Future<Output = Result<()>> + Send {
    let db = s.db.clone();
    let now = s.clock.now();
    let ip = ip.to_owned();
    async move {
        let mut tx = db.begin().await?;
        audit::insert(
            &mut tx,
            now,
            user,
            &ip,
            action,
            "user",
            user.map(|u| u.0),
            None,
            details.as_ref(),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Starts a session (audited as `action`); returns it with its refresh token.
pub(crate) async fn start_session(
    s: &AppState,
    user: UserId,
    ip: &str,
    now: DateTime<Utc>,
    action: &'static str,
) -> Result<sessions::NewSession> {
    let mut tx = s.db.begin().await?;
    let session = sessions::start(&mut tx, user, ip, now, s.security.refresh_ttl).await?;
    audit_user(&mut tx, now, user, ip, action).await?;
    tx.commit().await?;
    Ok(session)
}

/// Starts a session and answers with its tokens.
async fn session_tokens(
    s: &AppState,
    user: UserId,
    ip: &str,
    now: DateTime<Utc>,
    action: &'static str,
) -> Result<TokenResponse> {
    let session = start_session(s, user, ip, now, action).await?;
    Ok(TokenResponse {
        access_token: s.keys.issue(user, &session.family, now)?,
        token_type: "Bearer".into(),
        expires_in: s.keys.ttl.num_seconds(),
        refresh_token: session.refresh_token,
    })
}

/// Signs in with e-mail and password. Roles that need a second factor get an `mfa_token`
/// instead of tokens.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", security(()), request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 401, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn login(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(input): Json<LoginRequest>,
) -> Result<Response> {
    let now = s.clock.now();
    match password_step(&s, &ip, &input.email, &input.password).await? {
        PasswordStep::Done(id) => {
            let tokens = session_tokens(&s, id, &ip, now, "login").await?;
            Ok(axum::Json(LoginResponse::Tokens(tokens)).into_response())
        }
        PasswordStep::Mfa(purpose, mfa_token) => {
            let body = match purpose {
                MfaPurpose::Verify => MfaChallenge {
                    mfa_required: Some(true),
                    mfa_enrollment_required: None,
                    mfa_token,
                },
                MfaPurpose::Enroll => MfaChallenge {
                    mfa_required: None,
                    mfa_enrollment_required: Some(true),
                    mfa_token,
                },
            };
            Ok(axum::Json(LoginResponse::Mfa(body)).into_response())
        }
    }
}

/// What a right password leads to.
pub(crate) enum PasswordStep {
    /// Signed in: start a session.
    Done(UserId),
    /// A second factor is needed (to verify, or to set up first), with a five-minute token.
    Mfa(MfaPurpose, String),
}

/// Checks an e-mail and password under the sign-in throttles, auditing the outcome.
pub(crate) async fn password_step(
    s: &AppState,
    ip: &str,
    email: &str,
    password: &str,
) -> Result<PasswordStep> {
    let now = s.clock.now();
    let account = email.trim().to_lowercase();
    super::limits::before_login(s, ip, &account).await?;
    let user = users::find_by_email(&s.db, email).await?;
    let password = password.to_owned();
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let ok = tokio::task::spawn_blocking(move || match hash {
        Some(h) => verify_password(&password, &h),
        None => {
            verify_password(&password, crate::auth::dummy_hash());
            false
        }
    })
    .await
    .map_err(|e| Error::Internal(e.into()))?;
    let user = match user {
        Some(u) if ok && u.enabled != 0 => u,
        other => {
            let user = other.map(|u| UserId(u.id));
            let detail = serde_json::json!({ "email": account });
            audit_event(s, user, ip, "login_failed", Some(detail)).await?;
            super::limits::after_failure(s, ip, &account, user).await?;
            return Err(Error::Unauthorized("wrong e-mail or password"));
        }
    };
    let id = UserId(user.id);
    let state = mfa::state_of(&s.db, id).await?;
    let needs = user
        .actor()
        .roles
        .iter()
        .any(|r| s.security.mfa_roles.contains(r));
    if state.enabled() || needs {
        let purpose = if state.enabled() {
            MfaPurpose::Verify
        } else {
            MfaPurpose::Enroll
        };
        audit_event(s, Some(id), ip, "login_password_ok", None).await?;
        return Ok(PasswordStep::Mfa(
            purpose,
            s.keys.issue_mfa(id, purpose, now)?,
        ));
    }
    Ok(PasswordStep::Done(id))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MfaLogin {
    pub mfa_token: String,
    /// A six-digit TOTP code or an unused recovery code.
    pub code: String,
}

fn locked(retry: i64) -> Response {
    let mut r = super::problem::problem(
        StatusCode::TOO_MANY_REQUESTS,
        "mfa_locked",
        "too many wrong codes; wait for the next code and try again".into(),
        vec![],
        None,
    );
    if let Ok(v) = retry.to_string().parse() {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// Checks a TOTP or recovery code for a user, counting failures. `Ok(None)` means accepted.
async fn check_code(
    s: &AppState,
    user: UserId,
    secret: &str,
    code: &str,
    ip: &str,
) -> Result<Option<Response>> {
    let now = s.clock.now();
    let mut tx = s.db.begin().await?;
    let st = mfa::state(&mut tx, s.db.keys()?, user).await?;
    if let Some(retry) = st.locked_for(now) {
        return Ok(Some(locked(retry)));
    }
    if let Some(step) = totp::verify(secret, code, now.timestamp(), st.totp_last_step) {
        mfa::record_success(&mut tx, user, Some(step)).await?;
        tx.commit().await?;
        return Ok(None);
    }
    if mfa::use_recovery_code(&mut tx, user, code, now).await? {
        mfa::record_success(&mut tx, user, None).await?;
        audit_user(&mut tx, now, user, ip, "mfa_recovery_code_used").await?;
        tx.commit().await?;
        return Ok(None);
    }
    let now_locked = mfa::record_failure(&mut tx, user, st.totp_failures, now).await?;
    let action = if now_locked {
        "mfa_locked"
    } else {
        "mfa_failed"
    };
    audit_user(&mut tx, now, user, ip, action).await?;
    tx.commit().await?;
    Err(Error::Unauthorized("the code is wrong or was already used"))
}

/// Completes sign-in with a second factor.
#[utoipa::path(post, path = "/api/v1/auth/2fa", tag = "auth", security(()), request_body = MfaLogin,
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem), (status = 429, body = Problem)))]
pub async fn two_factor(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(input): Json<MfaLogin>,
) -> Result<Response> {
    let now = s.clock.now();
    let user = match second_factor_step(&s, &ip, &input.mfa_token, &input.code).await? {
        Ok(user) => user,
        Err(locked) => return Ok(locked),
    };
    Ok(axum::Json(session_tokens(&s, user, &ip, now, "login_mfa").await?).into_response())
}

/// Checks a second-factor code against a sign-in's `mfa_token`: the user, or the answer to give
/// when codes are locked out for now.
pub(crate) async fn second_factor_step(
    s: &AppState,
    ip: &str,
    mfa_token: &str,
    code: &str,
) -> Result<std::result::Result<UserId, Response>> {
    let now = s.clock.now();
    let (user, purpose) = s
        .keys
        .verify_mfa(mfa_token, now)
        .ok_or(Error::Unauthorized(
            "the second-factor token is invalid or expired",
        ))?;
    if purpose != MfaPurpose::Verify {
        return Err(Error::Unauthorized("set up the second factor first"));
    }
    let account = format!("mfa:{}", user.0);
    super::limits::before_login(s, ip, &account).await?;
    let row = users::find(&s.db, user)
        .await?
        .filter(|u| u.enabled != 0)
        .ok_or(Error::Unauthorized(
            "the second-factor token is invalid or expired",
        ))?;
    let st = mfa::state_of(&s.db, UserId(row.id)).await?;
    let secret = st
        .totp_secret
        .ok_or(Error::Unauthorized("the second factor is not set up"))?;
    match check_code(s, user, &secret, code, ip).await {
        Ok(Some(r)) => return Ok(Err(r)),
        Ok(None) => {}
        Err(e) => {
            super::limits::after_failure(s, ip, &account, Some(user)).await?;
            return Err(e);
        }
    }
    Ok(Ok(user))
}

/// Who may set up a second factor: a signed-in user, or one holding an enrolment token.
pub struct Enrolling {
    pub user: UserId,
    pub email: String,
    /// True when signed in through an enrolment token: confirming completes the sign-in.
    pub via_enrollment: bool,
}

impl FromRequestParts<AppState> for Enrolling {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let token = super::extract::bearer(parts)?;
        let now = state.clock.now();
        if let Some((user, MfaPurpose::Enroll)) = state.keys.verify_mfa(token, now) {
            let row = users::find(&state.db, user)
                .await?
                .filter(|u| u.enabled != 0)
                .ok_or(Error::Unauthorized("the token is invalid or expired"))?;
            return Ok(Enrolling {
                user,
                email: row.email,
                via_enrollment: true,
            });
        }
        let Auth(ctx) = Auth::from_request_parts(parts, state).await?;
        let row = users::find(&state.db, ctx.actor.user_id)
            .await?
            .ok_or(Error::NotFound)?;
        Ok(Enrolling {
            user: ctx.actor.user_id,
            email: row.email,
            via_enrollment: false,
        })
    }
}

/// A new TOTP secret, not active until confirmed with a code from it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TotpSetup {
    /// Base32 secret, for typing in by hand.
    pub secret: String,
    pub otpauth_uri: String,
    /// The URI as a QR code, an SVG image.
    pub qr_svg: String,
}

/// Starts setting up the second factor.
#[utoipa::path(post, path = "/api/v1/auth/2fa/setup", tag = "auth",
    responses((status = 200, body = TotpSetup), (status = 401, body = Problem), (status = 409, body = Problem)))]
pub async fn setup(State(s): State<AppState>, e: Enrolling) -> Result<axum::Json<TotpSetup>> {
    Ok(axum::Json(begin_enrolment(&s, e.user, &e.email).await?))
}

/// A new pending TOTP secret for `user`, with its URI and QR code.
pub(crate) async fn begin_enrolment(s: &AppState, user: UserId, email: &str) -> Result<TotpSetup> {
    use rand::RngCore;
    let mut random = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut random);
    let secret = totp::new_secret_base32(random);
    let setup = totp_setup(secret, email)?;
    let mut tx = s.db.begin().await?;
    if mfa::state(&mut tx, s.db.keys()?, user).await?.enabled() {
        return Err(Error::conflict(
            "mfa_already_enabled",
            "the second factor is already set up; disable it first",
        ));
    }
    mfa::set_pending(&mut tx, s.db.keys()?, user, &setup.secret).await?;
    tx.commit().await?;
    Ok(setup)
}

/// The secret being set up for `user`, if any (to show it again after a wrong code).
pub(crate) async fn pending_enrolment(
    s: &AppState,
    user: UserId,
    email: &str,
) -> Result<Option<TotpSetup>> {
    let mut tx = s.db.begin().await?;
    let st = mfa::state(&mut tx, s.db.keys()?, user).await?;
    tx.commit().await?;
    st.totp_pending.map(|p| totp_setup(p, email)).transpose()
}

/// A secret with its `otpauth://` URI and QR code.
fn totp_setup(secret: String, email: &str) -> Result<TotpSetup> {
    let uri = totp::otpauth_uri(&secret, email)
        .ok_or_else(|| Error::Internal(anyhow::anyhow!("bad TOTP secret")))?;
    let qr = qrcode::QrCode::new(uri.as_bytes())
        .map_err(|err| Error::Internal(anyhow::anyhow!("QR code: {err}")))?
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    Ok(TotpSetup {
        secret,
        otpauth_uri: uri,
        qr_svg: qr,
    })
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    pub code: String,
}

/// The second factor is on. Recovery codes are shown only this once.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TotpEnabled {
    pub recovery_codes: Vec<String>,
    /// Present when this completed a sign-in that required enrolment.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tokens: Option<TokenResponse>,
}

/// Confirms the new secret with a code from it and turns the second factor on.
#[utoipa::path(post, path = "/api/v1/auth/2fa/confirm", tag = "auth", request_body = CodeRequest,
    responses((status = 200, body = TotpEnabled), (status = 401, body = Problem), (status = 409, body = Problem)))]
pub async fn confirm(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    e: Enrolling,
    Json(input): Json<CodeRequest>,
) -> Result<axum::Json<TotpEnabled>> {
    let now = s.clock.now();
    let codes = finish_enrolment(&s, &ip, e.user, &input.code).await?;
    let tokens = if e.via_enrollment {
        Some(session_tokens(&s, e.user, &ip, now, "login_mfa").await?)
    } else {
        None
    };
    Ok(axum::Json(TotpEnabled {
        recovery_codes: codes,
        tokens,
    }))
}

/// Turns the pending secret on with a code from it; returns the ten recovery codes.
pub(crate) async fn finish_enrolment(
    s: &AppState,
    ip: &str,
    user: UserId,
    code: &str,
) -> Result<Vec<String>> {
    use rand::RngCore;
    let now = s.clock.now();
    let mut tx = s.db.begin().await?;
    let st = mfa::state(&mut tx, s.db.keys()?, user).await?;
    let pending = st
        .totp_pending
        .ok_or_else(|| Error::conflict("mfa_not_started", "start with /auth/2fa/setup"))?;
    let Some(step) = totp::verify(&pending, code, now.timestamp(), 0) else {
        return Err(Error::Unauthorized("the code is wrong or expired"));
    };
    let codes: Vec<String> = (0..10)
        .map(|_| {
            let mut r = [0u8; 16];
            rand::rngs::OsRng.fill_bytes(&mut r);
            totp::recovery_code(r)
        })
        .collect();
    mfa::activate(&mut tx, s.db.keys()?, user, &pending, step, &codes).await?;
    audit_user(&mut tx, now, user, ip, "mfa_enabled").await?;
    tx.commit().await?;
    Ok(codes)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableRequest {
    pub password: String,
    pub code: String,
}

/// Turns the second factor off (password and a current code).
#[utoipa::path(post, path = "/api/v1/auth/2fa/disable", tag = "auth", request_body = DisableRequest,
    responses((status = 204), (status = 401, body = Problem), (status = 429, body = Problem)))]
pub async fn disable(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Auth(ctx): Auth,
    Json(input): Json<DisableRequest>,
) -> Result<Response> {
    let user = ctx.actor.user_id;
    let row = users::find(&s.db, user).await?.ok_or(Error::NotFound)?;
    let password = input.password.clone();
    let hash = row.password_hash.clone();
    let ok = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .map_err(|e| Error::Internal(e.into()))?;
    if !ok {
        audit_event(&s, Some(user), &ip, "mfa_disable_failed", None).await?;
        return Err(Error::Unauthorized("wrong password or code"));
    }
    let st = mfa::state_of(&s.db, user).await?;
    let secret = st
        .totp_secret
        .ok_or_else(|| Error::conflict("mfa_not_enabled", "the second factor is not on"))?;
    if let Some(r) = check_code(&s, user, &secret, &input.code, &ip).await? {
        return Ok(r);
    }
    let mut tx = s.db.begin().await?;
    mfa::disable(&mut tx, user).await?;
    audit_user(&mut tx, ctx.now, user, &ip, "mfa_disabled").await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Exchanges a refresh token for new tokens. Each refresh token works once; presenting a used
/// one again ends every session that descends from the same sign-in.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", security(()), request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401, body = Problem)))]
pub async fn refresh(
    State(s): State<AppState>,
    ClientIp(ip): ClientIp,
    Json(input): Json<RefreshRequest>,
) -> Result<axum::Json<TokenResponse>> {
    let now = s.clock.now();
    match sessions::refresh(
        &s.db,
        &input.refresh_token,
        &ip,
        now,
        s.security.refresh_ttl,
    )
    .await?
    {
        sessions::Refresh::Rotated { user, session } => {
            let active = users::find(&s.db, user)
                .await?
                .is_some_and(|u| u.enabled != 0);
            if !active {
                return Err(Error::Unauthorized(
                    "the refresh token is invalid or expired",
                ));
            }
            Ok(axum::Json(TokenResponse {
                access_token: s.keys.issue(user, &session.family, now)?,
                token_type: "Bearer".into(),
                expires_in: s.keys.ttl.num_seconds(),
                refresh_token: session.refresh_token,
            }))
        }
        sessions::Refresh::Reused { user } => {
            audit_event(&s, Some(user), &ip, "token_reuse", None).await?;
            Err(Error::Unauthorized(
                "the refresh token is invalid or expired",
            ))
        }
        sessions::Refresh::Invalid => Err(Error::Unauthorized(
            "the refresh token is invalid or expired",
        )),
    }
}

/// Signs this session out: its access and refresh tokens stop working.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", responses((status = 204), (status = 401, body = Problem)))]
pub async fn logout(State(s): State<AppState>, Auth(ctx): Auth) -> Result<StatusCode> {
    end_session(&s, &ctx).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ends the session of `ctx` (audited).
pub(crate) async fn end_session(s: &AppState, ctx: &crate::store::Ctx) -> Result<()> {
    let mut tx = s.db.begin().await?;
    sessions::revoke_family(&mut tx, &ctx.session, ctx.now).await?;
    audit::record(
        &mut tx,
        ctx,
        "logout",
        "user",
        Some(ctx.actor.user_id.0),
        None,
        None,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
