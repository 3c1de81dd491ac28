//! Signing in and out: the password and second-factor steps, recovery codes, the language
//! switch.

use super::*;

// ------------------------------------------------------------------ sign-in

#[derive(Template)]
#[template(path = "login.html")]
pub(super) struct LoginPage {
    l: Layout,
    error: Option<&'static str>,
    email: String,
    next: String,
}

pub(super) async fn login_form(
    State(s): State<AppState>,
    Language(t): Language,
    Extension(flags): Extension<PageFlags>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let (token, set) = pre_token(&s, &headers, flags);
    let page = LoginPage {
        l: Layout::new(t, token, None, "login", "/login"),
        error: None,
        email: String::new(),
        next: safe_next(q.get("next")),
    };
    with_cookie(render(&page), set)
}

#[derive(Template)]
#[template(path = "code.html")]
pub(super) struct CodePage {
    l: Layout,
    title: &'static str,
    error: Option<&'static str>,
    action: &'static str,
    mfa_token: String,
    next: String,
    qr_svg: Option<String>,
    secret: String,
}

#[derive(Template)]
#[template(path = "recovery.html")]
pub(super) struct RecoveryPage {
    l: Layout,
    codes: Vec<String>,
    next: String,
}

/// The cookie carrying freshly made recovery codes to the page that shows them.
pub(super) const CODES_COOKIE: &str = "ferum_codes";

pub(super) fn recovery_aad(user: UserId) -> String {
    format!("web.recovery_codes:{}", user.0)
}

/// The recovery codes made at enrolment, shown once: the cookie that brought them is
/// cleared, and the page is not kept by the browser's cache.
pub(super) async fn recovery_page(
    State(s): State<AppState>,
    Extension(flags): Extension<PageFlags>,
    v: Viewer,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let codes: Vec<String> = match (cookie(&headers, CODES_COOKIE), s.db.keys()) {
        (Some(sealed), Ok(keys)) => keys
            .decrypt(&recovery_aad(UserId(v.user.id)), sealed)
            .map(|plain| plain.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let page = RecoveryPage {
        l: Layout::signed_in(&v, "", "/login/recovery"),
        codes,
        next: safe_next(q.get("next")),
    };
    let mut r = render(&page);
    let h = r.headers_mut();
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    h.append(
        header::SET_COOKIE,
        set_cookie(CODES_COOKIE, "", Some(0), flags.https),
    );
    r
}

/// Signs the browser in: a session, its cookie, and on to `next`.
pub(super) async fn sign_in(
    s: &AppState,
    flags: PageFlags,
    user: UserId,
    ip: &str,
    action: &'static str,
    next: &str,
) -> Result<Response, Error> {
    let now = s.clock.now();
    let session = auth_api::start_session(s, user, ip, now, action).await?;
    let value = s
        .keys
        .issue_web(user, &session.family, now, s.security.refresh_ttl)?;
    let mut r = Redirect::to(next).into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            SESSION_COOKIE,
            &value,
            Some(s.security.refresh_ttl.num_seconds()),
            flags.https,
        ),
    );
    Ok(r)
}

pub(super) async fn login(
    State(s): State<AppState>,
    Language(t): Language,
    Extension(flags): Extension<PageFlags>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    FormFields(f): FormFields,
) -> Response {
    let field = |k: &str| f.get(k).cloned().unwrap_or_default();
    if !form_token_ok(&s, &headers, &field("_csrf")) {
        return forbidden(t);
    }
    let next = safe_next(f.get("next"));
    let (token, set) = pre_token(&s, &headers, flags);
    let email = field("email");
    let again = |error: &'static str, status: StatusCode| {
        let page = LoginPage {
            l: Layout::new(t, token.clone(), None, "login", "/login"),
            error: Some(error),
            email: email.trim().to_owned(),
            next: next.clone(),
        };
        with_cookie((status, render(&page)).into_response(), set.clone())
    };
    match auth_api::password_step(&s, &ip, &email, &field("password")).await {
        Ok(PasswordStep::Done(user)) => sign_in(&s, flags, user, &ip, "login", &next)
            .await
            .unwrap_or_else(|e| page_error(t, e)),
        Ok(PasswordStep::Mfa(MfaPurpose::Verify, mfa_token)) => {
            code_page(t, token, mfa_token, next, None)
        }
        Ok(PasswordStep::Mfa(MfaPurpose::Enroll, mfa_token)) => {
            enrol_page(&s, t, token, mfa_token, next, None).await
        }
        Err(Error::Unauthorized(_)) => again(t.t("auth.wrong"), StatusCode::UNAUTHORIZED),
        Err(Error::TooManyRequests { retry_after }) => with_retry_after(
            again(t.t("auth.too_many"), StatusCode::TOO_MANY_REQUESTS),
            retry_after,
        ),
        Err(e) => page_error(t, e),
    }
}

/// Tells a throttled browser when to try again, as the API does.
pub(super) fn with_retry_after(mut r: Response, seconds: i64) -> Response {
    r.headers_mut().insert(
        header::RETRY_AFTER,
        header::HeaderValue::from(seconds.max(1)),
    );
    r
}

/// The first-time set-up of the second factor: a new secret, its QR code, a code field.
pub(super) async fn enrol_page(
    s: &AppState,
    t: Tr,
    token: String,
    mfa_token: String,
    next: String,
    error: Option<&'static str>,
) -> Response {
    let now = s.clock.now();
    let Some((user, MfaPurpose::Enroll)) = s.keys.verify_mfa(&mfa_token, now) else {
        return expired(t, token);
    };
    let row = match users::find(&s.db, user).await {
        Ok(Some(r)) => r,
        Ok(None) => return expired(t, token),
        Err(e) => return page_error(t, e),
    };
    // After a wrong code the same secret stays, so the app's entry keeps working.
    let setup = match error {
        Some(_) => auth_api::pending_enrolment(s, user, &row.email)
            .await
            .transpose(),
        None => Some(auth_api::begin_enrolment(s, user, &row.email).await),
    };
    let setup = match setup {
        Some(Ok(x)) => x,
        Some(Err(e)) => return page_error(t, e),
        None => return expired(t, token),
    };
    let svg = setup
        .qr_svg
        .find("<svg")
        .map_or(setup.qr_svg.as_str(), |i| &setup.qr_svg[i..])
        .to_owned();
    render(&CodePage {
        l: Layout::new(t, token, None, "login", "/login"),
        title: t.t("auth.enrol.title"),
        error,
        action: "/login/enrol",
        mfa_token,
        next,
        qr_svg: Some(svg),
        secret: setup.secret,
    })
}

pub(super) fn expired(t: Tr, token: String) -> Response {
    let page = LoginPage {
        l: Layout::new(t, token, None, "login", "/login"),
        error: Some(t.t("auth.code.expired")),
        email: String::new(),
        next: "/".into(),
    };
    (StatusCode::UNAUTHORIZED, render(&page)).into_response()
}

/// A posted second-factor form: its language, form token, where to go next, the sign-in
/// token and the fields. Turned away with the 403 page unless the form token is this
/// browser's.
pub(super) struct SecondStep {
    t: Tr,
    token: String,
    next: String,
    mfa_token: String,
    f: HashMap<String, String>,
}

impl axum::extract::FromRequest<AppState> for SecondStep {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, s: &AppState) -> Result<Self, Response> {
        let (parts, body) = req.into_parts();
        let t = crate::web::session::tr_of(&parts);
        let headers = parts.headers.clone();
        let req = axum::extract::Request::from_parts(parts, body);
        let FormFields(f) = FormFields::from_request(req, s).await?;
        let field = |k: &str| f.get(k).cloned().unwrap_or_default();
        let token = field("_csrf");
        if !form_token_ok(s, &headers, &token) {
            return Err(forbidden(t));
        }
        Ok(SecondStep {
            t,
            next: safe_next(f.get("next")),
            mfa_token: field("mfa_token"),
            token,
            f,
        })
    }
}

pub(super) async fn login_code(
    State(s): State<AppState>,
    Extension(flags): Extension<PageFlags>,
    ClientIp(ip): ClientIp,
    SecondStep {
        t,
        token,
        next,
        mfa_token,
        f,
    }: SecondStep,
) -> Response {
    // An expired or foreign sign-in token starts over; any other refusal is about the code.
    if !matches!(
        s.keys.verify_mfa(&mfa_token, s.clock.now()),
        Some((_, MfaPurpose::Verify))
    ) {
        return expired(t, token);
    }
    let code = f.get("code").map_or("", |c| c.trim());
    let (error, status) = match auth_api::second_factor_step(&s, &ip, &mfa_token, code).await {
        Ok(Ok(user)) => {
            return sign_in(&s, flags, user, &ip, "login_mfa", &next)
                .await
                .unwrap_or_else(|e| page_error(t, e));
        }
        Ok(Err(locked)) => {
            let mut r = code_page(t, token, mfa_token, next, Some(t.t("auth.too_many")));
            *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            if let Some(retry) = locked.headers().get(header::RETRY_AFTER) {
                r.headers_mut().insert(header::RETRY_AFTER, retry.clone());
            }
            return r;
        }
        Err(Error::TooManyRequests { retry_after }) => {
            let mut r = code_page(t, token, mfa_token, next, Some(t.t("auth.too_many")));
            *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            return with_retry_after(r, retry_after);
        }
        Err(Error::Unauthorized(_)) => (t.t("auth.code.wrong"), StatusCode::UNAUTHORIZED),
        Err(e) => return page_error(t, e),
    };
    let mut r = code_page(t, token, mfa_token, next, Some(error));
    *r.status_mut() = status;
    r
}

/// The second-factor step of a sign-in: a code field, and what went wrong with the last one.
pub(super) fn code_page(
    t: Tr,
    token: String,
    mfa_token: String,
    next: String,
    error: Option<&'static str>,
) -> Response {
    render(&CodePage {
        l: Layout::new(t, token, None, "login", "/login"),
        title: t.t("auth.code.title"),
        error,
        action: "/login/2fa",
        mfa_token,
        next,
        qr_svg: None,
        secret: String::new(),
    })
}

pub(super) async fn login_enrol(
    State(s): State<AppState>,
    Extension(flags): Extension<PageFlags>,
    ClientIp(ip): ClientIp,
    SecondStep {
        t,
        token,
        next,
        mfa_token,
        f,
    }: SecondStep,
) -> Response {
    let field = |k: &str| f.get(k).cloned().unwrap_or_default();
    let now = s.clock.now();
    let Some((user, MfaPurpose::Enroll)) = s.keys.verify_mfa(&mfa_token, now) else {
        return expired(t, token);
    };
    match auth_api::finish_enrolment(&s, &ip, user, field("code").trim()).await {
        Ok(codes) => {
            let keys = match s.db.keys() {
                Ok(k) => k,
                Err(e) => return page_error(t, e),
            };
            let next_q: String = url::form_urlencoded::byte_serialize(next.as_bytes()).collect();
            let mut r = match sign_in(
                &s,
                flags,
                user,
                &ip,
                "login_mfa",
                &format!("/login/recovery?next={next_q}"),
            )
            .await
            {
                Ok(r) => r,
                Err(e) => return page_error(t, e),
            };
            // The codes go to the page that shows them once, by post/redirect/get: sealed
            // for this user in a short-lived cookie the page reads and clears.
            let sealed = keys.encrypt(&recovery_aad(user), &codes.join(" "));
            r.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(CODES_COOKIE, &sealed, Some(600), flags.https),
            );
            r
        }
        Err(Error::Unauthorized(_)) => {
            let mut r =
                enrol_page(&s, t, token, mfa_token, next, Some(t.t("auth.code.wrong"))).await;
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            r
        }
        Err(e) => page_error(t, e),
    }
}

pub(super) async fn logout(
    State(s): State<AppState>,
    Extension(flags): Extension<PageFlags>,
    Submitted { v, f: _ }: Submitted,
) -> Response {
    if let Err(e) = auth_api::end_session(&s, &v.ctx).await {
        return page_error(v.tr, e);
    }
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(SESSION_COOKIE, "", Some(0), flags.https),
    );
    r
}

/// Switches the language and remembers it for a year.
pub(super) async fn switch_lang(
    State(s): State<AppState>,
    Language(t): Language,
    Extension(flags): Extension<PageFlags>,
    headers: HeaderMap,
    FormFields(f): FormFields,
) -> Response {
    if !form_token_ok(&s, &headers, f.get("_csrf").map_or("", String::as_str)) {
        return forbidden(t);
    }
    let lang = f
        .get("lang")
        .and_then(|l| Lang::parse(l))
        .unwrap_or(Lang::Ru);
    let mut r = Redirect::to(&safe_next(f.get("next"))).into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(LANG_COOKIE, lang.code(), Some(365 * 24 * 3600), flags.https),
    );
    r
}
