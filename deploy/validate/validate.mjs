// Validates rendered deploy/ manifests (scripts/check-deploy.sh runs it).
//
//   node validate.mjs --facts facts.json --render NAME=FILE... [--extra FILE]... [--extract DIR]
//
// 1. Every object in every file is checked against the Kubernetes OpenAPI schema of its
//    apiVersion/kind (npm kubernetes-models); an unknown kind is an error.
// 2. The --render files (the same base rendered by different kustomize versions) must hold
//    the same objects.
// 3. The houston-auth container, its Service, the Ingress and the NetworkPolicy must agree
//    with the binary (facts.json, taken from `houston-auth --help` and the sources): port,
//    probe and metrics paths, environment variable names, secret and config files that exist
//    in the Secret and ConfigMap given with --extra, security context. The Ingress is read as
//    ingress-nginx renders it (ingress-nginx.mjs): the login paths and every spelling of
//    Houston's OAuth callback must reach the sidecar, Houston's API and the sidecar's probes
//    and metrics must not. Every Ingress with an ingress-nginx auth-url (the chart's UI
//    Ingresses) must send that subrequest to the sidecar's Service, on the port that reaches
//    the sidecar and Houston's path /v1/authorization, and keep relaying authorization,
//    username and email; the NetworkPolicy must admit the ingress controller, which makes it.
// 4. --extract DIR writes the files the pod would see (ConfigMap and Secret keys at their
//    mount paths, under DIR) and prints the container's environment, paths moved under DIR,
//    one NAME=VALUE per line, so the binary itself can --check-config what the pod gets.
import { readFileSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { parseAllDocuments } from "yaml";
import { locationLine, pickLocation, serverLocations } from "./ingress-nginx.mjs";

const errors = [];
const fail = (msg) => errors.push(msg);

function parseArgs(argv) {
  const a = { render: [], extra: [], facts: null, extract: null };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (v === undefined) throw new Error(`missing value after ${k}`);
    if (k === "--render") {
      const eq = v.indexOf("=");
      a.render.push({ name: v.slice(0, eq), file: v.slice(eq + 1) });
    } else if (k === "--extra") a.extra.push(v);
    else if (k === "--facts") a.facts = JSON.parse(readFileSync(v, "utf8"));
    else if (k === "--extract") a.extract = v;
    else throw new Error(`unknown argument ${k}`);
  }
  if (!a.facts || a.render.length === 0) throw new Error("need --facts and --render");
  return a;
}

function loadObjects(file) {
  const docs = parseAllDocuments(readFileSync(file, "utf8"));
  const objs = [];
  for (const d of docs) {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
    const o = d.toJS();
    if (o !== null && o !== undefined) objs.push(o);
  }
  if (objs.length === 0) fail(`${file}: no objects`);
  return objs;
}

async function validateSchema(obj, where) {
  const [group, version] = obj.apiVersion.includes("/")
    ? obj.apiVersion.split("/")
    : [null, obj.apiVersion];
  const mod = group ? `kubernetes-models/${group}/${version}/${obj.kind}` : `kubernetes-models/${version}/${obj.kind}`;
  let Model;
  try {
    Model = (await import(mod))[obj.kind];
  } catch {
    fail(`${where}: no schema for ${obj.apiVersion} ${obj.kind}`);
    return;
  }
  try {
    new Model(obj).validate();
  } catch (e) {
    fail(`${where}: ${obj.kind}/${obj.metadata?.name}: ${e.message}`);
  }
}

const key = (o) => `${o.kind}/${o.metadata?.name}`;
const byKey = (objs) => new Map(objs.map((o) => [key(o), o]));

function compareRenders(renders) {
  const [first, ...rest] = renders;
  const a = byKey(first.objs);
  for (const r of rest) {
    const b = byKey(r.objs);
    for (const k of new Set([...a.keys(), ...b.keys()])) {
      if (!isDeepStrictEqual(a.get(k), b.get(k))) fail(`${k} differs between ${first.name} and ${r.name}`);
    }
  }
}

const labelsMatch = (selector, labels) =>
  Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v);

function portNumber(port, container) {
  if (typeof port === "number") return port;
  return container.ports?.find((p) => p.name === port)?.containerPort;
}

// A secretKeyRef resolved against the Secrets given with --extra (undefined when optional
// and absent, as the kubelet would leave the variable unset).
function secretRef(e, extras) {
  const ref = e.valueFrom?.secretKeyRef;
  if (!ref) { fail(`env ${e.name}: valueFrom other than secretKeyRef`); return undefined; }
  const s = extras.find((o) => o.kind === "Secret" && o.metadata.name === ref.name);
  if (!s) { fail(`env ${e.name}: Secret ${ref.name} not given to check against`); return undefined; }
  const v = s.data?.[ref.key];
  if (v === undefined && ref.optional !== true) fail(`env ${e.name}: Secret ${ref.name} has no key ${ref.key}`);
  return v === undefined ? undefined : Buffer.from(v, "base64").toString();
}

function checkEnv(c, facts, extras) {
  const env = new Map();
  for (const e of c.env ?? []) {
    const v = e.valueFrom ? secretRef(e, extras) : e.value;
    if (v !== undefined) env.set(e.name, v);
    if (!facts.envNames.includes(e.name)) fail(`env ${e.name}: houston-auth --help names no such variable`);
  }
  for (const s of facts.requiredSecrets) {
    if (!env.has(s) && !env.has(`${s}_FILE`)) fail(`env: neither ${s} nor ${s}_FILE is set`);
  }
  for (const s of facts.secretEnvs) {
    if (c.env?.find((e) => e.name === s && !e.valueFrom)) fail(`env ${s}: a secret as a literal value`);
  }
  const listen = env.get("AUTH_SIDECAR_LISTEN") ?? facts.defaultListen;
  if (Number(listen.split(":").pop()) !== facts.port) fail(`listen ${listen}: not port ${facts.port}`);
  if (!env.has(facts.configEnv)) fail(`env ${facts.configEnv} not set: the sidecar would read no config file`);
  return env;
}

function checkContainer(c, pod, facts) {
  const port = c.ports?.find((p) => p.containerPort === facts.port);
  if (!port) fail(`container ${c.name}: no containerPort ${facts.port}`);
  const probes = [["livenessProbe", facts.paths.healthz], ["readinessProbe", facts.paths.readyz]];
  for (const [name, path] of probes) {
    const g = c[name]?.httpGet;
    if (!g) fail(`${name}: missing or not httpGet`);
    else if (g.path !== path || portNumber(g.port, c) !== facts.port)
      fail(`${name}: ${g.path} on ${g.port}, want ${path} on ${facts.port}`);
  }
  const sc = c.securityContext ?? {};
  const want = { runAsNonRoot: true, runAsUser: facts.uid, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false };
  for (const [k, v] of Object.entries(want)) if (sc[k] !== v) fail(`securityContext.${k} = ${sc[k]}, want ${v}`);
  if (!sc.capabilities?.drop?.includes("ALL")) fail("securityContext.capabilities.drop lacks ALL");
  if (sc.capabilities?.add?.length) fail("securityContext.capabilities.add is not empty");
  if (sc.seccompProfile?.type !== "RuntimeDefault") fail("securityContext.seccompProfile is not RuntimeDefault");
  for (const k of ["requests", "limits"]) if (!c.resources?.[k]?.memory) fail(`resources.${k}.memory missing`);
  const ann = pod.metadata?.annotations ?? {};
  if (ann["prometheus.io/scrape"] !== "true" || Number(ann["prometheus.io/port"]) !== facts.port ||
      ann["prometheus.io/path"] !== facts.paths.metrics)
    fail(`prometheus annotations ${JSON.stringify(ann)} do not name ${facts.paths.metrics} on ${facts.port}`);
  const grace = pod.spec.terminationGracePeriodSeconds ?? 30;
  if (grace * 1000 < facts.drainMs + 5000) fail(`terminationGracePeriodSeconds ${grace} leaves no margin over the ${facts.drainMs} ms drain`);
}

// The files the container sees: mountPath/key -> { kind, name, key }.
function mountedFiles(c, pod) {
  const files = new Map();
  for (const m of c.volumeMounts ?? []) {
    const v = pod.spec.volumes?.find((x) => x.name === m.name);
    if (!v) { fail(`volumeMount ${m.name}: no such volume`); continue; }
    if (m.subPath) fail(`volumeMount ${m.name}: subPath mounts never see updates`);
    if (m.readOnly !== true) fail(`volumeMount ${m.name}: not readOnly`);
    const src = v.configMap ? { kind: "ConfigMap", name: v.configMap.name, items: v.configMap.items }
      : v.secret ? { kind: "Secret", name: v.secret.secretName, items: v.secret.items } : null;
    if (!src) continue;
    src.mountPath = m.mountPath;
    files.set(m.mountPath, src);
  }
  return files;
}

function resolveFile(path, mounts, extras) {
  for (const src of mounts.values()) {
    if (dirname(path) !== src.mountPath) continue;
    const base = path.slice(src.mountPath.length + 1);
    const item = src.items ? src.items.find((i) => i.path === base) : { key: base };
    if (!item) return { error: `${path}: not among the items of ${src.kind} ${src.name}` };
    const obj = extras.find((o) => o.kind === src.kind && o.metadata.name === src.name);
    if (!obj) return { error: `${path}: ${src.kind} ${src.name} not given to check against` };
    const data = obj.data?.[item.key] ?? obj.stringData?.[item.key];
    if (data === undefined) return { error: `${path}: ${src.kind} ${src.name} has no key ${item.key}` };
    return { src, data: src.kind === "Secret" && obj.data ? Buffer.from(data, "base64") : Buffer.from(data) };
  }
  return { error: `${path}: not inside any ConfigMap or Secret mount` };
}

function checkFiles(env, mounts, extras, facts, extractDir) {
  const out = [];
  for (const [name, value] of env) {
    const isFile = name === facts.configEnv || name.endsWith("_FILE");
    if (!isFile) { out.push(`${name}=${value}`); continue; }
    const r = resolveFile(value, mounts, extras);
    if (r.error) { fail(`env ${name}: ${r.error}`); continue; }
    const wantKind = name === facts.configEnv ? "ConfigMap" : "Secret";
    if (r.src.kind !== wantKind) fail(`env ${name}: from a ${r.src.kind}, want a ${wantKind}`);
    if (extractDir) {
      const p = join(extractDir, value);
      mkdirSync(dirname(p), { recursive: true });
      writeFileSync(p, r.data, { mode: 0o600 });
      out.push(`${name}=${p}`);
    }
  }
  return out;
}

function checkService(objs, pod, c, facts) {
  const svc = objs.filter((o) => o.kind === "Service" && labelsMatch(o.spec.selector, pod.metadata.labels) &&
    o.spec.ports.some((p) => portNumber(p.targetPort, c) === facts.port));
  if (svc.length !== 1) { fail(`want one Service sending to port ${facts.port}, found ${svc.length}`); return null; }
  return svc[0];
}

// Requests as nginx matches them (its normalised $uri: decoded, '/' runs merged, dot
// segments resolved, case kept). Each must reach the sidecar: its own login paths, and every
// spelling of Houston's OAuth namespace Express would route (Houston 0.9's callback takes
// unsigned tokens; `\/` is what nginx keeps of `/V1\/OAUTH/callback#`).
const toSidecar = (f) => [f.paths.start, f.paths.redirect, f.paths.logout, "/v1/oauth/callback",
  "/V1/OAuth/Callback", "/v1/oauth/callback/", "/V1/OAUTH/CALLBACK/", "/v1\\/oauth/callback",
  "/V1\\/OAuth\\/Callback", "/v1/oauth", "/v1/oauth/", "/V1/OAUTH/START/"];
// Each must reach Houston (its API, and the sidecar's probes and metrics stay in the cluster).
const toHouston = (f) => ["/", "/v1", "/v1/healthz", "/v1/authorization", "/v1/registry/events",
  "/v1/alerts", f.paths.healthz, f.paths.readyz, f.paths.metrics];

function checkIngress(objs, svc, facts) {
  const ings = objs.filter((o) => o.kind === "Ingress");
  const hosts = new Set();
  for (const ing of ings) {
    for (const rule of ing.spec.rules ?? []) {
      hosts.add(rule.host ?? "");
      for (const p of rule.http?.paths ?? []) {
        const b = p.backend.service;
        if (b.name !== svc.metadata.name) continue;
        const sp = svc.spec.ports.find((x) => x.name === b.port.name || x.port === b.port.number);
        if (!sp) fail(`Ingress ${ing.metadata.name}: ${p.path} to a port the Service lacks`);
      }
    }
  }
  for (const host of hosts) {
    const locs = serverLocations(objs, host);
    if (!locs.some((l) => l.service === svc.metadata.name)) continue;
    for (const uri of toSidecar(facts)) {
      const l = pickLocation(locs, uri);
      if (l?.service !== svc.metadata.name)
        fail(`Ingress ${host}: ${uri} reaches ${l ? `${locationLine(l)} (${l.service})` : "no location"}, not the sidecar`);
    }
    for (const uri of toHouston(facts)) {
      const l = pickLocation(locs, uri);
      if (!l || l.service === svc.metadata.name)
        fail(`Ingress ${host}: ${uri} reaches ${l ? `${locationLine(l)} (the sidecar)` : "no location"}, not Houston`);
    }
  }
}

// Houston's contract for ingress-nginx's auth-url (astronomer/astronomer's UI Ingresses): the
// path, and the response headers the Ingress relays to the UI. The sidecar serves the same path,
// so pointing an auth-url back at Houston changes only host and port.
const AUTHZ_PATH = "/v1/authorization";
const AUTHZ_HEADERS = ["authorization", "username", "email"];
// The chart's ingress controller (astronomer/astronomer charts/nginx, before 1.0): the pods
// that make every auth-url subrequest.
const INGRESS_CONTROLLER = { tier: "nginx", component: "ingress-controller" };

const annotation = (o, name) => o.metadata?.annotations?.[`nginx.ingress.kubernetes.io/${name}`];

// Every auth-url at http://<sidecar Service>.<namespace>.svc.cluster.local:<its port><AUTHZ_PATH>.
// Returns how many Ingresses have one; none is an error (the stand-in lost its UI Ingresses).
function checkAuthUrls(objs, svc, c, facts) {
  const sp = svc.spec.ports.find((p) => portNumber(p.targetPort, c) === facts.port);
  const host = new RegExp(`^${svc.metadata.name}\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?\\.svc\\.cluster\\.local$`);
  const want = `http://${svc.metadata.name}.<namespace>.svc.cluster.local:${sp.port}${AUTHZ_PATH}`;
  const gated = objs.filter((o) => o.kind === "Ingress" && annotation(o, "auth-url") !== undefined);
  if (gated.length === 0) fail("no Ingress has an auth-url: the UI Ingresses are missing");
  for (const ing of gated) {
    const where = `Ingress ${ing.metadata.name}`;
    const raw = annotation(ing, "auth-url");
    let u = null;
    try { u = new URL(raw); } catch { /* reported below */ }
    if (!u || u.protocol !== "http:" || !host.test(u.hostname) || Number(u.port) !== sp.port ||
        u.pathname !== AUTHZ_PATH || u.search !== "" || u.username !== "")
      fail(`${where}: auth-url ${raw}, want ${want}`);
    const relayed = String(annotation(ing, "auth-response-headers") ?? "").split(",").map((h) => h.trim().toLowerCase());
    for (const h of AUTHZ_HEADERS) if (!relayed.includes(h)) fail(`${where}: auth-response-headers lacks ${h}`);
    if (!/^https:\/\/app\.[^/]+\/login$/.test(annotation(ing, "auth-signin") ?? ""))
      fail(`${where}: auth-signin ${annotation(ing, "auth-signin")}, want https://app.<baseDomain>/login`);
  }
  return gated.length;
}

function checkNetworkPolicy(objs, pod, facts, gated) {
  const rules = objs.filter((o) => o.kind === "NetworkPolicy" && labelsMatch(o.spec.podSelector.matchLabels, pod.metadata.labels))
    .flatMap((o) => o.spec.ingress ?? []).filter((r) => r.ports?.some((p) => p.port === facts.port));
  if (rules.length === 0) fail(`no NetworkPolicy admits port ${facts.port} to Houston's pods`);
  const controller = { ...INGRESS_CONTROLLER, release: pod.metadata.labels.release };
  const fromController = rules.some((r) => r.from?.some((f) => !f.namespaceSelector && f.podSelector &&
    labelsMatch(f.podSelector.matchLabels, controller)));
  if (gated > 0 && !fromController)
    fail(`no NetworkPolicy admits the ingress controller (${JSON.stringify(controller)}) to port ${facts.port}: the auth-url subrequests would time out`);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const facts = args.facts;
  const renders = args.render.map((r) => ({ ...r, objs: loadObjects(r.file) }));
  const extras = args.extra.flatMap(loadObjects);
  for (const r of renders) for (const o of r.objs) await validateSchema(o, r.name);
  for (const o of extras) await validateSchema(o, "extra");
  compareRenders(renders);

  const objs = renders[0].objs;
  const deps = objs.filter((o) => o.kind === "Deployment" && o.spec.template.spec.containers.some((c) => c.name === facts.container));
  if (deps.length !== 1) fail(`want one Deployment with container ${facts.container}, found ${deps.length}`);
  let envOut = [];
  let gated = 0;
  if (deps.length === 1) {
    const pod = deps[0].spec.template;
    const c = pod.spec.containers.find((x) => x.name === facts.container);
    if (!pod.spec.containers.some((x) => x.name === "houston")) fail("Houston's own container is gone");
    checkContainer(c, pod, facts);
    const env = checkEnv(c, facts, extras);
    envOut = checkFiles(env, mountedFiles(c, pod), extras, facts, args.extract);
    const svc = checkService(objs, pod, c, facts);
    if (svc) {
      checkIngress(objs, svc, facts);
      gated = checkAuthUrls(objs, svc, c, facts);
    }
    checkNetworkPolicy(objs, pod, facts, gated);
  }
  if (errors.length) {
    for (const e of errors) console.error(`validate: ${e}`);
    process.exit(1);
  }
  const n = renders.reduce((s, r) => s + r.objs.length, 0) + extras.length;
  console.error(`validate: ${n} objects valid; ${renders.map((r) => r.name).join(", ")} agree; sidecar wiring matches the binary; ${gated} auth-urls at the sidecar`);
  if (args.extract) console.log(envOut.join("\n"));
}

main().catch((e) => {
  console.error(`validate: ${e.message}`);
  process.exit(2);
});
