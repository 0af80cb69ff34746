// What ingress-nginx makes of the Ingress objects of one host, and which location a request
// reaches. validate.mjs checks deploy/'s routes with it; tests/edge/run.sh has it write the
// location blocks of a real nginx. It follows the controller (kubernetes/ingress-nginx v1.x):
//
// - an ImplementationSpecific path is handled as Prefix (internal/k8s);
// - updateServerLocations: a Prefix path other than "/" without a trailing "/", on an Ingress
//   without use-regex or rewrite-target, becomes "<path>/" plus an Exact "<path>";
// - the server's locations are sorted by path, descending, then by length, longest first;
// - enforceRegexModifier: when any location of the host (any Ingress) has use-regex or a
//   rewrite-target, every location is rendered `~* "^<path>"`, Exact ones included; otherwise
//   Exact is `= "<path>"` and the rest plain prefixes (buildLocation, with backslashes and
//   quotes escaped as sanitizeQuotedRegex does);
// - proxy_pass names the upstream without a URI, so nginx sends the raw request target on.
//
// nginx then picks, for the normalised URI: an exact match; else the longest prefix; regexes
// are tried in order after the prefixes, and the first that matches wins.
//
//   node ingress-nginx.mjs --render FILE --host HOST --upstream SERVICE=ADDR... [--default ADDR]
// prints the server's locations as nginx configuration (tests/edge).
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { parseAllDocuments } from "yaml";

const ANN = "nginx.ingress.kubernetes.io/";

function annotation(ing, name) {
  return ing.metadata?.annotations?.[ANN + name];
}

// The locations ingress-nginx renders for host, in the order it writes them.
export function serverLocations(objs, host) {
  let locs = [];
  for (const ing of objs.filter((o) => o.kind === "Ingress")) {
    const useRegex = annotation(ing, "use-regex") === "true";
    const rewrite = annotation(ing, "rewrite-target") ?? "";
    for (const rule of ing.spec?.rules ?? []) {
      if ((rule.host ?? "") !== host) continue;
      for (const p of rule.http?.paths ?? []) {
        const pathType = p.pathType === "Exact" ? "Exact" : "Prefix";
        locs.push({ path: p.path, pathType, useRegex, rewrite, ingress: ing,
          service: p.backend.service.name, port: p.backend.service.port });
      }
    }
  }
  const out = [];
  for (const l of locs) {
    const split = l.pathType === "Prefix" && l.path !== "/" && !l.useRegex &&
      !(l.rewrite !== "" && l.rewrite !== l.path) && !l.path.endsWith("/");
    if (!split) { out.push(l); continue; }
    out.push({ ...l, path: l.path + "/" });
    if (!locs.some((x) => x.pathType === "Exact" && x.path === l.path)) out.push({ ...l, pathType: "Exact" });
  }
  locs = out;
  locs.sort((a, b) => (a.path > b.path ? -1 : a.path < b.path ? 1 : 0));
  locs.sort((a, b) => b.path.length - a.path.length); // stable: the first order holds on ties
  const enforceRegex = locs.some((l) => l.useRegex || (l.rewrite !== "" && l.rewrite !== l.path));
  return locs.map((l) => ({ ...l, modifier: enforceRegex ? "~*" : l.pathType === "Exact" ? "=" : "" }));
}

const quoted = (path) => path.replace(/[\\"]/g, (c) => "\\" + c);

// The location line as the template writes it.
export function locationLine(l) {
  if (l.modifier === "~*") return `location ~* "^${quoted(l.path)}"`;
  if (l.modifier === "=") return `location = "${quoted(l.path)}"`;
  return `location "${quoted(l.path)}"`;
}

// The location nginx picks for a normalised URI (what $uri holds), or null.
export function pickLocation(locs, uri) {
  const exact = locs.find((l) => l.modifier === "=" && l.path === uri);
  if (exact) return exact;
  let prefix = null;
  for (const l of locs) {
    if (l.modifier === "" && uri.startsWith(l.path) && (!prefix || l.path.length > prefix.path.length)) prefix = l;
  }
  for (const l of locs) {
    if (l.modifier === "~*" && new RegExp("^" + l.path, "i").test(uri)) return l;
  }
  return prefix;
}

// nginx configuration for the locations: proxy_pass without a URI, the headers ingress-nginx
// sets, the Ingress's proxy-buffer-size and custom-http-errors.
export function nginxLocations(locs, upstreams) {
  const out = [];
  const codes = new Set();
  for (const l of locs) {
    const addr = upstreams[l.service];
    if (!addr) throw new Error(`no --upstream for service ${l.service}`);
    const buf = annotation(l.ingress, "proxy-buffer-size") ?? "4k";
    const errors = (annotation(l.ingress, "custom-http-errors") ?? "").split(",").map((s) => s.trim()).filter(Boolean);
    out.push(`    ${locationLine(l)} {`);
    out.push(`        set $proxy_upstream_name "${l.service}-${l.port.name ?? l.port.number}";`);
    out.push(`        proxy_set_header Host $best_http_host;`);
    for (const h of ["X-Request-ID $req_id", "X-Real-IP $remote_addr", "X-Forwarded-For $remote_addr",
      "X-Forwarded-Host $best_http_host", "X-Forwarded-Port $pass_port",
      "X-Forwarded-Proto $pass_access_scheme", "X-Forwarded-Scheme $pass_access_scheme",
      "X-Scheme $pass_access_scheme", "X-Original-URI $request_uri", "Proxy \"\"",
      "Upgrade $http_upgrade", "Connection $connection_upgrade"]) {
      out.push(`        proxy_set_header ${h};`);
    }
    out.push(`        proxy_http_version 1.1;`);
    out.push(`        proxy_buffer_size ${buf};`);
    out.push(`        proxy_buffers 4 ${buf};`);
    out.push(`        proxy_next_upstream error timeout;`);
    if (errors.length) {
      out.push(`        proxy_intercept_errors on;`);
      for (const c of errors) {
        out.push(`        error_page ${c} = @custom_default_${c};`);
        codes.add(c);
      }
    }
    out.push(`        proxy_pass http://${addr};`);
    out.push(`    }`);
  }
  for (const c of codes) {
    out.push(`    location @custom_default_${c} {`);
    out.push(`        internal;`);
    out.push(`        default_type text/html;`);
    out.push(`        return ${c} "default backend - ${c}\\n";`);
    out.push(`    }`);
  }
  return out.join("\n") + "\n";
}

export function loadObjects(file) {
  return parseAllDocuments(readFileSync(file, "utf8")).map((d) => d.toJS()).filter((o) => o);
}

function main(argv) {
  const a = { upstreams: {} };
  for (let i = 0; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (v === undefined) throw new Error(`missing value after ${k}`);
    if (k === "--render") a.render = v;
    else if (k === "--host") a.host = v;
    else if (k === "--upstream") a.upstreams[v.slice(0, v.indexOf("="))] = v.slice(v.indexOf("=") + 1);
    else throw new Error(`unknown argument ${k}`);
  }
  if (!a.render || !a.host) throw new Error("need --render FILE --host HOST");
  const locs = serverLocations(loadObjects(a.render), a.host);
  if (locs.length === 0) throw new Error(`no Ingress path for host ${a.host}`);
  process.stdout.write(nginxLocations(locs, a.upstreams));
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    main(process.argv.slice(2));
  } catch (e) {
    console.error(`ingress-nginx.mjs: ${e.message}`);
    process.exit(2);
  }
}
