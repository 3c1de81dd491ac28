//! The catalogue's pages (customers, sites, projects), driven through the router as a browser
//! would: forms with their token, errors next to the fields, the access matrix.

use crate::pages::{Browser, hidden, html, location};
use crate::support::*;
use axum::http::StatusCode;
use ferum::domain::access::Role;
use serde_json::json;

/// A signed-in browser for a user whose role needs no second factor.
async fn signed_in(app: &TestApp, u: &TestUser) -> Browser {
    let mut b = Browser::default();
    let r = b.sign_in(app, &u.email).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
    b
}

/// The id at the end of a redirect such as `/customers/12?saved`.
fn created_id(r: &Resp) -> i64 {
    location(r)
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("no id in {}", location(r)))
}

both! {
    async fn an_office_manager_creates_a_customer_through_the_form(app) {
        let om = app.user(&[Role::OfficeManager], None).await;
        let mut b = signed_in(&app, &om).await;
        let page = b.get(&app, "/customers").await;
        assert_eq!(page.status, StatusCode::OK, "{}", html(&page));
        assert!(html(&page).contains("<h1>Заказчики</h1>"));
        assert!(html(&page).contains("method=\"post\" action=\"/customers\""), "office managers may create customers");

        // A wrong INN: the error next to the field, the input kept, nothing created.
        let r = b.submit(&app, &page, "/customers", &[("name", "ООО Искра"), ("inn", "7707083894"), ("address", "Москва, ул. Ленина, 1"), ("contact_email", "boss@iskra.ru")]).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", html(&r));
        let text = html(&r);
        assert!(text.contains("<p class=\"field-error\" id=\"inn-error\">ИНН — 10 или 12 цифр с верными контрольными цифрами.</p>"), "{text}");
        assert!(text.contains("aria-invalid=\"true\" aria-describedby=\"inn-error\""), "{text}");
        assert!(text.contains("value=\"7707083894\"") && text.contains("value=\"ООО Искра\"") && text.contains("value=\"boss@iskra.ru\""), "{text}");
        assert!(text.contains("role=\"alert\""));
        assert_eq!(app.count("customers").await, 0);

        let inn = next_inn();
        let r = b.submit(&app, &page, "/customers", &[("name", "ООО Искра"), ("inn", &inn), ("address", "Москва, ул. Ленина, 1"), ("contact_name", "Иван Петров"), ("contact_email", "boss@iskra.ru"), ("contact_phone", "+7 495 123-45-67")]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
        let id = created_id(&r);
        assert_eq!(app.count("customers").await, 1);
        let shown = b.get(&app, location(&r)).await;
        assert_eq!(shown.status, StatusCode::OK);
        let text = html(&shown);
        assert!(text.contains("<h1>ООО Искра</h1>") && text.contains(&inn) && text.contains("Иван Петров") && text.contains("boss@iskra.ru") && text.contains("+7 495 123-45-67"), "{text}");
        assert!(text.contains("role=\"status\""), "the page says it was saved");
        assert!(text.contains(&format!("action=\"/customers/{id}\"")), "office managers may edit customers");
        // The list and its search find it.
        let list = b.get(&app, "/customers?q=%D0%B8%D1%81%D0%BA%D1%80%D0%B0").await;
        assert!(html(&list).contains(&format!("<a href=\"/customers/{id}\">ООО Искра</a>")), "{}", html(&list));
        let none = b.get(&app, "/customers?q=nothing-like-it").await;
        assert!(!html(&none).contains(&format!("href=\"/customers/{id}\"")));
        // The same INN again: refused with the reason next to the field.
        let r = b.submit(&app, &page, "/customers", &[("name", "ООО Искра-2"), ("inn", &inn)]).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", html(&r));
        assert!(html(&r).contains("id=\"inn-error\">Заказчик с таким ИНН уже есть."), "{}", html(&r));
        assert_eq!(app.count("customers").await, 1);
        // In English too.
        b.cookies.push(("ferum_lang".into(), "en".into()));
        let en = b.get(&app, &format!("/customers/{id}")).await;
        assert!(html(&en).contains("<h2>Edit the customer</h2>"), "{}", html(&en));
    }

    async fn a_stale_edit_is_refused_and_keeps_the_saved_data(app) {
        let w = app.world().await;
        let pm = app.user(&[Role::ProjectManager], None).await;
        let mut b = signed_in(&app, &pm).await;
        let path = format!("/customers/{}", w.customer);
        let page = b.get(&app, &path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", html(&page));
        let version = hidden(&page, "version");
        // Someone else saves first.
        let api = format!("/api/v1/customers/{}", w.customer);
        let current = app.get(&api, &w.admin).await;
        app.patch(&api, &w.admin, json!({"address": "Тверь, ул. Советская, 5", "version": current.body["version"]})).await.assert(StatusCode::OK);
        let inn = current.body["inn"].as_str().unwrap().to_owned();
        let r = b.submit(&app, &page, &path, &[("version", &version), ("name", "ООО Ромашка-Плюс"), ("inn", &inn), ("address", "")]).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", html(&r));
        let text = html(&r);
        assert!(text.contains("role=\"alert\">Пока вы редактировали, заказчика изменил кто-то другой."), "{text}");
        assert!(text.contains("<dd>Тверь, ул. Советская, 5</dd>"), "the saved values are shown: {text}");
        assert!(text.contains("value=\"ООО Ромашка-Плюс\""), "the typed values are kept");
        let after = app.get(&api, &w.admin).await;
        assert_eq!(after.body["name"], "ООО Ромашка");
        assert_eq!(after.body["address"], "Тверь, ул. Советская, 5");
        // Saving again from that form is a deliberate choice, and it works.
        let r = b.submit(&app, &r, &path, &[("version", &hidden(&r, "version")), ("name", "ООО Ромашка-Плюс"), ("inn", &inn), ("address", "Тверь, ул. Советская, 5")]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
        assert_eq!(app.get(&api, &w.admin).await.body["name"], "ООО Ромашка-Плюс");
    }

    async fn a_project_manager_sets_up_a_site_and_a_project(app) {
        let w = app.world().await;
        let pm = app.user(&[Role::ProjectManager], None).await;
        let mut b = signed_in(&app, &pm).await;
        let form = b.get(&app, &format!("/objects?customer={}&new=1", w.customer)).await;
        assert_eq!(form.status, StatusCode::OK, "{}", html(&form));
        assert!(html(&form).contains("<details class=\"card\" id=\"new\" open>"), "{}", html(&form));
        assert!(html(&form).contains(&format!("<option value=\"{}\" selected>ООО Ромашка</option>", w.customer)), "{}", html(&form));
        let engineer = format!("engineer_{}", w.engineer.id);
        assert!(html(&form).contains(&format!("name=\"{engineer}\"")));
        let customer = w.customer.to_string();
        // A blank name is refused next to the field; what was ticked stays ticked.
        let r = b.submit(&app, &form, "/objects", &[("customer_id", &customer), ("name", " "), ("kind", "sprinkler"), (&engineer, "1")]).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", html(&r));
        assert!(html(&r).contains("id=\"name-error\">Заполните это поле."), "{}", html(&r));
        assert!(html(&r).contains(&format!("name=\"{engineer}\" value=\"1\" checked")), "the ticked engineer stays ticked");
        let before = app.count("service_objects").await;
        let r = b.submit(&app, &form, "/objects", &[("customer_id", &customer), ("name", "Котельная"), ("address", "Тверь, ул. Заводская, 3"), ("kind", "sprinkler"), ("serial_number", "  SN-77 "), ("notes", "Ключ у охраны"), (&engineer, "1")]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
        assert_eq!(app.count("service_objects").await, before + 1);
        let object = created_id(&r);
        let page = b.get(&app, &format!("/objects/{object}")).await;
        let text = html(&page);
        assert!(text.contains("<dd>Спринклерное пожаротушение</dd>") && text.contains("<dd>SN-77</dd>") && text.contains("Ключ у охраны"), "{text}");
        assert!(text.contains("<li>Test engineer</li>"), "{text}");
        assert!(text.contains(&format!("<a href=\"/customers/{}\">ООО Ромашка</a>", w.customer)));
        let api = app.get(&format!("/api/v1/objects/{object}"), &w.admin).await;
        assert_eq!(api.body["engineers"], json!([w.engineer.id]));

        // A project with a date that ends before it starts: refused next to the field.
        let projects = b.get(&app, "/projects?new=1").await;
        assert!(html(&projects).contains(&format!("<option value=\"{}\">Test project_manager</option>", pm.id)), "{}", html(&projects));
        let manager = pm.id.to_string();
        let r = b.submit(&app, &projects, "/projects", &[("customer_id", &customer), ("name", "Договор 2027"), ("start_date", "2026-04-01"), ("end_date", "2026-03-31"), ("manager_id", &manager), ("contract_value", "1 250 000,50"), ("status", "planned")]).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", html(&r));
        assert!(html(&r).contains("id=\"end_date-error\">Окончание не может быть раньше начала."), "{}", html(&r));
        assert!(html(&r).contains("value=\"1 250 000,50\""));
        let r = b.submit(&app, &projects, "/projects", &[("customer_id", &customer), ("name", "Договор 2027"), ("start_date", "2026-04-01"), ("end_date", "31.03.2027"), ("manager_id", &manager), ("contract_value", "1 250 000,50"), ("status", "planned")]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
        let project = created_id(&r);
        let path = format!("/projects/{project}");
        let page = b.get(&app, &path).await;
        let text = html(&page);
        assert!(text.contains("<dd>01.04.2026</dd>") && text.contains("<dd>31.03.2027</dd>") && text.contains("<dd>Test project_manager</dd>"), "{text}");
        assert!(text.contains("<dd>1\u{202f}250\u{202f}000,50\u{a0}₽</dd>") && text.contains("Запланирован"), "{text}");
        assert!(text.contains(&format!("<option value=\"{object}\">Котельная — Тверь, ул. Заводская, 3</option>")), "{text}");

        // Add the new site with its scope; it shows on both pages.
        let object_id = object.to_string();
        let r = b.submit(&app, &page, &format!("{path}/objects"), &[("object_id", &object_id), ("scope", "ТО ежемесячно")]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
        let page = b.get(&app, &path).await;
        assert!(html(&page).contains(&format!("<td><a href=\"/objects/{object}\">Котельная</a></td>")), "{}", html(&page));
        assert!(html(&page).contains("<td>ТО ежемесячно</td>"));
        let site = b.get(&app, &format!("/objects/{object}")).await;
        assert!(html(&site).contains(&format!("<a href=\"{path}\">Договор 2027</a>")), "{}", html(&site));
        // Twice is refused.
        let r = b.submit(&app, &page, &format!("{path}/objects"), &[("object_id", &object_id), ("scope", "")]).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", html(&r));
        assert!(html(&r).contains("Этот объект уже есть в проекте."));
        // Another customer's site is refused with the reason, even from a forged form.
        let other = app.customer(&w.admin, "ООО Чужой", next_inn()).await;
        let foreign = app.object(&w.admin, other, "Чужой склад").await.to_string();
        assert!(!html(&page).contains("Чужой склад"), "only the customer's sites are offered");
        let r = b.submit(&app, &page, &format!("{path}/objects"), &[("object_id", &foreign), ("scope", "всё")]).await;
        assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", html(&r));
        assert!(html(&r).contains("<p class=\"field-error\" id=\"object_id-error\">Этот объект принадлежит другому заказчику.</p>"), "{}", html(&r));
        assert!(html(&r).contains("value=\"всё\""), "the scope typed is kept");
        let api = app.get(&format!("/api/v1/projects/{project}"), &w.admin).await;
        assert_eq!(api.body["objects"], json!([{"object_id": object, "scope": "ТО ежемесячно"}]));
        // Edit the project: active, with a new value.
        let version = hidden(&page, "version");
        let r = b.submit(&app, &page, &path, &[("version", &version), ("name", "Договор 2027"), ("start_date", "2026-04-01"), ("end_date", "2027-03-31"), ("manager_id", &manager), ("contract_value", "990000"), ("status", "active")]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
        let page = b.get(&app, &path).await;
        assert!(html(&page).contains("<dd>990\u{202f}000,00\u{a0}₽</dd>") && html(&page).contains("Действует"), "{}", html(&page));
        // And take the site out again.
        let r = b.submit(&app, &page, &format!("{path}/objects/{object}/remove"), &[]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
        let page = b.get(&app, &path).await;
        assert!(!html(&page).contains(&format!("<td><a href=\"/objects/{object}\">")), "{}", html(&page));
        assert_eq!(app.get(&format!("/api/v1/projects/{project}"), &w.admin).await.body["objects"], json!([]));
    }

    async fn an_engineer_sees_only_the_sites_of_their_requests_and_no_forms(app) {
        let w = app.world().await;
        let elsewhere = app.object(&w.admin, w.customer, "Гараж").await;
        app.started_request(&w).await;
        let mut b = signed_in(&app, &w.engineer).await;
        let list = b.get(&app, "/objects").await;
        assert_eq!(list.status, StatusCode::OK, "{}", html(&list));
        assert!(html(&list).contains(&format!("href=\"/objects/{}\"", w.object)), "{}", html(&list));
        assert!(!html(&list).contains(&format!("href=\"/objects/{elsewhere}\"")) && !html(&list).contains("Гараж"));
        assert!(!html(&list).contains("method=\"post\" action=\"/objects\""), "engineers create no sites");
        let r = b.get(&app, &format!("/objects/{elsewhere}")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        assert!(html(&r).contains("data-request-id>"), "the 404 page: {}", html(&r));
        let site = b.get(&app, &format!("/objects/{}", w.object)).await;
        assert_eq!(site.status, StatusCode::OK);
        assert!(!html(&site).contains(&format!("action=\"/objects/{}\"", w.object)), "no edit or archive form: {}", html(&site));
        for (path, form) in [("/customers", "method=\"post\" action=\"/customers\""), ("/projects", "method=\"post\" action=\"/projects\"")] {
            let page = b.get(&app, path).await;
            assert_eq!(page.status, StatusCode::OK, "{path}");
            assert!(!html(&page).contains(form), "{path}: {}", html(&page));
        }
        let project = b.get(&app, &format!("/projects/{}", w.project)).await;
        assert_eq!(project.status, StatusCode::OK, "{}", html(&project));
        assert!(!html(&project).contains(&format!("action=\"/projects/{}", w.project)), "{}", html(&project));
        let customer = b.get(&app, &format!("/customers/{}", w.customer)).await;
        assert_eq!(customer.status, StatusCode::OK);
        assert!(!html(&customer).contains(&format!("action=\"/customers/{}\"", w.customer)));
        // A forged form is refused by role, and creates nothing.
        let before = app.count("service_objects").await;
        let customer_id = w.customer.to_string();
        let r = b.submit(&app, &list, "/objects", &[("customer_id", &customer_id), ("name", "Своё"), ("kind", "other")]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", html(&r));
        assert_eq!(app.count("service_objects").await, before);
        // Changing a site they cannot see answers 404, as if it did not exist.
        let r = b.submit(&app, &list, &format!("/objects/{elsewhere}"), &[("version", "1"), ("action", "archive")]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }

    async fn a_client_sees_only_their_customers_records_and_no_forms(app) {
        let w = app.world().await;
        let obj = format!("/api/v1/objects/{}", w.object);
        let v = app.get(&obj, &w.admin).await.body["version"].clone();
        app.patch(&obj, &w.admin, json!({"engineers": [w.engineer.id], "version": v})).await.assert(StatusCode::OK);
        let other = app.customer(&w.admin, "ООО Чужой", next_inn()).await;
        let foreign = app.object(&w.admin, other, "Чужой склад").await;
        let foreign_project = app.project(&w.admin, other, &[foreign], "active").await;
        let client = app.user(&[Role::Client], Some(w.customer)).await;
        let mut b = signed_in(&app, &client).await;

        let customers = b.get(&app, "/customers").await;
        assert!(html(&customers).contains("ООО Ромашка") && !html(&customers).contains("ООО Чужой"), "{}", html(&customers));
        let objects = b.get(&app, "/objects").await;
        assert!(html(&objects).contains(&format!("href=\"/objects/{}\"", w.object)));
        assert!(!html(&objects).contains("Чужой склад") && !html(&objects).contains("ООО Чужой"), "{}", html(&objects));
        let projects = b.get(&app, "/projects").await;
        assert!(html(&projects).contains(&format!("href=\"/projects/{}\"", w.project)));
        assert!(!html(&projects).contains(&format!("href=\"/projects/{foreign_project}\"")));
        for page in [&customers, &objects, &projects] {
            assert!(!html(page).contains("id=\"new\""), "no create forms for clients: {}", html(page));
        }
        for path in [format!("/customers/{other}"), format!("/objects/{foreign}"), format!("/projects/{foreign_project}")] {
            assert_eq!(b.get(&app, &path).await.status, StatusCode::NOT_FOUND, "{path}");
        }
        // Their own records, read-only, and no staff names on the site.
        let site = b.get(&app, &format!("/objects/{}", w.object)).await;
        assert_eq!(site.status, StatusCode::OK);
        assert!(!html(&site).contains("Test engineer") && !html(&site).contains("Закреплённые инженеры"), "{}", html(&site));
        assert!(!html(&site).contains(&format!("action=\"/objects/{}\"", w.object)));
        let project = b.get(&app, &format!("/projects/{}", w.project)).await;
        assert_eq!(project.status, StatusCode::OK);
        assert!(html(&project).contains(&format!("href=\"/objects/{}\"", w.object)));
        assert!(!html(&project).contains("method=\"post\" action=\"/projects"), "{}", html(&project));
        let customer = b.get(&app, &format!("/customers/{}", w.customer)).await;
        assert_eq!(customer.status, StatusCode::OK);
        assert!(html(&customer).contains("boss@example.ru"), "their own contacts");
        assert!(!html(&customer).contains(&format!("action=\"/customers/{}\"", w.customer)));
        // A forged edit is refused and changes nothing.
        let inn = app.get(&format!("/api/v1/customers/{}", w.customer), &w.admin).await.body["inn"].as_str().unwrap().to_owned();
        let r = b.submit(&app, &customer, &format!("/customers/{}", w.customer), &[("version", "1"), ("name", "Взлом"), ("inn", &inn)]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", html(&r));
        assert_eq!(app.get(&format!("/api/v1/customers/{}", w.customer), &w.admin).await.body["name"], "ООО Ромашка");
    }

    async fn forms_without_their_token_are_refused_and_change_nothing(app) {
        let w = app.world().await;
        let pm = app.user(&[Role::ProjectManager], None).await;
        let mut b = signed_in(&app, &pm).await;
        let customer = w.customer.to_string();
        let object = w.object.to_string();
        let inn = next_inn();
        let (customers, objects) = (app.count("customers").await, app.count("service_objects").await);
        let r = b.post(&app, "/customers", &[("name", "ООО Без токена"), ("inn", &inn)]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = b.post(&app, &format!("/customers/{customer}"), &[("version", "1"), ("name", "Подмена")]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = b.post(&app, "/objects", &[("customer_id", &customer), ("name", "Без токена"), ("kind", "other")]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = b.post(&app, &format!("/objects/{object}"), &[("version", "1"), ("action", "archive")]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = b.post(&app, "/projects", &[("customer_id", &customer), ("name", "Без токена"), ("start_date", "2026-01-01")]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = b.post(&app, &format!("/projects/{}/objects/{object}/remove", w.project), &[]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = b.post(&app, &format!("/projects/{}/objects", w.project), &[("object_id", &object), ("_csrf", "forged")]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(app.count("customers").await, customers);
        assert_eq!(app.count("service_objects").await, objects);
        assert_eq!(app.get(&format!("/api/v1/customers/{customer}"), &w.admin).await.body["name"], "ООО Ромашка");
        assert_eq!(app.get(&format!("/api/v1/objects/{object}"), &w.admin).await.body["archived"], false);
        let p = app.get(&format!("/api/v1/projects/{}", w.project), &w.admin).await;
        assert_eq!(p.body["objects"], json!([{"object_id": w.object, "scope": ""}]));
        assert_eq!(app.count("projects").await, 1);
    }
}

both! {
    async fn sites_are_archived_and_lists_page_with_their_filters(app) {
        let w = app.world().await;
        for n in 0..52 {
            app.object(&w.admin, w.customer, &format!("Щит {n:02}")).await;
        }
        let other = app.customer(&w.admin, "ООО Чужой", next_inn()).await;
        app.object(&w.admin, other, "Чужой склад").await;
        let pm = app.user(&[Role::ProjectManager], None).await;
        let mut b = signed_in(&app, &pm).await;
        // 53 sites of the customer: a first page, and the next one keeps the filter.
        let first = b.get(&app, &format!("/objects?customer={}", w.customer)).await;
        assert_eq!(first.status, StatusCode::OK);
        let next = html(&first).split("rel=\"next\" href=\"").nth(1).expect("a next page").split('"').next().unwrap().replace("&#38;", "&").replace("&amp;", "&");
        assert!(next.starts_with(&format!("/objects?customer={}&cursor=", w.customer)), "{next}");
        let second = b.get(&app, &next).await;
        let count = |r: &Resp| html(r).matches("<td><a href=\"/objects/").count();
        assert_eq!(count(&first) + count(&second), 53);
        assert!(!html(&second).contains("rel=\"next\""));
        assert!(!html(&first).contains("Чужой склад") && !html(&second).contains("Чужой склад"));
        let found = b.get(&app, "/objects?q=%D1%89%D0%B8%D1%82+07").await;
        assert_eq!(count(&found), 1, "{}", html(&found));

        // Archiving a site: marked on its page, found by the archived filter, and back again.
        let path = format!("/objects/{}", w.object);
        let page = b.get(&app, &path).await;
        let version = hidden(&page, "version");
        let r = b.submit(&app, &page, &path, &[("version", &version), ("action", "archive")]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
        let page = b.get(&app, &path).await;
        assert!(html(&page).contains("value=\"unarchive\""), "{}", html(&page));
        assert!(html(&page).contains("Новые заявки на этот объект не принимаются."));
        let archived = b.get(&app, "/objects?archived=1").await;
        assert_eq!(count(&archived), 1);
        assert!(html(&archived).contains(&format!("href=\"{path}\"")));
        let active = b.get(&app, &format!("/objects?archived=0&customer={}", w.customer)).await;
        assert!(!html(&active).contains(&format!("href=\"{path}\"")));
        // A stale archive form is refused and says why.
        let r = b.submit(&app, &page, &path, &[("version", &version), ("action", "unarchive")]).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", html(&r));
        assert!(html(&r).contains("role=\"alert\">Пока вы редактировали, объект изменил кто-то другой."));
        let r = b.submit(&app, &page, &path, &[("version", &hidden(&page, "version")), ("action", "unarchive")]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
        assert_eq!(app.get(&format!("/api/v1/objects/{}", w.object), &w.admin).await.body["archived"], false);
    }
}

both! {
    async fn records_nothing_refers_to_are_deleted_and_the_rest_stay(app) {
        app.reconfigure(|s| s.security.mfa_roles = vec![]);
        let w = app.world().await;
        let mut admin = signed_in(&app, &w.admin).await;
        // A customer with nothing of its own goes, after the confirmation the button asks for.
        let lonely = app.customer(&w.admin, "ООО Пустышка", next_inn()).await;
        let page = admin.get(&app, &format!("/customers/{lonely}")).await;
        assert!(html(&page).contains(&format!("action=\"/customers/{lonely}/delete\"")), "{}", html(&page));
        assert!(html(&page).contains("data-confirm=\"Удалить заказчика безвозвратно?\""));
        let r = admin.submit(&app, &page, &format!("/customers/{lonely}/delete"), &[]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", html(&r));
        assert_eq!(location(&r), "/customers?deleted");
        assert!(html(&admin.get(&app, "/customers?deleted").await).contains("role=\"status\">Заказчик удалён."));
        assert_eq!(admin.get(&app, &format!("/customers/{lonely}")).await.status, StatusCode::NOT_FOUND);
        // A site with a request stays (archive it instead), and so does its customer.
        app.request(&w.admin, w.object, "maintenance").await;
        let page = admin.get(&app, &format!("/objects/{}", w.object)).await;
        let r = admin.submit(&app, &page, &format!("/objects/{}/delete", w.object), &[]).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", html(&r));
        assert!(html(&r).contains("role=\"alert\">На объект ссылаются заявки или проекты"), "{}", html(&r));
        assert_eq!(admin.get(&app, &format!("/objects/{}", w.object)).await.status, StatusCode::OK);
        let page = admin.get(&app, &format!("/customers/{}", w.customer)).await;
        let r = admin.submit(&app, &page, &format!("/customers/{}/delete", w.customer), &[]).await;
        assert_eq!(r.status, StatusCode::CONFLICT);
        assert!(html(&r).contains("У заказчика ещё есть объекты"), "{}", html(&r));
        // An office manager may edit but not delete: no button, and a forged post is refused.
        let office = app.user(&[Role::OfficeManager], None).await;
        let spare = app.customer(&w.admin, "ООО Запасной", next_inn()).await;
        let mut om = signed_in(&app, &office).await;
        let page = om.get(&app, &format!("/customers/{spare}")).await;
        assert!(!html(&page).contains("/delete\""), "{}", html(&page));
        let r = om.submit(&app, &page, &format!("/customers/{spare}/delete"), &[]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", html(&r));
        assert_eq!(admin.get(&app, &format!("/customers/{spare}")).await.status, StatusCode::OK);
        // Without the form's token nothing is deleted.
        let r = admin.post(&app, &format!("/customers/{spare}/delete"), &[]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert_eq!(admin.get(&app, &format!("/customers/{spare}")).await.status, StatusCode::OK);
        let audit: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log WHERE action = 'delete' AND entity = 'customer'").fetch_one(app.db.pool()).await.unwrap();
        assert_eq!(audit, 1, "the one deletion is audited");
    }
}
