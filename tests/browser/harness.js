'use strict';
/* The browser test's world: the dev tenant, the Houston stand-in (with its app pages) and
 * houston-auth, started on ports of their own in a temporary state directory, with the
 * production-shaped names houston.<base> and app.<base> (and a sibling, evil-airflow.<base>,
 * served in-process when a test needs one); and a headless Debian chromium that maps those
 * names to loopback and trusts exactly the dev tenant's TLS leaf.
 *
 * Every wait is bounded. stop() ends every child (SIGTERM, then SIGKILL after a grace
 * period); an exit hook SIGKILLs whatever is left if the script dies another way. */
const { spawn, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const https = require('node:https');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const BASE = 'astro.example.com';
const HOUSTON_HOST = `houston.${BASE}`;
const APP_HOST = `app.${BASE}`;
/* A sibling under *.<base> that runs user code, as every deployment's Airflow UI does. */
const SIBLING_HOST = `evil-airflow.${BASE}`;
const CLIENT_ID = 'houston-auth-browser';
const AUDIENCE = 'astronomer-ee';
const START_TIMEOUT_MS = 20000;
const REQUEST_TIMEOUT_MS = 5000;

const children = [];
const servers = []; /* in-process servers (the sibling host), closed by stopAll */

function killAllNow() {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        c.kill('SIGKILL');
      } catch (e) {
        /* already gone */
      }
    }
  }
}
process.on('exit', killAllNow);

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/* A free loopback port: bind port 0, read it, release it. */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/* Starts bin with args and env; its stdout and stderr go to logFile. Resolves with the
 * child and the first stdout line matching ready (a RegExp), or rejects after timeoutMs. */
function startChild(name, bin, args, env, logFile, ready) {
  const log = fs.openSync(logFile, 'a');
  const child = spawn(bin, args, { env, stdio: ['ignore', 'pipe', log] });
  children.push(child);
  child.name = name;
  child.logFile = logFile;
  if (ready === null) {
    child.stdout.on('data', (d) => fs.appendFileSync(logFile, d));
    return Promise.resolve({ child, match: null });
  }
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(
      () => reject(new Error(`${name} printed no ready line in ${START_TIMEOUT_MS} ms`)),
      START_TIMEOUT_MS
    );
    child.on('exit', (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited early (${code ?? sig}); log: ${logFile}`));
    });
    child.stdout.on('data', (d) => {
      fs.appendFileSync(logFile, d);
      seen += d.toString();
      const m = seen.match(ready);
      if (m) {
        clearTimeout(timer);
        resolve({ child, match: m });
      }
    });
  });
}

/* One HTTPS or HTTP request to a loopback peer, trusting only ca (when given) and checking
 * the certificate against servername; a body goes as contentType (default JSON). Resolves
 * {status, headers, body}; never follows. */
function request(url, {
  method = 'GET', body = null, ca = null, host = null, contentType = 'application/json',
} = {}) {
  const u = new URL(url);
  const lib = u.protocol === 'https:' ? https : http;
  const opts = {
    method,
    hostname: '127.0.0.1',
    port: u.port,
    path: u.pathname + u.search,
    headers: { host: u.host },
    timeout: REQUEST_TIMEOUT_MS,
  };
  if (u.protocol === 'https:') {
    opts.ca = ca;
    opts.servername = host || u.hostname;
  }
  if (body !== null) {
    opts.headers['content-type'] = contentType;
    opts.headers['content-length'] = Buffer.byteLength(body);
  }
  return new Promise((resolve, reject) => {
    const req = lib.request(opts, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () =>
        resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) })
      );
    });
    req.on('timeout', () => req.destroy(new Error(`timeout: ${method} ${url}`)));
    req.on('error', reject);
    if (body !== null) req.write(body);
    req.end();
  });
}

async function waitReady(url, ca, what) {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let last = 'no answer';
  while (Date.now() < deadline) {
    try {
      const r = await request(url, { ca });
      if (r.status === 200) return;
      last = `status ${r.status}: ${r.body.toString().slice(0, 200)}`;
    } catch (e) {
      last = e.message;
    }
    await sleep(100);
  }
  throw new Error(`${what} not ready at ${url} within ${START_TIMEOUT_MS} ms (${last})`);
}

/* base64(SHA-256(SubjectPublicKeyInfo DER)) of the first certificate in pemFile: the form
 * chromium's --ignore-certificate-errors-spki-list takes. */
function spkiHash(pemFile) {
  const pub = execFileSync('openssl', ['x509', '-in', pemFile, '-pubkey', '-noout']);
  const der = execFileSync('openssl', ['pkey', '-pubin', '-outform', 'der'], { input: pub });
  return crypto.createHash('sha256').update(der).digest('base64');
}

/* Extra arguments from an environment variable (space-separated), for the breakage runs. */
function extraArgs(name) {
  const v = process.env[name];
  return v ? v.split(/\s+/).filter((s) => s !== '') : [];
}

async function startTenant(w, buildDir) {
  const args = [
    '--listen', '127.0.0.1:0', '--state-dir', w.dir, '--client-id', CLIENT_ID,
    '--client-secret', w.clientSecret, '--audience', AUDIENCE,
    '--callback', `${w.sidecarUrl}/v1/oauth/redirect`, '--logout-url', `${w.appUrl}/logout`,
    '--san', HOUSTON_HOST, '--san', APP_HOST, '--san', SIBLING_HOST, '--test-controls',
    '--no-auto-approve',
  ];
  const env = { PATH: process.env.PATH, HOME: process.env.HOME || '/tmp' };
  const { match } = await startChild('dev-tenant', path.join(buildDir, 'tools/dev-tenant'), args,
    env, path.join(w.dir, 'tenant.log'), /dev-tenant: ready (https:\/\/[^/\s]+)\//);
  w.tenantUrl = match[1];
  w.tenantHost = new URL(w.tenantUrl).host;
  w.caFile = path.join(w.dir, 'ca.pem');
  w.ca = fs.readFileSync(w.caFile);
}

async function startStandin(w, buildDir) {
  const args = [
    '--listen', '127.0.0.1:0', '--base-domain', BASE, '--app-url', w.appUrl,
    '--app-listen', `127.0.0.1:${w.appPort}`, '--tls-cert', path.join(w.dir, 'tls.pem'),
    '--tls-key', path.join(w.dir, 'tls.key'), '--sidecar-url', w.sidecarUrl, '--test-controls',
    ...extraArgs('HA_BROWSER_STANDIN_ARGS'),
  ];
  const env = { PATH: process.env.PATH, HOME: process.env.HOME || '/tmp' };
  const { match } = await startChild('houston-standin',
    path.join(buildDir, 'tools/houston-standin'), args, env, path.join(w.dir, 'houston.log'),
    /houston-standin: ready (http:\/\/\S+)/);
  w.houstonUrl = match[1];
}

async function startSidecar(w, buildDir) {
  const env = {
    PATH: process.env.PATH,
    HOME: process.env.HOME || '/tmp',
    GLOBAL_BASE_DOMAIN: BASE,
    AUTH0_CLIENT_ID: CLIENT_ID,
    AUTH0_BASE_DOMAIN: w.tenantHost,
    AUTH_SIDECAR_LISTEN: `127.0.0.1:${w.sidecarPort}`,
    AUTH_SIDECAR_HOUSTON_URL: w.houstonUrl,
    AUTH_SIDECAR_PUBLIC_URL: w.sidecarUrl,
    AUTH_SIDECAR_APP_URL: w.appUrl,
    AUTH_SIDECAR_TENANT_CA_FILE: w.caFile,
    AUTH_SIDECAR_TLS_CERT_FILE: path.join(w.dir, 'tls.pem'),
    AUTH_SIDECAR_TLS_KEY_FILE: path.join(w.dir, 'tls.key'),
    AUTH0_CLIENT_SECRET: w.clientSecret,
    AUTH_SIDECAR_COOKIE_SECRET: crypto.randomBytes(48).toString('base64'),
    AUTH_SIDECAR_LOG_LEVEL: 'debug',
  };
  for (const kv of extraArgs('HA_BROWSER_SIDECAR_ENV')) {
    const i = kv.indexOf('=');
    if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  await startChild('houston-auth', path.join(buildDir, 'houston-auth'), [], env,
    path.join(w.dir, 'sidecar.log'), null);
  await waitReady(`${w.sidecarUrl}/readyz`, w.ca, 'houston-auth');
}

/* Starts the three peers; returns the world (URLs, ports, CA, state dir). */
async function startWorld(buildDir) {
  const w = { dir: fs.mkdtempSync(path.join(os.tmpdir(), 'ha-browser-')) };
  w.clientSecret = crypto.randomBytes(24).toString('hex');
  w.sidecarPort = await freePort();
  w.appPort = await freePort();
  w.siblingPort = await freePort();
  w.sidecarUrl = `https://${HOUSTON_HOST}:${w.sidecarPort}`;
  w.appUrl = `https://${APP_HOST}:${w.appPort}`;
  await startTenant(w, buildDir);
  await startStandin(w, buildDir);
  await startSidecar(w, buildDir);
  w.spki = spkiHash(path.join(w.dir, 'tls.pem'));
  return w;
}

/* An HTTPS server for https://<SIBLING_HOST>:<port> on loopback with the dev TLS leaf (its
 * SANs include SIBLING_HOST), answering every request with handler(req, res). Resolves with
 * its origin. */
async function startSibling(w, handler) {
  const srv = https.createServer({
    key: fs.readFileSync(path.join(w.dir, 'tls.key')),
    cert: fs.readFileSync(path.join(w.dir, 'tls.pem')),
  }, handler);
  servers.push(srv);
  await new Promise((resolve, reject) => {
    srv.on('error', reject);
    srv.listen(w.siblingPort, '127.0.0.1', resolve);
  });
  return `https://${SIBLING_HOST}:${w.siblingPort}`;
}

/* Chromium flags this machine needs (closed network: no background or component traffic),
 * the production names and the sibling mapped to loopback (everything else but localhost:
 * NOTFOUND, so a stray navigation fails loudly), and trust pinned to the dev TLS leaf's SPKI. */
async function launchBrowser(w, chromium) {
  const rules = [
    `MAP ${HOUSTON_HOST} 127.0.0.1`, `MAP ${APP_HOST} 127.0.0.1`, `MAP ${SIBLING_HOST} 127.0.0.1`,
    'MAP * ~NOTFOUND', 'EXCLUDE localhost',
  ].join(', ');
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    timeout: 30000,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      `--host-resolver-rules=${rules}`, `--ignore-certificate-errors-spki-list=${w.spki}`,
    ],
  });
}

/* SIGTERM every child, wait up to 3 s, then SIGKILL what is left. */
async function stopAll() {
  for (const srv of servers.splice(0)) {
    srv.closeAllConnections();
    srv.close();
  }
  const alive = children.filter((c) => c.exitCode === null && c.signalCode === null);
  const gone = alive.map((c) => new Promise((resolve) => c.once('exit', resolve)));
  for (const c of alive) c.kill('SIGTERM');
  await Promise.race([Promise.all(gone), sleep(3000)]);
  killAllNow();
}

/* The last lines of every child's log, for a failure report. */
function logTails(lines = 15) {
  return children
    .map((c) => {
      let text = '';
      try {
        text = fs.readFileSync(c.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
      } catch (e) {
        text = `(no log: ${e.message})`;
      }
      return `--- ${c.name} (${c.logFile}) ---\n${text}`;
    })
    .join('\n');
}

module.exports = {
  BASE, HOUSTON_HOST, APP_HOST, SIBLING_HOST, startWorld, startSibling, launchBrowser, stopAll,
  logTails, request, sleep,
};
