// Sign-in, the dashboard, language, the request list and its 404, CSRF on sign-out,
// accessibility (axe) and screenshots: what a person sees in the browser.
//
// Every test makes its own users, customers and requests through the JSON API, with unique
// names, and its own browser context (cookies), so the tests run in any order or alone.

import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import {
  BASE_URL,
  SUBMIT,
  accessibleName,
  adminToken,
  assertNoPageProblems,
  axeCheck,
  closePage,
  createRequest,
  createSite,
  createUser,
  formatViolations,
  forms,
  launchBrowser,
  newPage,
  onPage,
  pathOf,
  screenshot,
  signIn,
  submit,
  unique,
  visit,
} from '../lib.mjs';

const CYRILLIC = /[А-Яа-яЁё]/;

let browser;
let token;

before(async () => {
  browser = await launchBrowser();
  token = await adminToken();
});

after(async () => {
  await browser?.close();
});

/** Runs fn on a new page of its own context; failures show the page; closes it after. */
async function withPage(viewport, fn) {
  const page = await newPage(browser, viewport);
  try {
    await onPage(page, async () => {
      await fn(page);
      assertNoPageProblems(page);
    });
  } finally {
    await closePage(page);
  }
}

/** A new user with the roles (staff by default); the e-mail and password are its own. */
async function newUser(roles = ['admin'], name = 'Анна Смирнова') {
  const tag = unique();
  const email = `e2e-${tag}@example.ru`;
  const password = `e2e password ${tag}`;
  const user = await createUser(token, { email, name, roles, password });
  return { ...user, email, password };
}

/** Matches an element's whole text (trimmed), so SR-2026-00001 does not match SR-2026-000012. */
function exactly(text) {
  return new RegExp(`^\\s*${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*$`);
}

async function htmlLang(page) {
  return page.evaluate(() => document.documentElement.getAttribute('lang'));
}

/** The one form with a password field, i.e. the sign-in form. */
async function loginForm(page) {
  const form = page.locator('form:has(input[name="password"])');
  assert.equal(await form.count(), 1, 'the page should have exactly one form with input[name="password"]');
  return form;
}

/** The sign-out form: method post, action /logout. */
async function logoutForm(page) {
  const found = (await forms(page)).filter((f) => f.action === '/logout');
  assert.equal(found.length, 1, `expected one form with action /logout, found ${JSON.stringify(found)}`);
  assert.equal(found[0].method, 'post', 'the sign-out form should use method="post"');
  return found[0];
}

/** The button that submits lang=VALUE in a form posting to /lang. */
async function langButton(page, value) {
  const langForm = (await forms(page)).find((f) => f.action === '/lang' && f.fields.includes('lang'));
  assert.ok(langForm, 'expected a form with action /lang and a field named "lang"');
  assert.equal(langForm.method, 'post', 'the language form should use method="post"');
  const button = page.locator(
    `button[name="lang"][value="${value}"], input[type="submit"][name="lang"][value="${value}"]`,
  );
  assert.ok((await button.count()) >= 1, `expected a button name="lang" value="${value}"`);
  const inLangForm = await button.first().evaluate((b) => new URL(b.form?.action ?? '', document.baseURI).pathname);
  assert.equal(inLangForm, '/lang', `the lang=${value} button should belong to the form posting to /lang`);
  return button.first();
}

describe('sign-in page', () => {
  test('GET /login: Russian page, a POST form with labelled e-mail and password, a CSRF field and a submit button', async () => {
    await withPage('desktop', async (page) => {
      await visit(page, '/login');
      assert.equal(await htmlLang(page), 'ru', '<html lang> of /login with no language chosen');
      const form = await loginForm(page);
      const how = await form.evaluate((f) => ({
        method: (f.getAttribute('method') || 'get').toLowerCase(),
        action: new URL(f.action, document.baseURI).pathname,
      }));
      assert.equal(how.method, 'post', 'the sign-in form must use method="post" (a GET would put the password in the URL)');
      assert.equal(how.action, '/login', 'the sign-in form should post to /login');

      const email = form.locator('input[name="email"]');
      assert.equal(await email.count(), 1, 'one input[name="email"] in the sign-in form');
      assert.ok(['email', 'text'].includes(await email.getAttribute('type')), 'input[name="email"] should be type="email" (or text)');
      assert.notEqual(await accessibleName(email), '', 'input[name="email"] needs a <label> (or aria-label); a placeholder is not a label');

      const password = form.locator('input[name="password"]');
      assert.equal(await password.getAttribute('type'), 'password', 'input[name="password"] should be type="password"');
      assert.notEqual(await accessibleName(password), '', 'input[name="password"] needs a <label> (or aria-label)');

      const csrf = form.locator('input[type="hidden"][name="_csrf"]');
      assert.equal(await csrf.count(), 1, 'one hidden input[name="_csrf"] in the sign-in form');
      const csrfValue = (await csrf.getAttribute('value')) ?? '';
      assert.ok(csrfValue.length >= 16, `the _csrf value should be a token of at least 16 characters, got ${JSON.stringify(csrfValue)}`);

      const button = form.locator(SUBMIT);
      assert.ok((await button.count()) >= 1, 'the sign-in form needs a submit button');
      assert.ok(await button.first().isVisible(), 'the submit button should be visible');
      assert.notEqual(await accessibleName(button.first()), '', 'the submit button needs a text');
    });
  });

  test('wrong password: /login again with a role="alert" message, the e-mail kept, the password not echoed; then the right one signs in', async () => {
    const user = await newUser(['office_manager']);
    const wrong = `wrong-${unique()}`;
    await withPage('desktop', async (page) => {
      await visit(page, '/login');
      let form = await loginForm(page);
      await form.locator('input[name="email"]').fill(user.email);
      await form.locator('input[name="password"]').fill(wrong);
      const response = await submit(page, form.locator(SUBMIT).first());
      assert.ok(response.status() < 500, `the failed sign-in answered ${response.status()}`);
      assert.equal(pathOf(page), '/login', 'a wrong password should leave the browser on /login');

      const alert = page.locator('[role="alert"]');
      assert.ok((await alert.count()) >= 1, 'a wrong password should show an element with role="alert"');
      assert.ok(await alert.first().isVisible(), 'the role="alert" element should be visible');
      const message = (await alert.first().innerText()).trim();
      assert.notEqual(message, '', 'the role="alert" element should say what went wrong');
      assert.match(message, CYRILLIC, `the error message should be in Russian, got ${JSON.stringify(message)}`);

      form = await loginForm(page);
      assert.equal(await form.locator('input[name="email"]').inputValue(), user.email, 'the e-mail should be kept in its field');
      assert.equal(await form.locator('input[name="password"]').inputValue(), '', 'the password field should be empty again');
      assert.ok(!(await page.content()).includes(wrong), 'the wrong password must not appear anywhere in the page');
      assert.equal(await form.locator('input[type="hidden"][name="_csrf"]').count(), 1, 'the form shown again needs its _csrf field');

      await form.locator('input[name="password"]').fill(user.password);
      await submit(page, form.locator(SUBMIT).first());
      assert.equal(pathOf(page), '/', 'the right password, typed into the form shown after the error, should lead to /');
    });
  });

  test('right password: redirect to / with an <h1> and a <nav> linking to /requests; the sign-out form posts to /logout and ends the session', async () => {
    const user = await newUser(['admin']);
    await withPage('desktop', async (page) => {
      await signIn(page, user.email, user.password);
      assert.equal(pathOf(page), '/', 'signing in should lead to the dashboard at /');
      assert.equal(await htmlLang(page), 'ru', '<html lang> of the dashboard');

      const h1 = page.locator('h1');
      assert.ok((await h1.count()) >= 1, 'the dashboard needs an <h1>');
      assert.notEqual((await h1.first().innerText()).trim(), '', 'the dashboard <h1> should have a text');

      assert.ok((await page.locator('nav').count()) >= 1, 'the dashboard needs a <nav>');
      const navLinks = await page.locator('nav a[href]').evaluateAll((as) => as.map((a) => new URL(a.href).pathname));
      assert.ok(navLinks.includes('/requests'), `the <nav> should link to /requests; its links go to ${JSON.stringify(navLinks)}`);

      const logout = await logoutForm(page);
      assert.ok(logout.hidden._csrf, 'the sign-out form needs a hidden _csrf field with a value');
      // The sign-out form's own submit button.
      const index = await page.locator(SUBMIT).evaluateAll((bs) =>
        bs.findIndex((b) => b.form && new URL(b.form.action, document.baseURI).pathname === '/logout'),
      );
      assert.ok(index >= 0, 'the form posting to /logout needs a submit button');
      await submit(page, page.locator(SUBMIT).nth(index));
      assert.notEqual(pathOf(page), '/', 'signing out should leave the dashboard');

      await page.goto(`${BASE_URL}/`);
      assert.equal(pathOf(page), '/login', 'after signing out, / should send the browser to /login');
    });
  });

  test('signed out: / and /requests send the browser to /login', async () => {
    await withPage('desktop', async (page) => {
      for (const path of ['/', '/requests']) {
        await page.goto(`${BASE_URL}${path}`);
        assert.equal(pathOf(page), '/login', `GET ${path} without a session should end on /login`);
        assert.equal(await page.locator('input[name="password"]').count(), 1, `GET ${path} signed out should show the sign-in form`);
      }
    });
  });
});

describe('language', () => {
  test('Russian by default; the /lang form switches to English and back, remembered in a cookie of this browser only', async () => {
    const user = await newUser(['admin']);
    await withPage('desktop', async (page) => {
      await visit(page, '/login');
      assert.equal(await htmlLang(page), 'ru', '<html lang> before any choice');
      const form = await loginForm(page);
      const ruButton = await accessibleName(form.locator(SUBMIT).first());
      const ruEmailLabel = await accessibleName(form.locator('input[name="email"]'));
      assert.match(ruButton, CYRILLIC, `the Russian submit button should be in Russian, got ${JSON.stringify(ruButton)}`);
      assert.match(ruEmailLabel, CYRILLIC, `the Russian e-mail label should be in Russian, got ${JSON.stringify(ruEmailLabel)}`);
      const cookiesBefore = await page.context().cookies(BASE_URL);

      await submit(page, await langButton(page, 'en'));
      assert.equal(pathOf(page), '/login', 'switching the language on /login should come back to /login');
      assert.equal(await htmlLang(page), 'en', '<html lang> after choosing English');
      const enForm = await loginForm(page);
      const enButton = await accessibleName(enForm.locator(SUBMIT).first());
      const enEmailLabel = await accessibleName(enForm.locator('input[name="email"]'));
      assert.doesNotMatch(enButton, CYRILLIC, `the English submit button has Russian text: ${JSON.stringify(enButton)}`);
      assert.doesNotMatch(enEmailLabel, CYRILLIC, `the English e-mail label has Russian text: ${JSON.stringify(enEmailLabel)}`);
      assert.notEqual(enButton, '', 'the English submit button needs a text');

      const cookiesAfter = await page.context().cookies(BASE_URL);
      const langCookie = cookiesAfter.find(
        (c) => /(^|[^a-z])en([^a-z]|$)/i.test(c.value) && !cookiesBefore.some((b) => b.name === c.name && b.value === c.value),
      );
      assert.ok(langCookie, `choosing English should set a cookie whose value contains "en"; cookies now: ${JSON.stringify(cookiesAfter.map((c) => `${c.name}=${c.value}`))}`);

      await page.reload();
      assert.equal(await htmlLang(page), 'en', '<html lang> after reloading /login');

      const other = await page.context().newPage();
      try {
        await other.goto(`${BASE_URL}/login`);
        assert.equal(await other.evaluate(() => document.documentElement.lang), 'en', 'a second tab of the same browser should be in English');
      } finally {
        await other.close();
      }

      // The choice belongs to this browser, not to the server: another one still gets Russian.
      await withPage('desktop', async (stranger) => {
        await visit(stranger, '/login');
        assert.equal(await htmlLang(stranger), 'ru', 'another browser (no cookies) should get Russian while this one has chosen English');
      });

      await signIn(page, user.email, user.password);
      assert.equal(await htmlLang(page), 'en', 'the dashboard after signing in should still be English');
      await submit(page, await langButton(page, 'ru'));
      assert.equal(pathOf(page), '/', 'switching the language on / should come back to /');
      assert.equal(await htmlLang(page), 'ru', '<html lang> after choosing Russian again');
      await visit(page, '/requests');
      assert.equal(await htmlLang(page), 'ru', '/requests after choosing Russian again');
    });

  });
});

describe('requests', () => {
  test('/requests: a <table> with header cells; requests made through the API are listed, each number linking to /requests/{id}', async () => {
    const site = await createSite(token, 'list');
    const tag = unique();
    const requests = [
      await createRequest(token, { subject: `Плановое ТО пожарной сигнализации ${tag}`, objectId: site.object.id }),
      await createRequest(token, { subject: `Проверка шлейфа ${tag}`, objectId: site.object.id, type: 'emergency' }),
    ];
    const user = await newUser(['admin']);
    await withPage('desktop', async (page) => {
      await signIn(page, user.email, user.password);
      await visit(page, '/requests');
      const table = page.locator('table');
      assert.ok((await table.count()) >= 1, '/requests should show the requests in a <table>');
      assert.ok((await table.first().locator('th').count()) >= 1, 'the table should have header cells (<th>)');

      for (const r of requests) {
        const link = page.locator('table a', { hasText: exactly(r.number) });
        assert.equal(await link.count(), 1, `one link with the request number ${r.number} in the table`);
        const href = await link.evaluate((a) => new URL(a.href).pathname);
        assert.equal(href, `/requests/${r.id}`, `the number ${r.number} should link to /requests/${r.id}`);
        const row = page.locator('table tr').filter({ has: page.locator('a', { hasText: exactly(r.number) }) });
        const rowText = await row.innerText();
        assert.ok(rowText.includes(r.subject), `the row of ${r.number} should show its subject ${JSON.stringify(r.subject)}; it reads ${JSON.stringify(rowText)}`);
      }

      const first = requests[0];
      const response = await submit(page, page.locator('table a', { hasText: exactly(first.number) }));
      assert.equal(pathOf(page), `/requests/${first.id}`, 'following the number should open the request');
      assert.equal(response.status(), 200, `GET /requests/${first.id} status`);
      const body = await page.locator('body').innerText();
      assert.ok(body.includes(first.number) && body.includes(first.subject), `the request page should show its number ${first.number} and subject`);
    });
  });

  test('GET /requests/999999: a 404 page showing the request id (X-Request-Id) in [data-request-id]', async () => {
    const user = await newUser(['admin']);
    await withPage('desktop', async (page) => {
      await signIn(page, user.email, user.password);
      const response = await visit(page, '/requests/999999', 404);
      const header = response.headers()['x-request-id'];
      assert.ok(header, 'the 404 answer should carry an X-Request-Id header');
      const idElement = page.locator('[data-request-id]');
      assert.equal(await idElement.count(), 1, 'the 404 page should have one element with data-request-id');
      assert.ok(await idElement.isVisible(), 'the [data-request-id] element should be visible');
      const text = (await idElement.innerText()).trim();
      assert.equal(text, header, 'the [data-request-id] element should show this answer\'s X-Request-Id, for quoting to support');
      assert.equal(await htmlLang(page), 'ru', '<html lang> of the 404 page');
      assert.ok((await page.locator('h1').count()) >= 1, 'the 404 page needs an <h1>');
    });
  });
});

describe('CSRF', () => {
  test('POST /logout without a _csrf field, or with a wrong one, is refused with 403 and the session stays', async () => {
    const user = await newUser(['engineer']);
    await withPage('desktop', async (page) => {
      await signIn(page, user.email, user.password);
      for (const body of ['', '_csrf=not-the-token']) {
        const status = await page.evaluate(
          (b) =>
            fetch('/logout', {
              method: 'POST',
              headers: { 'content-type': 'application/x-www-form-urlencoded' },
              body: b,
              redirect: 'manual',
              credentials: 'same-origin',
            }).then((r) => r.status),
          body,
        );
        assert.equal(
          status,
          403,
          `POST /logout with body ${JSON.stringify(body)} answered ${status === 0 ? 'a redirect (the sign-out was accepted)' : status}, expected 403`,
        );
      }
      // The refused requests' "Failed to load resource: 403" console lines are expected.
      page.problems.length = 0;
      await page.goto(`${BASE_URL}/`);
      assert.equal(pathOf(page), '/', 'after the refused sign-outs the user should still be signed in');
    });
  });
});

describe('accessibility (axe-core, WCAG 2 A and AA)', () => {
  for (const viewport of ['desktop', 'phone']) {
    test(`/login on ${viewport}: no serious or critical violations`, async () => {
      await withPage(viewport, async (page) => {
        await visit(page, '/login');
        const violations = await axeCheck(page);
        assert.equal(violations.length, 0, `axe on /login (${viewport}):\n${formatViolations(violations)}`);
      });
    });

    test(`/requests on ${viewport}: no serious or critical violations`, async () => {
      const site = await createSite(token, 'axe');
      await createRequest(token, { subject: 'Замена дымового извещателя в серверной', objectId: site.object.id });
      const user = await newUser(['admin']);
      await withPage(viewport, async (page) => {
        await signIn(page, user.email, user.password);
        await visit(page, '/requests');
        const violations = await axeCheck(page);
        assert.equal(violations.length, 0, `axe on /requests (${viewport}):\n${formatViolations(violations)}`);
      });
    });
  }
});

describe('screenshots (docs/screenshots/)', () => {
  for (const viewport of ['desktop', 'phone']) {
    for (const name of ['login', 'requests']) {
      test(`${name}-${viewport}.png, and the page fits the width without sideways scrolling`, async () => {
        let user;
        if (name === 'requests') {
          const site = await createSite(token, 'screenshot');
          // Subjects as people write them (these tests look for nothing by subject).
          await createRequest(token, { subject: 'Плановое ТО системы дымоудаления', objectId: site.object.id });
          await createRequest(token, { subject: 'Не работает оповещение на 3 этаже', objectId: site.object.id, type: 'emergency' });
          user = await newUser(['admin']);
        }
        await withPage(viewport, async (page) => {
          if (user) await signIn(page, user.email, user.password);
          await visit(page, `/${name}`);
          const path = await screenshot(page, `${name}-${viewport}`);
          assert.ok((await stat(path)).size > 1000, `${path} should be a real PNG`);
          const widths = await page.evaluate(() => ({
            content: document.documentElement.scrollWidth,
            viewport: window.innerWidth,
          }));
          assert.ok(
            widths.content <= widths.viewport,
            `/${name} is ${widths.content}px wide in a ${widths.viewport}px window: the page scrolls sideways (wrap wide tables in a scrolling container)`,
          );
        });
      });
    }
  }
});
