// Helpers for the browser end-to-end tests: Debian's Chromium driven by playwright-core, the
// JSON API for setting up data, sign-in, axe-core, screenshots, and failure messages that show
// the page they happened on.
//
// The environment (set by .ci/e2e.sh):
//   FERUM_URL              the running ferum, e.g. http://127.0.0.1:18300 (required)
//   FERUM_ADMIN_EMAIL      the bootstrap administrator (default admin@example.ru)
//   FERUM_ADMIN_PASSWORD   its password (default "e2e admin password 1")
//   FERUM_E2E_CHROMIUM     the browser (default /usr/bin/chromium)
//   FERUM_SCREENSHOTS_DIR  where screenshot() writes (default docs/screenshots in the repo)

import { createHmac } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

export const BASE_URL = (() => {
  const url = process.env.FERUM_URL;
  if (!url) {
    throw new Error('FERUM_URL is not set: run the tests with `bash .ci/e2e.sh PATH_TO_FERUM`');
  }
  return url.replace(/\/+$/, '');
})();

export const ADMIN = {
  email: process.env.FERUM_ADMIN_EMAIL || 'admin@example.ru',
  password: process.env.FERUM_ADMIN_PASSWORD || 'e2e admin password 1',
};

const SCREENSHOTS_DIR = process.env.FERUM_SCREENSHOTS_DIR || join(here, '..', 'docs', 'screenshots');

/** Viewports the pages are checked and photographed at. */
export const VIEWPORTS = {
  desktop: { width: 1280, height: 800 },
  phone: { width: 390, height: 844 },
};

// Without the background-networking flags Chromium keeps trying to reach Google's hosts, which
// this machine's closed network refuses. Playwright adds --headless for `headless: true` and
// starts every launch on a new, empty user-data dir of its own, which it removes on close.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Launches the system Chromium (never a browser Playwright would download). */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.FERUM_E2E_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 60_000,
  });
}

/**
 * A page in a new browser context (its own cookies), at a viewport of VIEWPORTS or given as
 * {width, height}. The browser asks for Russian, as the company's users' browsers do.
 * Uncaught script errors and console errors (a blocked inline script or style under the CSP
 * shows as one) are collected in `page.problems`; see assertNoPageProblems().
 */
export async function newPage(browser, viewport = 'desktop', options = {}) {
  const size = typeof viewport === 'string' ? VIEWPORTS[viewport] : viewport;
  if (!size) throw new Error(`unknown viewport ${viewport}; use one of ${Object.keys(VIEWPORTS)}`);
  const context = await browser.newContext({
    viewport: size,
    locale: 'ru-RU',
    timezoneId: 'Europe/Moscow',
    ...options,
  });
  context.setDefaultTimeout(15_000);
  context.setDefaultNavigationTimeout(30_000);
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (err) => page.problems.push(`uncaught error on ${page.url()}: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    // The status of the document itself is what the tests assert; a browser's own favicon
    // request is not the page's doing. Any other resource that fails to load is a problem.
    const source = msg.location().url || '';
    const failedLoad = /^Failed to load resource/.test(msg.text());
    if (failedLoad && (source === page.url() || new URL(source, BASE_URL).pathname === '/favicon.ico')) return;
    page.problems.push(`console error on ${page.url()}: ${msg.text()}${source ? ` (${source})` : ''}`);
  });
  return page;
}

/** Closes the page's context (and so its cookies). */
export async function closePage(page) {
  await page.context().close();
}

/** The URL of a path on the server. */
export function url(path) {
  return new URL(path, BASE_URL + '/').href;
}

/** The path part of a page's current URL ("/requests"). */
export function pathOf(page) {
  return new URL(page.url()).pathname;
}

/** The page's URL, <title> and the start of its <body> (scripts left out), for failure messages. */
export async function describePage(page, chars = 3000) {
  let html = '';
  try {
    html = await page.evaluate(() => {
      const body = document.body?.cloneNode(true);
      body?.querySelectorAll('script, style, svg').forEach((e) => e.replaceChildren());
      return `<title>${document.title}</title> ${body ? body.outerHTML : document.documentElement.outerHTML}`;
    });
  } catch (err) {
    html = `(could not read the page: ${err.message})`;
  }
  html = html.replace(/\s+/g, ' ');
  const cut = html.length > chars ? `${html.slice(0, chars)} … (${html.length} characters)` : html;
  return `page: ${page.url()}\nhtml: ${cut}`;
}

/**
 * Runs fn; if it throws, the error's message gets the page's URL and HTML appended, so that
 * a failed assertion shows what the browser was looking at.
 */
export async function onPage(page, fn) {
  try {
    return await fn();
  } catch (err) {
    if (err && typeof err === 'object' && 'message' in err) {
      // visit() and signIn() describe the page themselves.
      if (!String(err.message).includes('\npage: ')) {
        const before = String(err.message);
        err.message = `${before}\n${await describePage(page)}`;
        // The runner prints the stack, which was written with the old message.
        if (typeof err.stack === 'string' && err.stack.includes(before)) {
          err.stack = err.stack.replace(before, err.message);
        }
      }
      throw err;
    }
    throw new Error(`${String(err)}\n${await describePage(page)}`);
  }
}

/** Fails if the page had uncaught script errors or console errors; clears the list. */
export function assertNoPageProblems(page) {
  const problems = page.problems.splice(0);
  if (problems.length) {
    throw new Error(`the browser reported ${problems.length} problem(s):\n  ${problems.join('\n  ')}`);
  }
}

/** Navigates and fails unless the answer has the expected HTTP status. */
export async function visit(page, path, expectedStatus = 200) {
  const response = await page.goto(url(path), { waitUntil: 'load' });
  if (!response) throw new Error(`no response for ${path}`);
  if (response.status() !== expectedStatus) {
    throw new Error(
      `GET ${path} answered ${response.status()}, expected ${expectedStatus}\n${await describePage(page)}`,
    );
  }
  return response;
}

/** A form's submit buttons. */
export const SUBMIT = 'button[type="submit"], input[type="submit"], button:not([type])';

/** Clicks a button that submits a form and waits for the page it leads to; returns its response. */
export async function submit(page, button) {
  const [response] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), button.click()]);
  return response;
}

/**
 * Signs in through the login form. Returns the response of the page the form led to; fails,
 * with the alert's text, if the browser is still on /login afterwards.
 */
export async function signIn(page, email, password) {
  await visit(page, '/login');
  const form = page.locator('form:has(input[name="password"])');
  await form.locator('input[name="email"]').fill(email);
  await form.locator('input[name="password"]').fill(password);
  const response = await submit(page, form.locator(SUBMIT).first());
  if (pathOf(page) === '/login') {
    const alert = await page.locator('[role="alert"]').allInnerTexts().catch(() => []);
    throw new Error(
      `signing in as ${email} left the browser on /login` +
        (alert.length ? ` with the alert ${JSON.stringify(alert.join(' ').trim())}` : '') +
        `\n${await describePage(page)}`,
    );
  }
  return response;
}

let axeSource;

/** The axe-core rule tags checked: WCAG 2.0, 2.1 and 2.2, levels A and AA. */
export const AXE_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa'];

/**
 * Runs axe-core on the page with the AXE_TAGS rules and returns the
 * violations of impact `serious` or `critical`. axe is injected as a script element; where
 * the page's CSP refuses inline scripts (Ferum's does), it is evaluated through the DevTools
 * protocol instead, so the page is checked as served, with its CSP in force.
 */
export async function axeCheck(page) {
  axeSource ??= await readFile(require.resolve('axe-core/axe.min.js'), 'utf8');
  const loaded = () => page.evaluate(() => typeof window.axe?.run === 'function');
  if (!(await loaded())) {
    const seen = page.problems.length;
    const blocked = await page.addScriptTag({ content: axeSource }).then(
      () => false,
      (err) => /Content Security Policy/i.test(err.message) || Promise.reject(err),
    );
    if (blocked || !(await loaded())) {
      // Our refused <script> element goes; axe then runs through the DevTools protocol.
      await page.evaluate(() => document.querySelectorAll('script:not([src])').forEach((e) => {
        if (e.textContent.startsWith('/*! axe')) e.remove();
      }));
      await page.evaluate(axeSource);
      // The console's report of our blocked script tag is ours, not the page's.
      await page.waitForTimeout(100);
      const own = (p, i) => i >= seen && /Content Security Policy/i.test(p) && /inline script/i.test(p);
      page.problems = page.problems.filter((p, i) => !own(p, i));
    }
  }
  const result = await page.evaluate(
    (tags) =>
      window.axe.run(document, {
        runOnly: { type: 'tag', values: tags },
        resultTypes: ['violations'],
      }),
    AXE_TAGS,
  );
  return result.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      helpUrl: v.helpUrl,
      nodes: v.nodes.map((n) => ({ target: n.target.join(' '), html: n.html, summary: n.failureSummary })),
    }));
}

/** axe violations as readable lines, for a failure message. */
export function formatViolations(violations) {
  return violations
    .map(
      (v) =>
        `${v.impact} ${v.id}: ${v.help} (${v.helpUrl})\n` +
        v.nodes.map((n) => `    at ${n.target}: ${n.html}\n      ${String(n.summary).replace(/\n/g, '\n      ')}`).join('\n'),
    )
    .join('\n');
}

/** Saves a full-page PNG as FERUM_SCREENSHOTS_DIR/<name>.png; returns its path. */
export async function screenshot(page, name) {
  await mkdir(SCREENSHOTS_DIR, { recursive: true });
  const path = join(SCREENSHOTS_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: true, animations: 'disabled' });
  return path;
}

/**
 * Calls the JSON API: `api('/api/v1/customers', {method: 'POST', token, body})`. Returns the
 * parsed body (null for an empty one); throws with the status and body on anything but 2xx.
 */
export async function api(path, { method = 'GET', token, body } = {}) {
  const headers = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(url(path), {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    redirect: 'manual',
  });
  const text = await res.text();
  if (!res.ok) {
    const sent = body === undefined ? '' : ` with ${JSON.stringify(body)}`;
    throw new Error(`${method} ${path}${sent} answered ${res.status}: ${text.slice(0, 1000)}`);
  }
  return text ? JSON.parse(text) : null;
}

/** An API access token for the user. */
export async function apiToken(email, password) {
  const res = await api('/api/v1/auth/login', { method: 'POST', body: { email, password } });
  if (!res?.access_token) {
    throw new Error(`signing in to the API as ${email} gave no access_token: ${JSON.stringify(res)}`);
  }
  return res.access_token;
}

/** An access token of the bootstrap administrator. */
export function adminToken() {
  return apiToken(ADMIN.email, ADMIN.password);
}

let counter = 0;

/** A suffix that no other test, run or process uses: for names, e-mails and subjects. */
export function unique() {
  counter += 1;
  return `${Date.now().toString(36)}${process.pid.toString(36)}${counter}`;
}

/**
 * A valid 10-digit INN (Russian taxpayer number of an organisation) made from nine digits:
 * the tenth is the check digit, weights 2,4,10,3,5,9,4,6,8, sum mod 11 mod 10.
 */
export function inn10(nineDigits) {
  const digits = String(nineDigits).padStart(9, '0').split('').map(Number);
  if (digits.length !== 9 || digits.some((d) => Number.isNaN(d))) {
    throw new Error(`inn10 needs nine digits, got ${nineDigits}`);
  }
  const weights = [2, 4, 10, 3, 5, 9, 4, 6, 8];
  const check = (weights.reduce((sum, w, i) => sum + w * digits[i], 0) % 11) % 10;
  return digits.join('') + check;
}

/** A random valid INN-10 (INNs are unique per customer). */
export function randomInn() {
  return inn10(String(Math.floor(100_000_000 + Math.random() * 900_000_000)));
}

/** Creates a customer with a unique INN; returns the API's customer. */
export async function createCustomer(token, name) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await api('/api/v1/customers', {
        method: 'POST',
        token,
        body: { name, inn: randomInn(), contact_email: `contact-${unique()}@example.ru` },
      });
    } catch (err) {
      // A random INN that is already taken: try another.
      if (attempt < 5 && / answered 409/.test(err.message)) continue;
      throw err;
    }
  }
}

export function createObject(token, customerId, name, kind = 'fire_alarm') {
  return api('/api/v1/objects', { method: 'POST', token, body: { customer_id: customerId, name, kind } });
}

export function createProject(token, customerId, name, objectIds = []) {
  return api('/api/v1/projects', {
    method: 'POST',
    token,
    body: {
      customer_id: customerId,
      name,
      start_date: '2026-01-01',
      status: 'active',
      objects: objectIds.map((id) => ({ object_id: id })),
    },
  });
}

/** Creates a user; `roles` are API codes (`admin`, `engineer`, `client`, …). */
export function createUser(token, { email, name, roles, password, customerId }) {
  const body = { email, name, roles, password };
  if (customerId !== undefined) body.customer_id = customerId;
  return api('/api/v1/users', { method: 'POST', token, body });
}

export function createRequest(token, { subject, objectId, type = 'maintenance', description }) {
  const body = { type, subject, object_id: objectId };
  if (description !== undefined) body.description = description;
  return api('/api/v1/requests', { method: 'POST', token, body });
}

/**
 * A customer with one fire-alarm object in an active project, all with unique names:
 * { token, customer, object, project }.
 */
export async function createSite(token, label = 'e2e') {
  const tag = unique();
  const customer = await createCustomer(token, `ООО «Пожарный контроль» ${label} ${tag}`);
  const object = await createObject(token, customer.id, `Бизнес-центр «Север», корпус ${tag}`);
  const project = await createProject(token, customer.id, `Обслуживание АПС ${tag}`, [object.id]);
  return { customer, object, project };
}

/**
 * The name a screen reader announces for a form control or button, from its <label>s,
 * aria-labelledby or aria-label (a button also from its text or value); a placeholder or
 * title does not count. Empty when it has none.
 */
export function accessibleName(locator) {
  return locator.evaluate((el) => {
    const text = (n) => (n?.textContent || '').replace(/\s+/g, ' ').trim();
    const by = el.getAttribute('aria-labelledby');
    if (by) return by.split(/\s+/).map((id) => text(document.getElementById(id))).join(' ').trim();
    const aria = (el.getAttribute('aria-label') || '').trim();
    if (aria) return aria;
    const labels = [...(el.labels || [])].map(text).join(' ').trim();
    if (labels) return labels;
    if (el.tagName === 'BUTTON') return text(el);
    if (el.tagName === 'INPUT' && /^(submit|button|reset)$/.test(el.type)) return (el.value || '').trim();
    return '';
  });
}

/** The forms of the page, each as {action path, method, field names, hidden values}. */
export function forms(page) {
  return page.evaluate(() =>
    [...document.forms].map((f) => ({
      action: new URL(f.action, document.baseURI).pathname,
      method: (f.getAttribute('method') || 'get').toLowerCase(),
      fields: [...f.elements].map((e) => e.name).filter(Boolean),
      hidden: Object.fromEntries(
        [...f.querySelectorAll('input[type="hidden"][name]')].map((e) => [e.name, e.value]),
      ),
    })),
  );
}

/**
 * Submits a form by tapping its button on a touch screen (a context made with
 * `{hasTouch: true}`), waiting for the page it leads to; returns its response.
 */
export async function tapSubmit(page, button) {
  const [response] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), button.tap()]);
  return response;
}

/** The bytes of a base32 string (RFC 4648; case, spaces and `=` padding ignored). */
export function base32Decode(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const clean = String(text).toUpperCase().replace(/[\s=]/g, '');
  let bits = 0;
  let value = 0;
  const out = [];
  for (const ch of clean) {
    const index = alphabet.indexOf(ch);
    if (index < 0) throw new Error(`not base32: ${JSON.stringify(text)} (character ${JSON.stringify(ch)})`);
    value = (value << 5) | index;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

/** The TOTP time step (30 s) of a moment given in Unix seconds. */
export function totpStep(unixSeconds = Date.now() / 1000) {
  return Math.floor(unixSeconds / 30);
}

/**
 * The TOTP code (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits by default) of a base32
 * secret for a time step, as an authenticator app shows it.
 */
export function totpCode(secretBase32, step = totpStep(), digits = 6) {
  return hotp(base32Decode(secretBase32), step, digits);
}

/** HOTP (RFC 4226) of raw key bytes and a counter. */
export function hotp(key, counter, digits = 6) {
  const message = Buffer.alloc(8);
  message.writeBigUInt64BE(BigInt(counter));
  const mac = createHmac('sha1', key).update(message).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const binary = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(binary % 10 ** digits).padStart(digits, '0');
}
