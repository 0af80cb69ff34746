'use strict';
/* A person's login in a real browser: headless Debian chromium (driven by playwright-core)
 * through the app's login link, houston-auth, the dev tenant's login page, Houston's
 * callback and back to the app, on production-shaped names over TLS. The browser decides
 * what libcurl does not: cookie Domain/Path/Secure/SameSite, which cookies go with a
 * cross-site redirect, HTML forms (required fields, formnovalidate), CSP on the pages.
 *
 * Usage: node login.test.js [BUILD_DIR]   (default ../../build). Prints one line per check
 * and a final "N passed, M failed"; exits 1 on any failure. Screenshots go to artifacts/. */
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { chromium } = require('playwright-core');
const H = require('./harness');

const ROOT = path.resolve(__dirname, '../..');
const BUILD = path.resolve(ROOT, process.argv[2] || 'build');
const ARTIFACTS = path.join(__dirname, 'artifacts');
const COOKIE = 'astronomer_astro_example_com_auth';
const STEP_TIMEOUT_MS = 10000;
const TEST_TIMEOUT_MS = 45000;
const TOTAL_TIMEOUT_MS = 170000;

let w; /* the world: URLs, CA, state dir */
let browser;

/* ---- small helpers ---------------------------------------------------------------------- */

/* Console errors and uncaught page errors (a CSP violation shows up here), favicon 404s
 * aside; the runner fails a test that left any. */
const pageErrors = [];

async function newPage(context) {
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  page.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
  page.on('console', (m) => {
    if (m.type() === 'error' && !/\/favicon\.ico$/.test(m.location().url || '')) {
      pageErrors.push(`${page.url()}: ${m.text()}`);
    }
  });
  page.on('pageerror', (e) => pageErrors.push(`${page.url()}: ${e.message}`));
  return page;
}

async function newContext() {
  return browser.newContext({ viewport: { width: 1000, height: 720 } });
}

/* A full-page screenshot, once the page's own stylesheet is known to apply (the pages all
 * centre a <main> card; unstyled, max-width would be 'none'). */
async function shot(page, name) {
  const width = await page.locator('main').evaluate((m) => getComputedStyle(m).maxWidth);
  assert.notEqual(width, 'none', `${name}: the page's inline stylesheet applies (CSP allows it)`);
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

async function houstonReceived() {
  const r = await H.request(`${w.houstonUrl}/__test/received`);
  assert.equal(r.status, 200, 'Houston stand-in /__test/received');
  return JSON.parse(r.body.toString());
}

async function tenantStats() {
  const r = await H.request(`${w.tenantUrl}/__test/stats`, { ca: w.ca });
  assert.equal(r.status, 200, 'tenant /__test/stats');
  return JSON.parse(r.body.toString());
}

async function tenantFault(obj) {
  const r = await H.request(`${w.tenantUrl}/__test/fault`, {
    method: 'POST', body: JSON.stringify(obj), ca: w.ca,
  });
  assert.equal(r.status, 200, `tenant fault ${JSON.stringify(obj)}: ${r.body}`);
}

function houstonCookie(cookies) {
  return cookies.find((c) => c.name === COOKIE);
}

const TXN_PREFIX = '__Host-ha_txn_';

function txnCookies(cookies) {
  return cookies.filter((c) => c.name.startsWith(TXN_PREFIX));
}

/* Text of the page's <main> (the stand-in's and the sidecar's pages put everything there). */
async function mainText(page) {
  return (await page.locator('main').innerText()).replace(/\s+/g, ' ');
}

function isTenantLogin(url) {
  const u = new URL(url);
  return u.origin === w.tenantUrl && u.pathname === '/authorize';
}

function appPath(url, pathname) {
  const u = new URL(url);
  return u.origin === w.appUrl && u.pathname === pathname;
}

/* Opens the app (screenshot homeShot when given), clicks its login link and waits for the
 * dev tenant's login page; checks the authorize request the sidecar sent the browser with. */
async function openTenantLogin(page, homeShot = null) {
  await page.goto(`${w.appUrl}/`);
  if (homeShot !== null) await shot(page, homeShot);
  await page.getByRole('link', { name: 'Log in' }).click();
  await page.waitForURL(isTenantLogin);
  const authorize = new URL(page.url());
  assert.equal(authorize.searchParams.get('login_hint'), null, 'no login_hint on /authorize');
  assert.equal(authorize.searchParams.get('code_challenge_method'), 'S256');
  assert.equal(authorize.searchParams.get('redirect_uri'), `${w.sidecarUrl}/v1/oauth/redirect`);
  await page.locator('#email').waitFor({ state: 'visible' });
  return authorize;
}

/* The transaction cookies the browser holds right now, with their attributes checked. */
async function checkTxnCookie(context) {
  const txn = txnCookies(await context.cookies(`${w.sidecarUrl}/v1/oauth/redirect`));
  assert.ok(txn.length >= 1, `a ${TXN_PREFIX}* cookie is held for houston.<base>`);
  for (const c of txn) {
    assert.equal(c.domain, H.HOUSTON_HOST, `${c.name}: host-only on houston.<base>`);
    assert.equal(c.path, '/', `${c.name}: Path=/ (a __Host- cookie's only path)`);
    assert.equal(c.secure, true, `${c.name}: Secure`);
    assert.equal(c.httpOnly, true, `${c.name}: HttpOnly`);
    assert.equal(c.sameSite, 'Lax', `${c.name}: SameSite=Lax`);
  }
  const elsewhere = await context.cookies([`${w.appUrl}/`, `https://${H.SIBLING_HOST}/`]);
  assert.deepEqual(elsewhere.filter((c) => c.name.includes('ha_txn_')), [],
    'the transaction cookie is not sent to app.<base> or any other sibling');
  return txn;
}

/* Types an email and a password at the tenant and submits; waits for the app's /oauth. */
async function submitLogin(page, email) {
  await page.fill('#email', email);
  await page.fill('#password', 'correct horse battery staple');
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForURL((u) => appPath(u, '/oauth') || appPath(u, '/login'));
  const u = new URL(page.url());
  assert.equal(u.pathname, '/oauth', `the login ended at ${u.pathname}${u.search}`);
}

/* Records every /v1/oauth/redirect URL the page requests. */
function recordRedirects(page) {
  const seen = [];
  page.on('request', (r) => {
    if (r.url().startsWith(`${w.sidecarUrl}/v1/oauth/redirect`)) seen.push(r.url());
  });
  return seen;
}

/* The checks every completed login must pass: URL, page, Houston's cookie, and its own
 * transaction cookie gone (txnLeft: those of other tabs still mid-login). Returns Houston's
 * cookie. */
async function checkLoggedIn(page, context, email, txnLeft = 0) {
  const final = new URL(page.url());
  assert.equal(final.origin, w.appUrl, 'lands on https://app.<base>');
  assert.equal(final.pathname, '/oauth');
  assert.equal(final.searchParams.get('strategy'), 'auth0');
  assert.ok(final.searchParams.get('token'), 'Houston put its token in the URL');
  const text = await mainText(page);
  assert.match(text, /Signed in to Astronomer/);
  assert.ok(text.includes(`Email: ${email}`), `the app shows ${email}: ${text}`);
  assert.match(text, new RegExp(`${COOKIE} is present`), 'the app server received the cookie');
  assert.match(text, /Token signed by this Houston: yes/);
  const onApp = houstonCookie(await context.cookies(`${w.appUrl}/oauth`));
  const onHouston = houstonCookie(await context.cookies(`${w.sidecarUrl}/`));
  assert.ok(onApp, `${COOKIE} is visible on app.<base>`);
  assert.ok(onHouston, `${COOKIE} is visible on houston.<base>`);
  assert.equal(onApp.domain, `.${H.BASE}`, 'Domain=.<base>');
  assert.equal(onApp.path, '/', 'Path=/');
  assert.equal(onApp.secure, true, 'Secure');
  assert.equal(onApp.value, final.searchParams.get('token'), 'cookie holds the same session');
  const tenantSide = houstonCookie(await context.cookies(`${w.tenantUrl}/`));
  assert.equal(tenantSide, undefined, 'the Houston cookie is not sent to the tenant');
  const txn = txnCookies(await context.cookies());
  assert.equal(txn.length, txnLeft, `${TXN_PREFIX}* cookies left: ${txn.map((c) => c.name)}`);
  return onApp;
}

/* ---- the flows ---------------------------------------------------------------------------- */

const shared = {}; /* flow 1's context and page, reused by the logout flow */

async function testLogin() {
  const before = (await houstonReceived()).length;
  const context = await newContext();
  const page = await newPage(context);
  const redirects = recordRedirects(page);
  await openTenantLogin(page, 'app-home');
  await checkTxnCookie(context);
  await shot(page, 'tenant-login');
  await submitLogin(page, 'ada@example.com');
  await checkLoggedIn(page, context, 'ada@example.com');
  await shot(page, 'app-signed-in');
  assert.equal(redirects.length, 1, 'the browser went through /v1/oauth/redirect once');
  const got = (await houstonReceived()).slice(before);
  assert.equal(got.length, 1, 'Houston received exactly one callback');
  assert.equal(got[0].email, 'ada@example.com');
  assert.equal(got[0].state.redirect, '/oauth');
  Object.assign(shared, { context, page });
}

async function testLogout() {
  const { context, page } = shared;
  assert.ok(context, 'needs the login flow first');
  /* A login left at the tenant's page in another tab: its transaction cookie (Path=/) comes
   * with the logout request and is cleared there too. */
  const other = await newPage(context);
  await openTenantLogin(other);
  await other.close();
  assert.equal(txnCookies(await context.cookies()).length, 1, 'a login is left half-way');
  const logoutsBefore = (await tenantStats()).logout_requests;
  const hops = [];
  page.on('request', (r) => hops.push(r.url()));
  await page.goto(`${w.sidecarUrl}/logout`);
  await page.waitForURL((u) => appPath(u, '/logout'));
  const tenantHop = hops.find((u) => u.startsWith(`${w.tenantUrl}/v2/logout?`));
  assert.ok(tenantHop, `went through the tenant's /v2/logout: ${hops.join(' -> ')}`);
  assert.equal(new URL(tenantHop).searchParams.get('returnTo'), `${w.appUrl}/logout`);
  assert.equal((await tenantStats()).logout_requests, logoutsBefore + 1);
  const text = await mainText(page);
  assert.match(text, /Signed out/);
  assert.match(text, new RegExp(`${COOKIE} is gone`), 'the app server no longer gets it');
  assert.equal(houstonCookie(await context.cookies([`${w.appUrl}/`, `${w.sidecarUrl}/`])),
    undefined, 'the Houston cookie is gone from the browser');
  assert.deepEqual(txnCookies(await context.cookies()), [],
    'logout cleared the half-way login\'s transaction cookie');
  await shot(page, 'app-signed-out');
  await context.close();
}

async function testCancel() {
  const before = (await houstonReceived()).length;
  const context = await newContext();
  const page = await newPage(context);
  await openTenantLogin(page);
  await page.getByRole('button', { name: 'Cancel' }).click(); /* empty required fields */
  await page.waitForURL((u) => appPath(u, '/login'));
  assert.equal(new URL(page.url()).searchParams.get('error'), 'access_denied');
  const text = await mainText(page);
  assert.match(text, /Sign-in failed/);
  assert.match(text, /cancelled or refused/, `a readable message: ${text}`);
  assert.match(text, /try again/i, 'tells the person what to do next');
  await page.getByRole('link', { name: 'Try again' }).waitFor({ state: 'visible' });
  await shot(page, 'app-login-error-access_denied');
  const cookies = await context.cookies();
  assert.equal(houstonCookie(cookies), undefined, 'no Houston cookie');
  assert.deepEqual(txnCookies(cookies), [], 'the transaction cookie was cleared');
  assert.equal((await houstonReceived()).length, before, 'Houston received nothing');
  await context.close();
}

async function testTenantRefusal() {
  const context = await newContext();
  const page = await newPage(context);
  await tenantFault({ authorize_error: 'access_denied' });
  try {
    await page.goto(`${w.appUrl}/`);
    await page.getByRole('link', { name: 'Log in' }).click();
    await page.waitForURL((u) => appPath(u, '/login'));
  } finally {
    await tenantFault({ authorize_error: null });
  }
  assert.equal(new URL(page.url()).searchParams.get('error'), 'access_denied');
  assert.equal(houstonCookie(await context.cookies()), undefined, 'no Houston cookie');
  assert.deepEqual(txnCookies(await context.cookies()), [], 'the transaction cookie was cleared');
  await context.close();
}

async function testTwoTabs() {
  const before = (await houstonReceived()).length;
  const context = await newContext();
  const a = await newPage(context);
  const b = await newPage(context);
  await openTenantLogin(a);
  await openTenantLogin(b);
  const txn = await checkTxnCookie(context);
  assert.equal(txn.length, 2, 'one transaction cookie per tab');
  await submitLogin(b, 'second@example.com'); /* the tab opened last finishes first */
  await checkLoggedIn(b, context, 'second@example.com', 1); /* a's is still in flight */
  await submitLogin(a, 'first@example.com');
  await checkLoggedIn(a, context, 'first@example.com');
  const got = (await houstonReceived()).slice(before);
  assert.deepEqual(got.map((r) => r.email), ['second@example.com', 'first@example.com']);
  await context.close();
}

async function testNoReplay() {
  const context = await newContext();
  const page = await newPage(context);
  const redirects = recordRedirects(page);
  await openTenantLogin(page);
  const txn = await checkTxnCookie(context);
  await submitLogin(page, 'grace@example.com');
  const session = await checkLoggedIn(page, context, 'grace@example.com');
  const count = (await houstonReceived()).length;
  assert.equal(redirects.length, 1);

  /* The back button: whatever it shows, no new session may come of it. */
  await page.goBack({ waitUntil: 'load' });
  console.log(`     (back showed ${new URL(page.url()).origin}${new URL(page.url()).pathname})`);
  if (isTenantLogin(page.url()) && (await page.locator('#email').count()) === 1) {
    await page.fill('#email', 'grace@example.com'); /* a person signs in again from there */
    await page.fill('#password', 'x');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForURL((u) => appPath(u, '/login'));
    assert.equal(new URL(page.url()).searchParams.get('error'), 'invalid_state');
  }
  assert.equal((await houstonReceived()).length, count, 'back: Houston received nothing new');

  /* The captured redirect URL again (history, a bookmark, a shared link). */
  await page.goto(redirects[0]);
  await page.waitForURL((u) => appPath(u, '/login'));
  assert.equal(new URL(page.url()).searchParams.get('error'), 'invalid_state');
  assert.match(await mainText(page), /could not be matched to your browser/);

  /* The same with the spent transaction cookie put back (an attacker's replay). */
  await context.addCookies(txn);
  await page.goto(redirects[0]);
  await page.waitForURL((u) => appPath(u, '/login'));
  const code = new URL(page.url()).searchParams.get('error');
  assert.ok(['invalid_state', 'token_exchange_failed'].includes(code), `replay refused: ${code}`);
  assert.equal((await houstonReceived()).length, count, 'replay: Houston received nothing new');
  const now = houstonCookie(await context.cookies(`${w.appUrl}/`));
  assert.equal(now && now.value, session.value, 'the session is the original one');
  assert.deepEqual(txnCookies(await context.cookies()), [], 'the replayed cookie was cleared');
  await context.close();
}

/* Issue 13 item 3, login CSRF by cookie tossing. Mallory starts a login in his own browser
 * and stops at the tenant's answer: a code and state for his account, and his sealed
 * transaction cookie. A page on a sibling host (evil-airflow.<base>, where Airflow runs user
 * code) then plants that cookie in the victim's browser for .<base>, under every name it can
 * think of: the unprefixed name (Path=/ and Path=/v1/oauth), the "__Host-" name with a Domain,
 * the same in lower case, and a nameless cookie whose value reads "__Host-<name>=<value>".
 * The victim follows the sibling's link to the sidecar's redirect with Mallory's code and
 * state. Chromium refuses every "__Host-" attempt from the sibling, the sidecar reads nothing
 * else: the victim lands on /login?error=invalid_state, Houston received nothing, the victim
 * holds no session. (Against a sidecar whose cookie is unprefixed, the victim would be signed
 * in as Mallory.) Mallory's own browser then completes with the same URL: the control. */
async function testCookieTossing() {
  const before = (await houstonReceived()).length;
  const mallory = await newContext();
  const mpage = await newPage(mallory);
  /* Mallory's browser starts the login and shows the tenant's form; his script submits it
   * and keeps the answer (the code and state) instead of following it. */
  await openTenantLogin(mpage);
  const form = await mpage.evaluate(() => {
    const d = new URLSearchParams(new FormData(document.querySelector('form')));
    d.set('email', 'mallory@example.com');
    d.set('password', 'correct horse battery staple');
    d.set('action', 'login');
    return d.toString();
  });
  const approved = await H.request(`${w.tenantUrl}/authorize`, {
    method: 'POST', body: form, ca: w.ca, contentType: 'application/x-www-form-urlencoded',
  });
  const stolen = approved.headers.location || '';
  assert.ok(stolen.startsWith(`${w.sidecarUrl}/v1/oauth/redirect?`),
    `the tenant approved Mallory: ${approved.status} ${stolen}`);
  const own = (await mallory.cookies(`${w.sidecarUrl}/v1/oauth/redirect`))
    .filter((c) => c.name.includes('ha_txn_'));
  assert.equal(own.length, 1, "Mallory's browser holds his transaction cookie");
  const { name, value } = own[0];
  const bare = name.replace(/^__Host-/, '');
  const scope = `Domain=.${H.BASE}; Secure; SameSite=Lax`;
  const planted = [
    `${bare}=${value}; Path=/; ${scope}`,
    `${bare}=${value}; Path=/v1/oauth; ${scope}`,
    `__Host-${bare}=${value}; Path=/; ${scope}`,
    `__host-${bare}=${value}; Path=/; ${scope}`,
    `=__Host-${bare}=${value}; Path=/; ${scope}`,
  ];
  const sibling = await H.startSibling(w, (req, res) => {
    if (req.url !== '/plugin') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'set-cookie': planted });
    res.end('<!doctype html><title>Airflow plugin</title><main><p>Your DAG report is ready.</p>' +
      `<a id="go" href="${stolen.replace(/&/g, '&amp;')}">Open the report</a></main>`);
  });

  const victim = await newContext();
  const vpage = await newPage(victim);
  await vpage.goto(`${sibling}/plugin`);
  const held = (await victim.cookies(`${w.sidecarUrl}/v1/oauth/redirect`))
    .filter((c) => c.name.includes('ha_txn_') || c.value.includes('ha_txn_'));
  console.log(`     (the victim's browser took from the sibling: ${
    held.map((c) => `${c.name || '(nameless)'} Domain=${c.domain} Path=${c.path}`).join(', ')})`);
  for (const c of held) {
    assert.ok(!/^__host-/i.test(c.name) && !/^__host-/i.test(c.value),
      `Chromium refuses a __Host- cookie from a sibling: ${c.name}`);
  }
  await vpage.locator('#go').click();
  await vpage.waitForURL((u) => appPath(u, '/login') || appPath(u, '/oauth'));
  const got = (await houstonReceived()).slice(before);
  assert.deepEqual(got.map((r) => r.email), [], 'Houston received no callback for the victim');
  const final = new URL(vpage.url());
  assert.equal(final.pathname, '/login', `the victim was signed in: ${vpage.url()}`);
  assert.equal(final.searchParams.get('error'), 'invalid_state');
  assert.equal(houstonCookie(await victim.cookies()), undefined, 'the victim holds no session');

  await mpage.goto(stolen);
  await mpage.waitForURL((u) => appPath(u, '/oauth') || appPath(u, '/login'));
  await checkLoggedIn(mpage, mallory, 'mallory@example.com');
  const all = (await houstonReceived()).slice(before);
  assert.deepEqual(all.map((r) => r.email), ['mallory@example.com'], 'only Mallory, in his own');
  await victim.close();
  await mallory.close();
}

/* The sidecar's own error page, rendered at its own origin with its own headers (CSP
 * included): the 302's body is served to the browser as a 200 by request interception. */
async function testSidecarErrorPage() {
  const url = `${w.sidecarUrl}/v1/oauth/redirect?state=bogus&code=x`;
  const r = await H.request(url, { ca: w.ca });
  assert.equal(r.status, 302);
  const loc = new URL(r.headers.location);
  assert.equal(loc.origin + loc.pathname, `${w.appUrl}/login`);
  assert.equal(loc.searchParams.get('error'), 'invalid_state');
  assert.match(r.headers['content-type'] || '', /^text\/html/);
  const context = await newContext();
  const page = await newPage(context);
  await page.route(url, (route) => {
    const headers = { ...r.headers };
    delete headers.location;
    delete headers['content-length'];
    delete headers['transfer-encoding'];
    return route.fulfill({ status: 200, headers, body: r.body });
  });
  await page.goto(url);
  const text = await mainText(page);
  assert.match(text, /could not be matched to your browser/, `readable: ${text}`);
  const link = page.getByRole('link').first();
  assert.ok((await link.getAttribute('href')).startsWith(`${w.appUrl}/login?error=invalid_state`),
    'the page links to where the redirect goes');
  await shot(page, 'sidecar-error-invalid_state');
  await context.close();
}

/* ---- runner ------------------------------------------------------------------------------- */

const tests = [
  ['login through the tenant\'s page lands on app.<base> with Houston\'s cookie', testLogin],
  ['logout goes through the tenant\'s /v2/logout and clears the cookie', testLogout],
  ['cancel at the tenant lands on /login?error=access_denied', testCancel],
  ['a tenant refusal (authorize_error) lands on /login?error=access_denied', testTenantRefusal],
  ['two tabs finishing in reverse order both land logged in', testTwoTabs],
  ['back button and replayed redirect URL never make a second session', testNoReplay],
  ['the sidecar\'s error page is readable and styled', testSidecarErrorPage],
  ['cookies planted by a sibling subdomain never sign the victim in as the attacker',
    testCookieTossing],
];

function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

async function runAll() {
  let passed = 0;
  let failed = 0;
  for (const [name, fn] of tests) {
    const t0 = Date.now();
    try {
      pageErrors.length = 0;
      await withTimeout(fn(), TEST_TIMEOUT_MS, name);
      assert.deepEqual(pageErrors, [], 'console errors in the pages');
      passed++;
      console.log(`ok   ${name} (${Date.now() - t0} ms)`);
    } catch (e) {
      failed++;
      console.log(`FAIL ${name} (${Date.now() - t0} ms)\n     ${e.stack || e}`);
    }
  }
  return { passed, failed };
}

async function main() {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  let result = { passed: 0, failed: 1 };
  try {
    w = await H.startWorld(BUILD);
    console.log(`peers: tenant ${w.tenantUrl}, sidecar ${w.sidecarUrl}, app ${w.appUrl}, ` +
      `Houston ${w.houstonUrl} (state ${w.dir})`);
    console.log(`chromium trusts the dev TLS leaf by SPKI sha256/${w.spki}`);
    browser = await H.launchBrowser(w, chromium);
    result = await runAll();
  } catch (e) {
    console.log(`FAIL setup\n     ${e.stack || e}`);
  } finally {
    if (browser) await browser.close().catch(() => {});
    if (result.failed > 0) console.log(H.logTails());
    await H.stopAll();
    if (w && result.failed === 0) fs.rmSync(w.dir, { recursive: true, force: true });
  }
  console.log(`screenshots: ${ARTIFACTS}`);
  console.log(`${result.passed} passed, ${result.failed} failed`);
  return result.failed === 0 ? 0 : 1;
}

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    H.stopAll().finally(() => process.exit(130));
  });
}
const guard = setTimeout(() => {
  console.log(`FAIL the whole run took over ${TOTAL_TIMEOUT_MS} ms\n0 passed, 1 failed`);
  process.exit(1); /* the exit hook SIGKILLs the children */
}, TOTAL_TIMEOUT_MS);
main().then((code) => {
  clearTimeout(guard);
  process.exitCode = code;
});
