//! The signed-in user's own notification settings: the language of their messages and the
//! channels they hear on, for every role. The Telegram chat is shown, not changed here: it
//! is linked by the bot, or by an administrator on the user's page.

use super::*;
use serde::Deserialize;

/// The settings form as posted. Checkboxes are sent only when ticked; the version is text
/// so that a broken one reads as a stale form rather than as no form at all.
#[derive(Default, Deserialize)]
struct PreferencesForm {
    #[serde(default)]
    version: String,
    #[serde(default)]
    lang: String,
    notify_email: Option<String>,
    notify_telegram: Option<String>,
}

impl PreferencesForm {
    /// The posted fields read as the form; fields it does not name (the token) are left out.
    fn of(f: &HashMap<String, String>) -> PreferencesForm {
        super::typed_form(f)
    }

    fn version(&self) -> i64 {
        self.version.trim().parse().unwrap_or(0)
    }
}

/// A language of messages as the form offers it.
pub struct LangChoice {
    pub code: &'static str,
    pub label: &'static str,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    l: Layout,
    name: String,
    email: String,
    telegram_linked: bool,
    langs: Vec<LangChoice>,
    notice: Option<&'static str>,
    /// A refusal that belongs to no field (a stale form).
    error: Option<&'static str>,
    /// `version`, `lang` and the ticked channels, as stored or as typed.
    form: FormState,
}

/// The settings as stored, as the form starts.
fn stored_form(u: &users::User) -> FormState {
    let mut form = FormState::default();
    form.set("version", u.version.to_string());
    form.set("lang", u.lang.clone());
    if u.notify_email {
        form.set("notify_email", "1");
    }
    if u.notify_telegram {
        form.set("notify_telegram", "1");
    }
    form
}

async fn account_view(
    s: &AppState,
    v: &Viewer,
    notice: Option<&'static str>,
    error: Option<&'static str>,
    posted: Option<FormState>,
) -> Response {
    let t = v.tr;
    let u = match users::get(&s.db, &v.ctx, UserId(v.user.id)).await {
        Ok(u) => u,
        Err(e) => return page_error(t, e),
    };
    let form = posted.unwrap_or_else(|| stored_form(&u));
    render(&AccountPage {
        l: Layout::signed_in(v, "account", "/account"),
        name: u.name,
        email: u.email,
        telegram_linked: u.telegram_chat_id.is_some(),
        langs: vec![
            LangChoice {
                code: "ru",
                label: t.t("account.lang.ru"),
            },
            LangChoice {
                code: "en",
                label: t.t("account.lang.en"),
            },
        ],
        notice,
        error,
        form,
    })
}

async fn account_page(
    State(s): State<AppState>,
    v: Viewer,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let notice = q.contains_key("done").then(|| v.tr.t("account.saved"));
    account_view(&s, &v, notice, None, None).await
}

/// Saves the user's own settings, based on the version the form was drawn from.
async fn account_save(State(s): State<AppState>, Submitted { v, f }: Submitted) -> Response {
    let t = v.tr;
    let posted = PreferencesForm::of(&f);
    let saved = users::update_own_preferences(
        &s.db,
        &v.ctx,
        crate::store::Expected::Body(posted.version()),
        posted.lang.trim(),
        posted.notify_email.is_some(),
        posted.notify_telegram.is_some(),
    )
    .await;
    let mut form = FormState::posted(&f);
    let (status, error) = match saved {
        Ok(_) => return Redirect::to("/account?done").into_response(),
        Err(Error::Validation(fields)) => {
            form.errors = field_errors(t, &fields);
            (StatusCode::UNPROCESSABLE_ENTITY, None)
        }
        Err(Error::Stale { current, .. }) => {
            // The choices stay, now based on the current version: saving again is a
            // deliberate choice.
            form.set("version", current.to_string());
            (StatusCode::CONFLICT, Some(t.t("account.stale")))
        }
        Err(e) => return page_error(t, e),
    };
    with_status(account_view(&s, &v, None, error, Some(form)).await, status)
}

/// The settings page, merged into the pages' router.
pub fn routes() -> Router<AppState> {
    use axum::routing::get;
    Router::new().route("/account", get(account_page).post(account_save))
}
