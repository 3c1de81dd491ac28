// The real user flows in the browser: a client opens a request, a project manager assigns the
// engineer, the engineer works it on a phone and writes the act, the client sees it done; a
// director's sign-in with a TOTP second factor; one client cannot see another's request; a
// form without its CSRF token is refused; the request page in Russian and English; axe on the
// working pages. Screenshots: dashboard, request, report-editor and portal, desktop and phone.
//
// Every test makes its own users, customers and requests through the JSON API, with unique
// names, and its own browser contexts, so the tests run in any order or alone.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  ADMIN,
  SUBMIT,
  accessibleName,
  adminToken,
  api,
  assertNoPageProblems,
  axeCheck,
  base32Decode,
  closePage,
  createRequest,
  createSite,
  createUser,
  formatViolations,
  launchBrowser,
  newPage,
  onPage,
  pathOf,
  randomInn,
  screenshot,
  signIn,
  submit,
  tapSubmit,
  totpCode,
  totpStep,
  unique,
  visit,
} from '../lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));

/** The page texts, `key = text`, as the server has them (locales/ru.txt and en.txt). */
function catalog(lang) {
  const text = readFileSync(join(here, '..', '..', 'locales', `${lang}.txt`), 'utf8');
  const map = new Map();
  for (const line of text.split('\n')) {
    if (!line.trim() || line.trimStart().startsWith('#')) continue;
    const at = line.indexOf(' = ');
    if (at > 0) map.set(line.slice(0, at).trim(), line.slice(at + 3).trim());
  }
  return (key) => {
    if (!map.has(key)) throw new Error(`locales/${lang}.txt has no key ${key}`);
    return map.get(key);
  };
}
const RU = catalog('ru');
const EN = catalog('en');

const CYRILLIC = /[А-Яа-яЁё]/;
/** A phone at a client's site: 390×844 with a touch screen. */
const TOUCH = { hasTouch: true, isMobile: true };

/**
 * An amount as Ferum writes it in Russian, on the server (Money::display) and while typing
 * (app.js money()): narrow no-break spaces between thousands, a comma before the kopecks and a
 * no-break space before the sign. `rub('2 501,00')` is "2\u202f501,00\u00a0₽".
 */
function rub(digits) {
  return `${digits.replace(/ /g, '\u202f')}\u00a0₽`;
}

/** A string with its no-break spaces spelled out, for failure messages. */
function shown(text) {
  return JSON.stringify(text).replace(/[\u00a0\u202f\u2009]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Matches an element's whole text (trimmed), so SR-2026-00001 does not match SR-2026-000012. */
function exactly(text) {
  return new RegExp(`^\\s*${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s*$`);
}

/** Today's date in the company's time zone, as <input type="date"> holds it. */
function moscowToday() {
  return new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Moscow' }).format(new Date());
}

/** A full-page screenshot into docs/screenshots/<name>.png; fails unless it is a real PNG. */
async function shot(page, name) {
  const path = await screenshot(page, name);
  assert.ok((await stat(path)).size > 1000, `${path} should be a real PNG`);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

let browser;
let token;

before(async () => {
  browser = await launchBrowser();
  token = await adminToken();
});

after(async () => {
  await browser?.close();
});

/** A new user; the name, e-mail and password are its own. */
async function newUser(roles, name, customerId) {
  const tag = unique();
  const email = `e2e-flow-${tag}@example.ru`;
  const password = `e2e password ${tag}`;
  const fullName = `${name} ${tag.slice(-5)}`;
  const user = await createUser(token, { email, name: fullName, roles, password, customerId });
  return { ...user, email, password, name: fullName };
}

/** A request made through the API (by the administrator), optionally already assigned. */
function apiRequest({ subject, objectId, type = 'maintenance', assignedTo }) {
  const body = { type, subject, object_id: objectId };
  if (assignedTo !== undefined) body.assigned_to = assignedTo;
  return api('/api/v1/requests', { method: 'POST', token, body });
}

function apiGetRequest(id) {
  return api(`/api/v1/requests/${id}`, { token });
}

/**
 * Runs fn(open), where `open(viewport, options)` makes a page in a context of its own; at the
 * end every page must be free of script and console errors; all are closed afterwards.
 */
async function withPages(fn) {
  const pages = [];
  const open = async (viewport = 'desktop', options = {}) => {
    const page = await newPage(browser, viewport, options);
    pages.push(page);
    return page;
  };
  try {
    await fn(open);
    for (const page of pages) assertNoPageProblems(page);
  } finally {
    for (const page of pages) await closePage(page).catch(() => {});
  }
}

/** Runs a step as someone: a failure says who and shows the page they were on. */
async function as(who, page, fn) {
  try {
    return await onPage(page, fn);
  } catch (err) {
    if (err && typeof err === 'object' && 'message' in err) {
      const before = String(err.message);
      err.message = `[${who}] ${before}`;
      if (typeof err.stack === 'string') err.stack = err.stack.replace(before, err.message);
    }
    throw err;
  }
}

/** Waits (up to 5 s) for a locator's text to be exactly `expected`; fails with what it was. */
async function expectText(locator, expected, what) {
  const deadline = Date.now() + 5000;
  let actual;
  for (;;) {
    actual = ((await locator.first().textContent()) ?? '').trim();
    if (actual === expected || Date.now() > deadline) break;
    await sleep(50);
  }
  assert.equal(actual, expected, `${what}: expected ${shown(expected)}, the page shows ${shown(actual)}`);
}

/** The status badge of the request page. */
function statusBadge(page) {
  return page.locator('main .status').first();
}

/** The status values of the request page's move buttons, sorted. */
function moveValues(page, id) {
  return page
    .locator(`form[action="/requests/${id}/status"] button[name="status"]`)
    .evaluateAll((buttons) => buttons.map((b) => b.value).sort());
}

function moveButton(page, id, status) {
  return page.locator(`form[action="/requests/${id}/status"] button[name="status"][value="${status}"]`);
}

/** The row of a request list's table holding the link with this request number. */
function listRow(page, number) {
  return page.locator('table tr').filter({ has: page.locator('a', { hasText: exactly(number) }) });
}

/** The texts of the <dt> or <h2> elements in <main>. */
function texts(page, selector) {
  return page.locator(`main ${selector}`).evaluateAll((els) => els.map((e) => e.textContent.replace(/\s+/g, ' ').trim()));
}

/** The act editor's rows as typed: [{description, quantity, unit, price}]. */
function editorRows(page) {
  return page.locator('form[data-live-total] tbody tr').evaluateAll((rows) =>
    rows.map((tr) => {
      const value = (prefix) => tr.querySelector(`[name^="${prefix}_"]`)?.value ?? null;
      return { description: value('description'), quantity: value('quantity'), unit: value('unit'), price: value('price') };
    }),
  );
}

/** Types a row of the act editor key by key, as a person would (app.js reacts to each key). */
async function typeRow(page, index, row) {
  for (const [field, value] of Object.entries(row)) {
    const input = page.locator(`form[data-live-total] [name="${field}_${index}"]`);
    assert.equal(await input.count(), 1, `the act editor should have one field ${field}_${index}`);
    await input.fill('');
    await input.pressSequentially(value);
  }
}

function editorButton(page, action) {
  return page.locator(`form[data-live-total] button[name="action"][value="${action}"]`);
}

/** The hidden _csrf value of the sign-out form: this session's token. */
function sessionCsrf(page) {
  return page.locator('form[action="/logout"] input[name="_csrf"]').inputValue();
}

const ROW_1 = { description: 'Проверка шлейфов АПС, 2 этаж', quantity: '2', unit: 'шт', price: '1000,50' };
const ROW_2 = { description: 'Замена дымового извещателя ДИП-34А', quantity: '1', unit: 'шт', price: '500' };

describe('the whole job', () => {
  test('a client opens a request, a project manager assigns the engineer, the engineer works it on a phone and writes the act, the client sees it done', async () => {
    const site = await createSite(token, 'job');
    const tag = unique();
    const client = await newUser(['client'], 'Ольга Соколова', site.customer.id);
    // A project manager sees every request (access.rs: staff other than engineers read all)
    // and may assign (Requests: Update) and move them.
    const pm = await newUser(['project_manager'], 'Павел Морозов');
    const engineer = await newUser(['engineer'], 'Игорь Кузнецов');
    const subject = `Не срабатывает дымовой извещатель в серверной ${tag}`;
    const description = 'Извещатель на 2 этаже не реагирует на тестовый аэрозоль.';

    await withPages(async (open) => {
      let id;
      let number;
      let reportId;

      // ---- The client, at a desk, opens a request on their site.
      const clientPage = await open('desktop');
      await as('client, desktop', clientPage, async () => {
        await signIn(clientPage, client.email, client.password);
        assert.equal(pathOf(clientPage), '/', 'a client signing in should land on the dashboard /');
        await visit(clientPage, '/requests');
        const newLink = clientPage.locator('main a[href="/requests/new"]');
        assert.equal(await newLink.count(), 1, '/requests should link to /requests/new (the new-request form)');
        await submit(clientPage, newLink);
        assert.equal(pathOf(clientPage), '/requests/new');

        const form = clientPage.locator('form[method="post"][action="/requests/new"]');
        const options = await form.locator('select[name="object_id"] option').evaluateAll((os) =>
          os.filter((o) => o.value).map((o) => ({ value: o.value, label: o.textContent.trim() })),
        );
        assert.deepEqual(
          options.map((o) => o.value),
          [String(site.object.id)],
          `the client's site list should hold exactly their one object ${site.object.id} (${site.object.name}); it offers ${JSON.stringify(options)}`,
        );
        assert.ok(options[0].label.includes(site.object.name), `the site option should read ${JSON.stringify(site.object.name)}, got ${JSON.stringify(options[0].label)}`);

        // Sent without choosing the site: the error stands next to that field, the text stays.
        await form.locator('[name="subject"]').fill(subject);
        await form.locator('[name="description"]').fill(description);
        const refused = await submit(clientPage, form.locator(SUBMIT));
        assert.equal(refused.status(), 422, 'the new-request form without a site should answer 422');
        const select = clientPage.locator('select[name="object_id"]');
        const error = clientPage.locator('#object_id-error');
        assert.ok(await error.isVisible(), 'an error should be shown next to the site field (#object_id-error)');
        assert.equal((await error.innerText()).trim(), RU('field.required'), 'the site field\'s error text');
        assert.equal(await select.getAttribute('aria-invalid'), 'true', 'the site select should be aria-invalid');
        assert.equal(await select.getAttribute('aria-describedby'), 'object_id-error', 'the site select should point at its error (aria-describedby)');
        assert.equal(await clientPage.locator('[name="subject"]').inputValue(), subject, 'the subject should be kept after the refused form');
        assert.equal(await clientPage.locator('[name="description"]').inputValue(), description, 'the description should be kept after the refused form');

        await select.selectOption(String(site.object.id));
        await clientPage.locator('select[name="type"]').selectOption('maintenance');
        const created = await submit(clientPage, clientPage.locator('form[method="post"][action="/requests/new"]').locator(SUBMIT));
        const match = pathOf(clientPage).match(/^\/requests\/(\d+)$/);
        assert.ok(match, `the new request should open at /requests/{id}, the browser is on ${pathOf(clientPage)}`);
        assert.equal(created.status(), 200, 'the new request\'s page status');
        id = Number(match[1]);

        const saved = await apiGetRequest(id);
        number = saved.number;
        assert.equal(saved.subject, subject, 'the API\'s subject of the new request');
        assert.equal(saved.description, description, 'the API\'s description of the new request');
        assert.equal(saved.object_id, site.object.id, 'the new request\'s object');
        assert.equal(saved.customer_id, site.customer.id, 'the new request\'s customer (filled from the object)');
        assert.equal(saved.project_id, site.project.id, 'the new request\'s project (the object\'s active project)');
        assert.equal(saved.status, 'open');
        assert.equal(saved.type, 'maintenance');

        const h1 = (await clientPage.locator('h1').innerText()).trim();
        assert.ok(h1.includes(number) && h1.includes(subject), `the request page's <h1> should show ${number} and the subject, it reads ${JSON.stringify(h1)}`);
        await expectText(statusBadge(clientPage), RU('status.open'), 'the new request\'s status');
        assert.deepEqual(await moveValues(clientPage, id), ['cancelled'], 'a client may only cancel their open request: one move button, status=cancelled');
        assert.equal(await clientPage.locator('select[name="assigned_to"]').count(), 0, 'a client should not get the assign form');
        assert.equal(await clientPage.locator(`form[action="/requests/${id}/report"]`).count(), 0, 'a client should not get the "write the act" button');

        await visit(clientPage, '/');
        const openCount = clientPage.locator('ul.counts a[href="/requests?status=open"] .n');
        assert.equal(await openCount.count(), 1, 'the dashboard should count open requests, linking to /requests?status=open');
        assert.equal((await openCount.innerText()).trim(), '1', 'the client\'s dashboard should count their one open request');
        await shot(clientPage, 'dashboard-desktop');
      });

      // ---- The project manager assigns the engineer on the request page.
      const pmPage = await open('desktop');
      await as('project manager, desktop', pmPage, async () => {
        await signIn(pmPage, pm.email, pm.password);
        await visit(pmPage, `/requests/${id}`);
        const form = pmPage.locator(`form[action="/requests/${id}/assign"]`);
        assert.equal(await form.count(), 1, `a project manager should get the assign form (posting to /requests/${id}/assign) on an open request`);
        const select = form.locator('select[name="assigned_to"]');
        const labels = await select.locator('option').allTextContents();
        assert.ok(labels.some((l) => l.trim() === engineer.name), `the engineer ${JSON.stringify(engineer.name)} should be offered in the assign list`);
        assert.ok(!labels.some((l) => l.includes(pm.name) || l.includes(client.name)), 'only engineers should be offered in the assign list');
        await select.selectOption({ label: engineer.name });
        const assigned = await submit(pmPage, form.locator(SUBMIT));
        assert.equal(pathOf(pmPage), `/requests/${id}`, 'assigning should come back to the request page');
        assert.equal(assigned.status(), 200, 'the request page after assigning');
        assert.equal(await pmPage.locator('main [role="alert"]').count(), 0, 'assigning should show no error');
        assert.equal((await apiGetRequest(id)).assigned_to, engineer.id, 'the API\'s assigned_to after assigning');
        const details = await pmPage.locator('dl.details').innerText();
        assert.ok(details.includes(engineer.name), `the details should name the engineer ${engineer.name}: ${JSON.stringify(details)}`);
        assert.equal(
          await pmPage.locator('select[name="assigned_to"] option:checked').innerText(),
          engineer.name,
          'the assign list should now have the engineer selected',
        );
        assert.deepEqual(await moveValues(pmPage, id), ['cancelled', 'in_progress'], 'a project manager\'s moves on an open request');
        await shot(pmPage, 'request-desktop');
      });

      // ---- The engineer, on a phone at the site, starts the work and writes the act.
      const engPage = await open('phone', TOUCH);
      const dialogs = [];
      engPage.on('dialog', (d) => {
        dialogs.push(d.message());
        d.accept();
      });
      await as('engineer, phone', engPage, async () => {
        await signIn(engPage, engineer.email, engineer.password);
        assert.equal(pathOf(engPage), '/', 'the engineer should land on the dashboard');
        await shot(engPage, 'dashboard-phone');

        await visit(engPage, '/requests');
        const link = engPage.locator('table a', { hasText: exactly(number) });
        assert.equal(await link.count(), 1, `the engineer's list should have one link ${number} (assigned to them)`);
        await tapSubmit(engPage, link);
        assert.equal(pathOf(engPage), `/requests/${id}`);
        assert.deepEqual(await moveValues(engPage, id), ['in_progress'], 'the assigned engineer\'s moves on an open request: start work only');
        await expectText(moveButton(engPage, id, 'in_progress'), RU('move.in_progress'), 'the start button');

        const started = await tapSubmit(engPage, moveButton(engPage, id, 'in_progress'));
        assert.equal(pathOf(engPage), `/requests/${id}`, 'starting the work should come back to the request page');
        assert.equal(started.status(), 200);
        await expectText(statusBadge(engPage), RU('status.in_progress'), 'the status after starting');
        const inWork = await apiGetRequest(id);
        assert.equal(inWork.status, 'in_progress', 'the API\'s status after starting');
        assert.ok(inWork.actual_start, 'starting the work should set actual_start');

        // Completing by hand, without a submitted act, is refused and changes nothing.
        assert.deepEqual(await moveValues(engPage, id), ['completed'], 'the engineer\'s moves on a request in work');
        const early = await tapSubmit(engPage, moveButton(engPage, id, 'completed'));
        assert.equal(early.status(), 409, 'completing without a submitted act should answer 409');
        assert.ok(await engPage.locator('main [role="alert"]').isVisible(), 'the refused completion should show an alert');
        await expectText(statusBadge(engPage), RU('status.in_progress'), 'the status after the refused completion');
        assert.equal((await apiGetRequest(id)).status, 'in_progress', 'the API\'s status after the refused completion');

        await visit(engPage, `/requests/${id}`);
        await shot(engPage, 'request-phone');

        const write = engPage.locator(`form[action="/requests/${id}/report"]`).locator(SUBMIT);
        assert.equal(await write.count(), 1, 'the engineer should get the "write the act" button');
        await expectText(write, RU('report.write'), 'the "write the act" button');
        await tapSubmit(engPage, write);
        const reportMatch = pathOf(engPage).match(/^\/reports\/(\d+)$/);
        assert.ok(reportMatch, `"write the act" should open /reports/{id}; the browser is on ${pathOf(engPage)}`);
        reportId = Number(reportMatch[1]);

        const workDate = await engPage.locator('input[name="work_date"]').inputValue();
        assert.equal(workDate, moscowToday(), 'a new act\'s work date should be today (Moscow)');
        assert.deepEqual(await editorRows(engPage), [{ description: '', quantity: '', unit: '', price: '' }], 'a new act should start with one empty row');

        const total = engPage.locator('form[data-live-total] output[data-total]');
        const amount = (n) => engPage.locator('form[data-live-total] tbody tr').nth(n).locator('output[data-amount]');

        await typeRow(engPage, 0, ROW_1);
        await expectText(amount(0), rub('2 001,00'), 'the live amount of row 1 (2 × 1000,50) while typing');
        await expectText(total, rub('2 001,00'), 'the live total with row 1');

        await tapSubmit(engPage, editorButton(engPage, 'add'));
        assert.equal(pathOf(engPage), `/reports/${reportId}`);
        assert.deepEqual(
          await editorRows(engPage),
          [ROW_1, { description: '', quantity: '', unit: '', price: '' }],
          '"add a row" should keep row 1 as typed and add an empty row',
        );
        await typeRow(engPage, 1, ROW_2);
        await expectText(amount(1), rub('500,00'), 'the live amount of row 2 (1 × 500)');
        await expectText(total, rub('2 501,00'), 'the live total of both rows (2 001,00 + 500,00)');

        await tapSubmit(engPage, editorButton(engPage, 'remove_1'));
        assert.deepEqual(await editorRows(engPage), [ROW_1], '"remove row 2" should leave row 1 only, as typed');
        await tapSubmit(engPage, editorButton(engPage, 'add'));
        assert.equal((await editorRows(engPage)).length, 2, '"add a row" after removing one: two rows');
        await typeRow(engPage, 1, ROW_2);
        await expectText(total, rub('2 501,00'), 'the live total after adding row 2 back');

        const savedPage = await tapSubmit(engPage, editorButton(engPage, 'save'));
        assert.equal(pathOf(engPage), `/reports/${reportId}`, 'saving should come back to the act');
        assert.equal(savedPage.status(), 200, 'the act after saving');
        assert.equal(await engPage.locator('main [role="alert"]').count(), 0, 'saving should show no error');
        assert.deepEqual(
          (await editorRows(engPage)).map((r) => r.description),
          [ROW_1.description, ROW_2.description],
          'the saved act should have both rows',
        );
        // The server's own amounts, written the same way as the live ones.
        await expectText(amount(0), rub('2 001,00'), 'the saved amount of row 1 (from the server)');
        await expectText(amount(1), rub('500,00'), 'the saved amount of row 2 (from the server)');
        await expectText(total, rub('2 501,00'), 'the saved total (from the server)');
        const draft = await api(`/api/v1/reports/${reportId}`, { token });
        assert.equal(draft.status, 'draft', 'the act after saving');
        assert.equal(draft.total, '2501.00', 'the API\'s total of the saved act');
        assert.equal(draft.items.length, 2, 'the API\'s items of the saved act');
        assert.equal(draft.engineer_id, engineer.id, 'the act\'s engineer');
        await shot(engPage, 'report-editor-phone');
      });

      // ---- The project manager looks over the draft act at a desk.
      await as('project manager, desktop', pmPage, async () => {
        await visit(pmPage, `/reports/${reportId}`);
        assert.equal(await pmPage.locator('form[data-live-total]').count(), 1, 'a project manager may edit a draft act: the editor');
        await expectText(pmPage.locator('output[data-total]'), rub('2 501,00'), 'the draft act\'s total on the desktop');
        await shot(pmPage, 'report-editor-desktop');
      });

      // ---- The engineer submits the act; that completes the request.
      await as('engineer, phone', engPage, async () => {
        await visit(engPage, `/reports/${reportId}`);
        await tapSubmit(engPage, editorButton(engPage, 'submit'));
        assert.deepEqual(dialogs, [RU('report.submit.confirm')], 'submitting the act should ask once for confirmation, with the catalogue\'s question');
        assert.equal(pathOf(engPage), `/requests/${id}`, 'submitting the act should lead to the request page');
        await expectText(statusBadge(engPage), RU('status.completed'), 'the request\'s status after submitting the act');
        const open = engPage.locator(`main a[href="/reports/${reportId}"]`);
        assert.equal(await open.count(), 1, 'the request page should link to its act');
        await expectText(open, RU('report.open'), 'the link to the act');
        assert.equal(await engPage.locator(`form[action="/requests/${id}/report"]`).count(), 0, 'no "write the act" button once there is an act');
        const done = await apiGetRequest(id);
        assert.equal(done.status, 'completed', 'the API\'s status after submitting the act');
        assert.equal(done.report_id, reportId, 'the request should be linked to the act');
        assert.ok(done.completed_at, 'completed_at should be set');
        assert.equal((await api(`/api/v1/reports/${reportId}`, { token })).status, 'submitted', 'the act after submitting');
      });

      // ---- The client sees it done and reads the act.
      await as('client, desktop', clientPage, async () => {
        await visit(clientPage, '/requests');
        const row = listRow(clientPage, number);
        assert.equal(await row.count(), 1, `the client's list should have a row for ${number}`);
        await expectText(row.locator('.status'), RU('status.completed'), `the status of ${number} in the client's list`);
        await shot(clientPage, 'portal-desktop');

        await submit(clientPage, row.locator('a', { hasText: exactly(number) }));
        assert.equal(pathOf(clientPage), `/requests/${id}`);
        await expectText(statusBadge(clientPage), RU('status.completed'), 'the request\'s status as the client sees it');
        assert.deepEqual(await moveValues(clientPage, id), [], 'a client has no moves on a completed request');
        const act = clientPage.locator(`main a[href="/reports/${reportId}"]`);
        assert.equal(await act.count(), 1, 'the client should see the link to the act');
        const actPage = await submit(clientPage, act);
        assert.equal(actPage.status(), 200, 'the act as the client sees it');
        assert.equal(await clientPage.locator('main form').count(), 0, 'the submitted act should be read-only for the client (no form)');
        assert.equal(await clientPage.locator('main input').count(), 0, 'the submitted act should have no input fields');
        const body = await clientPage.locator('main').innerText();
        assert.ok(body.includes(ROW_1.description) && body.includes(ROW_2.description), 'the act should list both rows');
        await expectText(clientPage.locator('main strong'), rub('2 501,00'), 'the act\'s total as the client sees it');
      });

      // ---- The same list on the client's phone.
      const clientPhone = await open('phone', TOUCH);
      await as('client, phone', clientPhone, async () => {
        await signIn(clientPhone, client.email, client.password);
        await visit(clientPhone, '/requests');
        await expectText(listRow(clientPhone, number).locator('.status'), RU('status.completed'), `the status of ${number} on the client's phone`);
        await shot(clientPhone, 'portal-phone');
      });

      // ---- Staff close the request.
      await as('project manager, desktop', pmPage, async () => {
        await visit(pmPage, `/requests/${id}`);
        assert.deepEqual(await moveValues(pmPage, id), ['closed', 'in_progress'], 'a project manager\'s moves on a completed request');
        await submit(pmPage, moveButton(pmPage, id, 'closed'));
        await expectText(statusBadge(pmPage), RU('status.closed'), 'the status after closing');
        assert.equal((await apiGetRequest(id)).status, 'closed', 'the API\'s status after closing');
      });
    });
  });
});

describe('act editor redraws', () => {
  // After "add a row", "remove row N" or a refused save the server draws the form again from
  // the posted rows; the total printed under them must not contradict them. Today it shows
  // the act's last SAVED total (report_view in src/web/pages.rs renders `r.total` also for
  // posted rows, and app.js recomputes only on input), e.g. "0,00 ₽" under a 2 001,00 row.
  test('the total under redrawn rows agrees with them (or is "—"), after add, remove and a refused save', async () => {
    const site = await createSite(token, 'redraw');
    const engineer = await newUser(['engineer'], 'Роман Егоров');
    const request = await apiRequest({ subject: `Перезарядка огнетушителей ${unique()}`, objectId: site.object.id, assignedTo: engineer.id });
    const report = await api('/api/v1/reports', { method: 'POST', token, body: { request_id: request.id, work_date: moscowToday(), items: [] } });
    const consistent = (rowsSum) => ['—', rub(rowsSum)];

    await withPages(async (open) => {
      const page = await open('desktop');
      await as('engineer', page, async () => {
        await signIn(page, engineer.email, engineer.password);
        await visit(page, `/reports/${report.id}`);
        const total = async () => ((await page.locator('form[data-live-total] output[data-total]').textContent()) ?? '').trim();
        const check = async (after, rowsSum) => {
          const rows = JSON.stringify(await editorRows(page));
          const shownTotal = await total();
          assert.ok(
            consistent(rowsSum).includes(shownTotal),
            `after ${after} the editor shows the rows ${rows} (together ${shown(rub(rowsSum))}) under the total ${shown(shownTotal)}; expected ${consistent(rowsSum).map(shown).join(' or ')}`,
          );
        };

        await typeRow(page, 0, ROW_1);
        await expectText(page.locator('output[data-total]'), rub('2 001,00'), 'the live total of row 1');
        await submit(page, editorButton(page, 'add'));
        await check('"add a row" (nothing saved yet)', '2 001,00');

        await typeRow(page, 1, ROW_2);
        await submit(page, editorButton(page, 'save'));
        await expectText(page.locator('output[data-total]'), rub('2 501,00'), 'the saved total');
        await submit(page, editorButton(page, 'remove_1'));
        await check('"remove row 2" (not saved)', '2 001,00');

        await submit(page, editorButton(page, 'add'));
        await typeRow(page, 1, { description: 'Ошибочная строка', quantity: '0', unit: 'шт', price: '10' });
        const refused = await submit(page, editorButton(page, 'save'));
        assert.equal(refused.status(), 422, 'saving a row with quantity 0 should be refused with 422');
        await check('a refused save (row 2 has quantity 0)', '2 001,00');
      });
    });
  });
});

describe('second factor', () => {
  test('a director enrols a TOTP second factor at sign-in, gets 10 recovery codes, and later signs in with a fresh code (a used one is refused)', async () => {
    // RFC 6238 appendix B (SHA-1, T = 59 s): the helper computes what authenticator apps do.
    assert.equal(totpCode('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', totpStep(59), 8), '94287082', 'totpCode() against RFC 6238\'s test vector');
    // .ci/e2e.sh starts ferum with FERUM_MFA_ROLES=director.
    const director = await newUser(['director'], 'Дмитрий Волков');

    await withPages(async (open) => {
      const page = await open('desktop');
      await as('director', page, async () => {
        const passwordStep = async () => {
          await visit(page, '/login');
          const form = page.locator('form:has(input[name="password"])');
          await form.locator('input[name="email"]').fill(director.email);
          await form.locator('input[name="password"]').fill(director.password);
          return submit(page, form.locator(SUBMIT).first());
        };
        const codeForm = (action) => page.locator(`form[action="${action}"]`);

        // ---- First sign-in: the password, then setting up the app.
        const enrol = await passwordStep();
        assert.equal(enrol.status(), 200, 'the right password of a director (FERUM_MFA_ROLES=director) should lead to the enrolment page');
        assert.equal(
          (await page.locator('h1').innerText()).trim(),
          RU('auth.enrol.title'),
          'a director without a second factor should be asked to set one up (is ferum started with FERUM_MFA_ROLES=director?)',
        );
        assert.equal(await codeForm('/login/enrol').count(), 1, 'the enrolment form should post to /login/enrol');
        assert.ok(await page.locator('.qr svg').isVisible(), 'the enrolment page should show the QR code as an <svg>');
        const secret = (await page.locator('code.secret').innerText()).trim();
        assert.match(secret, /^[A-Z2-7]+=*$/, `the key in <code class="secret"> should be base32, got ${JSON.stringify(secret)}`);
        assert.ok(base32Decode(secret).length >= 16, `the key should hold at least 128 bits, it has ${base32Decode(secret).length} bytes`);
        const codeInput = codeForm('/login/enrol').locator('input[name="code"]');
        assert.notEqual(await accessibleName(codeInput), '', 'the code field needs a label');
        assert.equal(await codeInput.getAttribute('autocomplete'), 'one-time-code');

        // A wrong code: the same page again with an alert, the same key.
        const now = totpStep();
        const valid = [now - 1, now, now + 1].map((s) => totpCode(secret, s));
        const wrong = ['000000', '111111', '222222'].find((c) => !valid.includes(c));
        await codeInput.fill(wrong);
        const refused = await submit(page, codeForm('/login/enrol').locator(SUBMIT));
        assert.equal(refused.status(), 401, 'a wrong enrolment code should answer 401');
        await expectText(page.locator('[role="alert"]'), RU('auth.code.wrong'), 'the alert after a wrong enrolment code');
        assert.equal((await page.locator('code.secret').innerText()).trim(), secret, 'after a wrong code the same key should stay (the app already has it)');

        const firstStep = totpStep();
        await codeForm('/login/enrol').locator('input[name="code"]').fill(totpCode(secret, firstStep));
        const recovery = await submit(page, codeForm('/login/enrol').locator(SUBMIT));
        assert.equal(recovery.status(), 200, 'the right enrolment code should show the recovery codes');
        await expectText(page.locator('h1'), RU('auth.recovery.title'), 'the page after enrolling');
        const codes = (await page.locator('ul.codes li').allInnerTexts()).map((c) => c.trim());
        assert.equal(codes.length, 10, `10 recovery codes should be shown, got ${JSON.stringify(codes)}`);
        assert.equal(new Set(codes).size, 10, `the recovery codes should all differ: ${JSON.stringify(codes)}`);
        for (const c of codes) assert.match(c, /^[A-Z2-9]{4}(-[A-Z2-9]{4}){3}$/, `a recovery code looks like ABCD-EFGH-JKLM-NPQR, got ${JSON.stringify(c)}`);

        assert.equal(pathOf(page), '/login/recovery', 'the codes are shown by a page of their own (post/redirect/get)');
        // Reloading does not post the code again, and does not show the codes a second time.
        const reloaded = await page.reload();
        assert.equal(reloaded.status(), 200, 'reloading the recovery page');
        assert.equal(await page.locator('ul.codes li').count(), 0, 'the recovery codes are shown once: a reload shows none');
        await expectText(page.locator('main [role="status"]'), RU('auth.recovery.gone'), 'the recovery page after a reload');

        const next = page.locator('main a', { hasText: RU('auth.recovery.continue') });
        assert.equal(await next.count(), 1, 'the recovery codes page should have a Continue link');
        await submit(page, next);
        assert.equal(pathOf(page), '/', 'Continue should lead to / (the dashboard), signed in');
        await expectText(page.locator('h1'), RU('dashboard.hello').replace('{}', director.name), 'the director\'s dashboard');

        // ---- Sign out.
        await submit(page, page.locator('form[action="/logout"]').locator(SUBMIT));
        assert.equal(pathOf(page), '/login', 'signing out should lead to /login');
        await visit(page, '/login');

        // ---- Later: the password, then a code. Each code works once, so wait for the next one.
        const wait = (firstStep + 1) * 30_000 - Date.now() + 250;
        if (wait > 0) await sleep(wait);
        const challenge = await passwordStep();
        assert.equal(challenge.status(), 200);
        await expectText(page.locator('h1'), RU('auth.code.title'), 'a director with a second factor should be asked for a code');
        assert.equal(await codeForm('/login/2fa').count(), 1, 'the code form should post to /login/2fa');
        assert.equal(await page.locator('code.secret, .qr svg').count(), 0, 'the code page should not show the key or a QR code again');

        // The code used to enrol is still within the clock-drift window, but was used: refused.
        await codeForm('/login/2fa').locator('input[name="code"]').fill(totpCode(secret, firstStep));
        const replay = await submit(page, codeForm('/login/2fa').locator(SUBMIT));
        assert.equal(replay.status(), 401, 'the code already used to enrol should be refused (401)');
        await expectText(page.locator('[role="alert"]'), RU('auth.code.wrong'), 'the alert after a used code');
        assert.notEqual(pathOf(page), '/', 'a used code must not sign in');

        const secondStep = totpStep();
        assert.ok(secondStep > firstStep, 'the test should be in a later time step than the enrolment');
        await codeForm('/login/2fa').locator('input[name="code"]').fill(totpCode(secret, secondStep));
        const signedIn = await submit(page, codeForm('/login/2fa').locator(SUBMIT));
        assert.equal(pathOf(page), '/', 'a fresh code should sign the director in and lead to /');
        assert.equal(signedIn.status(), 200);
        await expectText(page.locator('h1'), RU('dashboard.hello').replace('{}', director.name), 'the director\'s dashboard after the second sign-in');
      });
    });
  });
});

describe('access between clients', () => {
  test('client B gets the 404 page for client A\'s request, and B\'s list and search leave it out', async () => {
    const tag = unique();
    const siteA = await createSite(token, 'client A');
    const siteB = await createSite(token, 'client B');
    const clientA = await newUser(['client'], 'Анна Клиент-А', siteA.customer.id);
    const clientB = await newUser(['client'], 'Борис Клиент-Б', siteB.customer.id);
    const requestA = await createRequest(token, { subject: `Течь спринклера на складе ${tag}`, objectId: siteA.object.id });
    const requestB = await createRequest(token, { subject: `Плановое ТО огнетушителей ${tag}`, objectId: siteB.object.id });

    await withPages(async (open) => {
      // The page exists: client A sees it.
      const pageA = await open('desktop');
      await as('client A', pageA, async () => {
        await signIn(pageA, clientA.email, clientA.password);
        await visit(pageA, `/requests/${requestA.id}`, 200);
      });

      const pageB = await open('desktop');
      await as('client B', pageB, async () => {
        await signIn(pageB, clientB.email, clientB.password);
        const response = await visit(pageB, `/requests/${requestA.id}`, 404);
        const idElement = pageB.locator('[data-request-id]');
        assert.equal(await idElement.count(), 1, 'the 404 page should have one [data-request-id]');
        assert.ok(await idElement.isVisible(), '[data-request-id] should be visible');
        assert.equal((await idElement.innerText()).trim(), response.headers()['x-request-id'], '[data-request-id] should show this answer\'s X-Request-Id');
        const html = await pageB.content();
        assert.ok(!html.includes(requestA.number) && !html.includes(requestA.subject), 'the 404 page must not reveal the other client\'s request number or subject');

        await visit(pageB, '/requests');
        assert.equal(await pageB.locator('table a', { hasText: exactly(requestB.number) }).count(), 1, `client B's own request ${requestB.number} should be listed`);
        assert.equal(await pageB.locator(`a[href="/requests/${requestA.id}"]`).count(), 0, `client B's list must not link to client A's request ${requestA.id}`);
        assert.ok(!(await pageB.content()).includes(requestA.number), `client B's list must not mention ${requestA.number}`);

        for (const q of [requestA.number, tag]) {
          await visit(pageB, `/requests?q=${encodeURIComponent(q)}`);
          const html = await pageB.content();
          assert.ok(!html.includes(requestA.subject) && !html.includes(`/requests/${requestA.id}"`), `client B's search for ${JSON.stringify(q)} must not find client A's request`);
        }

        await visit(pageB, '/requests/new');
        const objects = await pageB.locator('select[name="object_id"] option').evaluateAll((os) => os.map((o) => o.value).filter(Boolean));
        assert.deepEqual(objects, [String(siteB.object.id)], 'client B\'s new-request form should offer only B\'s own site');

        // Nor can B act on it: a move posted with B's own valid token is a 404, and nothing changes.
        await visit(pageB, '/requests');
        const csrf = await sessionCsrf(pageB);
        const status = await pageB.evaluate(
          ({ path, body }) =>
            fetch(path, {
              method: 'POST',
              headers: { 'content-type': 'application/x-www-form-urlencoded' },
              body,
              redirect: 'manual',
              credentials: 'same-origin',
            }).then((r) => r.status),
          { path: `/requests/${requestA.id}/status`, body: new URLSearchParams({ _csrf: csrf, status: 'cancelled' }).toString() },
        );
        assert.equal(status, 404, `client B cancelling client A's request should answer 404, got ${status === 0 ? 'a redirect (accepted)' : status}`);
        // The browser's report of that 404 is expected.
        pageB.problems = pageB.problems.filter((p) => !p.includes(`/requests/${requestA.id}/status`));
        assert.equal((await apiGetRequest(requestA.id)).status, 'open', 'client A\'s request should still be open');
      });
    });
  });
});

describe('CSRF on the request page', () => {
  test('a move sent without the form\'s _csrf, or with a wrong one, is refused with 403 and the status stays; with it, it goes through', async () => {
    const site = await createSite(token, 'csrf');
    const engineer = await newUser(['engineer'], 'Сергей Новиков');
    const pm = await newUser(['project_manager'], 'Мария Белова');
    const request = await apiRequest({ subject: `Проверка СОУЭ ${unique()}`, objectId: site.object.id, assignedTo: engineer.id });
    const before = await apiGetRequest(request.id);
    assert.equal(before.status, 'open');

    await withPages(async (open) => {
      const page = await open('desktop');
      await as('project manager', page, async () => {
        await signIn(page, pm.email, pm.password);
        const form = page.locator(`form[action="/requests/${request.id}/status"]`);

        for (const [how, tamper] of [
          ['without _csrf', (f) => f.querySelector('input[name="_csrf"]')?.remove()],
          ['with a wrong _csrf', (f) => { f.querySelector('input[name="_csrf"]').value = 'not-the-token'; }],
        ]) {
          await visit(page, `/requests/${request.id}`);
          assert.equal(await form.locator('input[name="_csrf"]').count(), 1, 'the moves form should carry a hidden _csrf');
          await form.evaluate(tamper);
          if (how === 'without _csrf') assert.equal(await form.locator('input[name="_csrf"]').count(), 0, 'the _csrf field should be gone');
          const response = await submit(page, moveButton(page, request.id, 'in_progress'));
          assert.equal(response.status(), 403, `"${RU('move.in_progress')}" sent ${how} should answer 403`);
          const text = await page.locator('main').innerText();
          assert.ok(text.includes(RU('error.csrf')), `the 403 page should explain: ${JSON.stringify(RU('error.csrf'))}; it reads ${JSON.stringify(text)}`);
          assert.equal(await page.locator('[data-request-id]').count(), 1, 'the 403 page should show the request id');
          const now = await apiGetRequest(request.id);
          assert.equal(now.status, 'open', `the move sent ${how} must not change the status`);
          assert.equal(now.version, before.version, `the move sent ${how} must not change the request (version)`);
        }

        // The same button with the form as served goes through.
        await visit(page, `/requests/${request.id}`);
        await submit(page, moveButton(page, request.id, 'in_progress'));
        assert.equal(pathOf(page), `/requests/${request.id}`);
        await expectText(statusBadge(page), RU('status.in_progress'), 'the status after the untampered move');
        assert.equal((await apiGetRequest(request.id)).status, 'in_progress', 'the untampered move should go through');
      });
    });
  });
});

describe('language of the request page', () => {
  test('the request page in Russian, then in English with the footer button, then back', async () => {
    const site = await createSite(token, 'lang');
    const engineer = await newUser(['engineer'], 'Алексей Орлов');
    const admin = await newUser(['admin'], 'Елена Васильева');
    const subject = `Проверка насосной станции ${unique()}`;
    const request = await apiRequest({ subject, objectId: site.object.id, assignedTo: engineer.id });
    await api(`/api/v1/requests/${request.id}/comments`, { method: 'POST', token, body: { body: 'Доступ на объект с 9:00.' } });

    // What an administrator sees on an open request: details, the assign form, moves, history, comments.
    const expected = (t) => ({
      h2: [t('request.details'), t('request.assign'), t('request.moves'), t('request.history'), t('request.comments')],
      dt: [t('request.description'), t('request.engineer'), t('request.created'), t('request.assign_by'), t('request.close_by')],
      status: t('status.open'),
      moves: [t('move.in_progress'), t('move.cancelled')],
      write: t('report.write'),
      nav: ['nav.dashboard', 'nav.requests', 'nav.reports', 'nav.customers', 'nav.objects', 'nav.projects', 'nav.users', 'nav.audit', 'nav.outbox'].map(t),
    });
    const seen = async (page) => ({
      h2: await texts(page, 'h2'),
      dt: await texts(page, 'dt'),
      status: (await statusBadge(page).innerText()).trim(),
      moves: (await page.locator(`form[action="/requests/${request.id}/status"] button[name="status"]`).allInnerTexts()).map((s) => s.trim()),
      write: (await page.locator(`form[action="/requests/${request.id}/report"] button`).innerText()).trim(),
      nav: (await page.locator('header nav a').allInnerTexts()).map((s) => s.trim()),
    });
    const lang = (page) => page.evaluate(() => document.documentElement.getAttribute('lang'));
    const switchTo = async (page, code) => {
      const button = page.locator(`footer form[action="/lang"] button[name="lang"][value="${code}"]`);
      assert.equal(await button.count(), 1, `the footer should have a button name="lang" value="${code}"`);
      await submit(page, button);
      assert.equal(pathOf(page), `/requests/${request.id}`, `switching to ${code} should come back to the request page`);
    };

    await withPages(async (open) => {
      const page = await open('desktop');
      await as('administrator', page, async () => {
        await signIn(page, admin.email, admin.password);
        await visit(page, `/requests/${request.id}`);
        assert.equal(await lang(page), 'ru', '<html lang> of the request page by default');
        assert.deepEqual(await seen(page), expected(RU), 'the Russian request page\'s headings, labels and buttons (locales/ru.txt)');

        await switchTo(page, 'en');
        assert.equal(await lang(page), 'en', '<html lang> after choosing English');
        const english = await seen(page);
        assert.deepEqual(english, expected(EN), 'the English request page\'s headings, labels and buttons (locales/en.txt)');
        const chrome = [...english.h2, ...english.dt, english.status, ...english.moves, english.write, ...english.nav];
        assert.ok(!chrome.some((s) => CYRILLIC.test(s)), `the English page's own texts should have no Cyrillic: ${JSON.stringify(chrome)}`);
        const h1 = (await page.locator('h1').innerText()).trim();
        assert.ok(h1.includes(request.number) && h1.includes(subject), 'the request\'s own data (number, subject) stays as entered in English');
        assert.ok((await page.locator('main').innerText()).includes('Доступ на объект с 9:00.'), 'the comment stays as written in English');

        await switchTo(page, 'ru');
        assert.equal(await lang(page), 'ru', '<html lang> after choosing Russian again');
        assert.deepEqual(await seen(page), expected(RU), 'the request page back in Russian');
      });
    });
  });
});

/**
 * Data for the axe checks: an emergency request (so the dashboard's attention table is there),
 * an open request with an engineer and a comment (the request page with the assign form, moves
 * and "write the act"), and a draft act with two rows; seen by an administrator.
 */
async function axeData() {
  const site = await createSite(token, 'axe');
  const engineer = await newUser(['engineer'], 'Виктор Зайцев');
  const admin = await newUser(['admin'], 'Наталья Попова');
  const tag = unique();
  await apiRequest({ subject: `Сработала пожарная сигнализация ${tag}`, objectId: site.object.id, type: 'emergency', assignedTo: engineer.id });
  const request = await apiRequest({ subject: `Плановое ТО АУПТ ${tag}`, objectId: site.object.id, assignedTo: engineer.id });
  await api(`/api/v1/requests/${request.id}/comments`, { method: 'POST', token, body: { body: 'Ключи у охраны.' } });
  const withAct = await apiRequest({ subject: `Замена извещателей ${tag}`, objectId: site.object.id, assignedTo: engineer.id });
  const report = await api('/api/v1/reports', {
    method: 'POST',
    token,
    body: {
      request_id: withAct.id,
      work_date: moscowToday(),
      items: [
        { description: ROW_1.description, quantity: '2', unit: 'шт', unit_price: '1000.50' },
        { description: ROW_2.description, quantity: '1', unit: 'шт', unit_price: '500.00' },
      ],
    },
  });
  return { admin, engineer, site, request, report };
}

const AXE_PAGES = [
  { name: 'dashboard', path: () => '/' },
  { name: 'request list', path: () => '/requests' },
  { name: 'request page', path: (d) => `/requests/${d.request.id}` },
  { name: 'new-request form', path: () => '/requests/new', shot: 'request-new' },
  {
    name: 'new-request form with errors',
    path: () => '/requests/new',
    // Sent empty: the errors stand next to their fields.
    then: async (page) => {
      const response = await submit(page, page.locator('form[method="post"][action="/requests/new"]').locator(SUBMIT));
      assert.equal(response.status(), 422, 'the empty new-request form should answer 422');
    },
  },
  { name: 'act editor', path: (d) => `/reports/${d.report.id}` },
  { name: 'customers', path: () => '/customers?new=1' },
  { name: 'customer page', path: (d) => `/customers/${d.site.customer.id}` },
  { name: 'sites', path: () => '/objects?new=1' },
  { name: 'site page', path: (d) => `/objects/${d.site.object.id}`, shot: 'site' },
  { name: 'projects', path: () => '/projects?new=1' },
  { name: 'project page', path: (d) => `/projects/${d.site.project.id}`, shot: 'project' },
  { name: 'users', path: () => '/admin/users' },
  { name: 'user page', path: (d) => `/admin/users/${d.engineer.id}` },
  { name: 'audit log', path: () => '/admin/audit', shot: 'audit' },
  {
    name: 'password change with errors',
    path: () => '/password',
    then: async (page) => {
      const form = page.locator('form[action="/password"]');
      await form.locator('[name="current_password"]').fill('not the password at all');
      await form.locator('[name="new_password"]').fill('a new long enough password');
      const response = await submit(page, form.locator(SUBMIT));
      assert.equal(response.status(), 422, 'a wrong current password should answer 422');
      assert.equal(await page.locator('#current_password').getAttribute('aria-invalid'), 'true', 'the wrong field is marked');
      await expectText(page.locator('#current_password-error'), RU('field.wrong_password'), 'the error next to the current password');
    },
  },
];

describe('accessibility of the working pages (axe-core, WCAG 2 A and AA)', () => {
  for (const viewport of ['desktop', 'phone']) {
    for (const target of AXE_PAGES) {
      test(`${target.name} on ${viewport}: no serious or critical axe violations, no sideways scrolling`, async () => {
        const data = await axeData();
        const path = target.path(data);
        await withPages(async (open) => {
          const page = await open(viewport, viewport === 'phone' ? TOUCH : {});
          await as(`administrator, ${viewport}`, page, async () => {
            await signIn(page, data.admin.email, data.admin.password);
            await visit(page, path);
            if (target.then) await target.then(page);
            if (target.shot) await shot(page, `${target.shot}-${viewport}`);
            const violations = await axeCheck(page);
            assert.equal(violations.length, 0, `axe on ${target.name} (${pathOf(page)}, ${viewport}):\n${formatViolations(violations)}`);
            const widths = await page.evaluate(() => ({ content: document.documentElement.scrollWidth, viewport: window.innerWidth }));
            assert.ok(
              widths.content <= widths.viewport,
              `${target.name} (${pathOf(page)}) is ${widths.content}px wide in a ${widths.viewport}px window: the page scrolls sideways`,
            );
          });
        });
      });
    }
  }
});

describe('the new-request form at the desk', () => {
  test('a project manager chooses the customer, which narrows the sites; the site fills in the project; without the script a button does the narrowing', async () => {
    const a = await createSite(token, 'narrow-a');
    const b = await createSite(token, 'narrow-b');
    const pm = await newUser(['project_manager'], 'Алексей Смирнов');
    const tag = unique();
    await withPages(async (open) => {
      const page = await open('desktop');
      await as('project manager, desktop', page, async () => {
        await signIn(page, pm.email, pm.password);
        await visit(page, '/requests/new');
        const customer = page.locator('select#customer_id');
        const sites = page.locator('form[method="post"] select[name="object_id"]');
        const enabled = () => sites.locator('option:not([disabled])').evaluateAll((os) => os.filter((o) => o.value).map((o) => o.value));
        const all = await enabled();
        assert.ok(all.includes(String(a.object.id)) && all.includes(String(b.object.id)), `before a customer is chosen every site is offered, got ${JSON.stringify(all)}`);
        assert.equal(await page.locator('[data-without-script]').isVisible(), false, 'with the script the narrowing button is not needed');

        await customer.selectOption(String(b.customer.id));
        assert.deepEqual(await enabled(), [String(b.object.id)], `choosing ${b.customer.name} leaves only its site`);
        await sites.selectOption(String(b.object.id));
        await expectText(page.locator('output#project_of'), b.project.name, 'the project the site fills in');

        const form = page.locator('form[method="post"][action="/requests/new"]');
        await form.locator('[name="subject"]').fill(`Проверка АУПТ ${tag}`);
        const created = await submit(page, form.locator(SUBMIT));
        assert.equal(created.status(), 200);
        const id = Number(pathOf(page).match(/^\/requests\/(\d+)$/)[1]);
        const saved = await apiGetRequest(id);
        assert.equal(saved.customer_id, b.customer.id, 'the request\'s customer');
        assert.equal(saved.object_id, b.object.id, 'the request\'s site');
        assert.equal(saved.project_id, b.project.id, 'the request\'s project, filled in from the site');
      });

      const plain = await open('desktop', { javaScriptEnabled: false });
      await as('project manager, no script', plain, async () => {
        await signIn(plain, pm.email, pm.password);
        await visit(plain, '/requests/new');
        await plain.locator('select#customer_id').selectOption(String(a.customer.id));
        await submit(plain, plain.locator('[data-without-script]'));
        assert.equal(pathOf(plain), '/requests/new', 'the narrowing button reloads the form');
        const offered = await plain.locator('form[method="post"] select[name="object_id"] option').evaluateAll((os) => os.filter((o) => o.value).map((o) => o.value));
        assert.deepEqual(offered, [String(a.object.id)], 'the reloaded form offers only that customer\'s site');
        assert.equal(await plain.locator('form[method="post"] input[name="customer_id"]').inputValue(), String(a.customer.id), 'the chosen customer goes with the form');
      });
    });
  });
});

describe('administration in the browser', () => {
  test('an administrator gives a user another role and a customer, and the audit log shows the change', async () => {
    const admin = await newUser(['admin'], 'Марина Орлова');
    const user = await newUser(['engineer'], 'Денис Белов');
    const site = await createSite(token, 'admin');
    await withPages(async (open) => {
      const page = await open('desktop');
      await as('administrator', page, async () => {
        await signIn(page, admin.email, admin.password);
        await visit(page, '/admin/users');
        await submit(page, page.locator(`main a[href="/admin/users/${user.id}"]`));
        assert.equal(pathOf(page), `/admin/users/${user.id}`);
        const form = page.locator(`form[action="/admin/users/${user.id}"]:has(button[value="save"])`);
        assert.equal(await form.locator('input[name="role_engineer"]').isChecked(), true, 'the user\'s role is ticked');
        // A client without a customer is refused next to the field.
        await form.locator('input[name="role_engineer"]').uncheck();
        await form.locator('input[name="role_client"]').check();
        const refused = await submit(page, form.locator('button[value="save"]'));
        assert.equal(refused.status(), 422);
        assert.ok(await page.locator('.field-error').first().isVisible(), 'the error stands next to its field');
        assert.equal(await page.locator('input[name="role_client"]').isChecked(), true, 'the ticked role is kept');
        await page.locator('select#u-customer').selectOption(String(site.customer.id));
        const saved = await submit(page, page.locator('button[value="save"]'));
        assert.equal(saved.status(), 200);
        await expectText(page.locator('main [role="status"]'), RU('users.changed'), 'the notice after saving');
        const after = await api(`/api/v1/users/${user.id}`, { token });
        assert.deepEqual(after.roles, ['client']);
        assert.equal(after.customer_id, site.customer.id);

        await submit(page, page.locator(`main a[href="/admin/audit?entity=user&entity_id=${user.id}"]`));
        assert.equal(pathOf(page), '/admin/audit');
        const rows = page.locator('table.audit tbody tr');
        assert.ok((await rows.count()) >= 2, 'the user\'s history holds its creation and the change');
        assert.match(await rows.first().innerText(), /permission_change|update/, 'the newest entry is the change of roles');
        assert.ok((await rows.first().innerText()).includes(admin.name), 'the entry names who made the change');
        const violations = await axeCheck(page);
        assert.equal(violations.length, 0, `axe on the audit log:\n${formatViolations(violations)}`);
      });
    });
  });
});

describe('a newcomer runs a request from opening to closing through the pages alone', () => {
  test('the first administrator sets up a customer, an engineer, a site and a project, opens and assigns a request; the engineer works it on a phone; the administrator closes it', async () => {
    const tag = unique();
    const names = {
      customer: `ООО «Новичок» ${tag}`,
      engineer: `Степан Новиков ${tag.slice(-5)}`,
      site: `Склад №7, корпус ${tag}`,
      project: `Договор ТО ${tag}`,
    };
    const engineer = { email: `e2e-newcomer-${tag}@example.ru`, password: `e2e newcomer ${tag}` };
    await withPages(async (open) => {
      const desk = await open('desktop');
      desk.on('dialog', (d) => d.accept());
      let requestId;
      await as('first administrator, desktop', desk, async () => {
        await signIn(desk, ADMIN.email, ADMIN.password);
        const menu = (href) => desk.locator(`header nav a[href="${href}"]`);

        // A customer.
        await submit(desk, menu('/customers'));
        await desk.locator('details#new > summary').click();
        const customerForm = desk.locator('form[method="post"][action="/customers"]');
        await customerForm.locator('[name="name"]').fill(names.customer);
        await customerForm.locator('[name="inn"]').fill(randomInn());
        await submit(desk, customerForm.locator(SUBMIT));
        const customerId = Number(pathOf(desk).match(/^\/customers\/(\d+)$/)?.[1]);
        assert.ok(customerId, `creating the customer should open its page, the browser is on ${pathOf(desk)}`);

        // An engineer.
        await submit(desk, menu('/admin/users'));
        const userForm = desk.locator('form[action="/admin/users"]');
        await userForm.locator('[name="email"]').fill(engineer.email);
        await userForm.locator('[name="name"]').fill(names.engineer);
        await userForm.locator('[name="role_engineer"]').check();
        await userForm.locator('[name="password"]').fill(engineer.password);
        await submit(desk, userForm.locator(SUBMIT));
        assert.match(pathOf(desk), /^\/admin\/users\/\d+$/, 'creating the user should open their page');

        // A site of the customer, with the engineer.
        await submit(desk, menu('/objects'));
        await desk.locator('details#new > summary').click();
        const siteForm = desk.locator('form[method="post"][action="/objects"]');
        await siteForm.locator('select[name="customer_id"]').selectOption(String(customerId));
        await siteForm.locator('[name="name"]').fill(names.site);
        await siteForm.locator('label.check', { hasText: names.engineer }).locator('input').check();
        await submit(desk, siteForm.locator(SUBMIT));
        const siteId = Number(pathOf(desk).match(/^\/objects\/(\d+)$/)?.[1]);
        assert.ok(siteId, `creating the site should open its page, the browser is on ${pathOf(desk)}`);
        assert.ok((await desk.locator('main').innerText()).includes(names.engineer), 'the site page names its engineer');

        // An active project holding the site.
        await submit(desk, menu('/projects'));
        await desk.locator('details#new > summary').click();
        const projectForm = desk.locator('form[method="post"][action="/projects"]');
        await projectForm.locator('select[name="customer_id"]').selectOption(String(customerId));
        await projectForm.locator('[name="name"]').fill(names.project);
        await projectForm.locator('[name="start_date"]').fill(moscowToday());
        await projectForm.locator('select[name="status"]').selectOption('active');
        await submit(desk, projectForm.locator(SUBMIT));
        const projectId = Number(pathOf(desk).match(/^\/projects\/(\d+)$/)?.[1]);
        assert.ok(projectId, `creating the project should open its page, the browser is on ${pathOf(desk)}`);
        const addForm = desk.locator(`form[action="/projects/${projectId}/objects"]`);
        await addForm.locator('select[name="object_id"]').selectOption(String(siteId));
        await submit(desk, addForm.locator(SUBMIT));
        assert.equal(await desk.locator(`main a[href="/objects/${siteId}"]`).count(), 1, 'the project lists its site');

        // The request: the customer narrows the sites, the site fills in the project.
        await submit(desk, menu('/requests'));
        await submit(desk, desk.locator('main a[href="/requests/new"]'));
        await desk.locator('select#customer_id').selectOption(String(customerId));
        const form = desk.locator('form[method="post"][action="/requests/new"]');
        await form.locator('select[name="object_id"]').selectOption(String(siteId));
        await expectText(desk.locator('output#project_of'), names.project, 'the project the site fills in');
        await form.locator('select[name="type"]').selectOption('emergency');
        await form.locator('[name="subject"]').fill(`Не работает оповещение ${tag}`);
        await submit(desk, form.locator(SUBMIT));
        requestId = Number(pathOf(desk).match(/^\/requests\/(\d+)$/)?.[1]);
        assert.ok(requestId, `the new request should open its page, the browser is on ${pathOf(desk)}`);
        const assign = desk.locator(`form[action="/requests/${requestId}/assign"]`);
        await assign.locator('select[name="assigned_to"]').selectOption({ label: names.engineer });
        await submit(desk, assign.locator(SUBMIT));
        assert.equal(await desk.locator('main [role="alert"]').count(), 0, 'assigning shows no error');
      });

      const phone = await open('phone', TOUCH);
      phone.on('dialog', (d) => d.accept());
      await as('engineer, phone', phone, async () => {
        await signIn(phone, engineer.email, engineer.password);
        await visit(phone, `/requests/${requestId}`);
        await tapSubmit(phone, moveButton(phone, requestId, 'in_progress'));
        await expectText(statusBadge(phone), RU('status.in_progress'), 'the status after starting');
        await tapSubmit(phone, phone.locator(`form[action="/requests/${requestId}/report"]`).locator(SUBMIT));
        assert.match(pathOf(phone), /^\/reports\/\d+$/, '"write the act" opens the editor');
        await typeRow(phone, 0, ROW_2);
        await tapSubmit(phone, editorButton(phone, 'submit'));
        assert.equal(pathOf(phone), `/requests/${requestId}`, 'submitting the act comes back to the request');
        await expectText(statusBadge(phone), RU('status.completed'), 'the status once the act is submitted');
      });

      await as('first administrator, closing', desk, async () => {
        await visit(desk, `/requests/${requestId}`);
        await submit(desk, moveButton(desk, requestId, 'closed'));
        await expectText(statusBadge(desk), RU('status.closed'), 'the status after closing');
        const saved = await apiGetRequest(requestId);
        assert.equal(saved.status, 'closed');
        assert.ok(saved.project_id, 'the request belongs to the project its site filled in');
        const history = await desk.locator('main .timeline').innerText();
        for (const st of ['status.in_progress', 'status.completed', 'status.closed']) {
          assert.ok(history.includes(RU(st)), `the history shows ${RU(st)}: ${JSON.stringify(history)}`);
        }
      });
    });
  });
});
