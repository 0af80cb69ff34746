// Sends the same raw request targets to Express 4 (mounted as Houston 0.9 mounts its
// routers) and to the Houston stand-in, and reports every target where one routes a POST to
// Houston's callback and the other does not. With --via PORT the Express side is reached
// through that proxy instead (an nginx in front), to look for spellings it lets through.
//
//   npm ci && node compare.mjs --standin BUILD/tools/houston-standin [--count N] [--seed S]
//                              [--via NGINX_PORT --express-port PORT]
import { spawn } from "node:child_process";
import net from "node:net";
import express from "express";

const args = Object.fromEntries(process.argv.slice(2).reduce((a, v, i, all) =>
  (i % 2 === 0 ? a.concat([[v.replace(/^--/, ""), all[i + 1]]]) : a), []));
const count = Number(args.count ?? 5000);
let seed = Number(args.seed ?? 1);
const rand = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
const pick = (xs) => xs[rand(xs.length)];

function houstonExpress(port) {
  const app = express(), v1 = express.Router(), oauth = express.Router(), cb = express.Router();
  cb.use(express.urlencoded({ extended: false }));
  cb.post("/", (req, res) => res.status(200).send("CALLBACK"));
  oauth.use("/callback", cb);
  v1.use("/oauth", oauth);
  app.use("/v1", v1);
  app.use((req, res) => res.status(404).send("not found"));
  return new Promise((ok) => { const s = app.listen(port, "127.0.0.1", () => ok(s)); });
}

function post(port, target) {
  return new Promise((ok) => {
    const s = net.connect(port, "127.0.0.1");
    let data = "";
    s.setTimeout(5000, () => s.destroy());
    s.on("data", (d) => { data += d.toString("latin1"); });
    s.on("close", () => ok(data));
    s.on("error", () => ok(data));
    s.write(Buffer.concat([Buffer.from("POST ", "latin1"), Buffer.from(target, "latin1"),
      Buffer.from(" HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n" +
        "Content-Length: 3\r\nConnection: close\r\n\r\na=b", "latin1")]));
  });
}

function target() {
  const seps = [...Array(12).fill("/"), ...Array(4).fill("//"), "///", "\\", "/\\", "\\/", "/./",
    "/x/../", "%2f", "%5c", "/;/", "/a@b/", "//a@b/", "//a@b\\", "/#/", "/?/", "//a@b:80/", "//%41@b/"];
  const heads = [...Array(10).fill(""), "/", "//", "/\\", "//a@b", "/\\a@b", "/x/..", "/."];
  const tails = ["", "/", "//", "\\", "#", "#x", "?a=1", "/#", "\\#", "/.", "/..", "\\#x", "?#", ";",
    "%20", "/\\#", "///a@b/#", "//a@b/#", "?x#"];
  let t = pick(heads) + pick(seps) + pick(["v1", "V1", "%761", "v1;"]) + pick(seps) +
    pick(["oauth", "OAuth", "OAUTH", "%6fauth"]) + pick(seps) +
    pick(["callback", "Callback", "CALLBACK", "%63allback"]) + pick(tails);
  return t.startsWith("/") ? t : "/" + t;
}

const expressPort = Number(args["express-port"] ?? 0);
const server = await houstonExpress(expressPort);
const ePort = args.via ? Number(args.via) : server.address().port;
const standin = spawn(args.standin, ["--listen", "127.0.0.1:0", "--test-controls"], { stdio: ["ignore", "pipe", "ignore"] });
const sPort = await new Promise((ok) => standin.stdout.on("data", (d) => {
  const m = /ready http:\/\/127\.0\.0\.1:(\d+)/.exec(d.toString());
  if (m) ok(Number(m[1]));
}));
let routed = 0, differ = 0;
for (let i = 0; i < count; i++) {
  const t = target();
  const e = (await post(ePort, t)).includes("CALLBACK");
  const s = (await post(sPort, t)).startsWith("HTTP/1.1 302");
  routed += e;
  if (e !== s && !args.via) {
    differ++;
    if (differ <= 20) console.log(`differ: express ${e} stand-in ${s} ${JSON.stringify(t)}`);
  }
}
console.log(`${count} targets: Express routed ${routed} to the callback${args.via ? " through the proxy" : ""}` +
  (args.via ? "" : `, the stand-in disagreed on ${differ}`));
standin.kill();
server.close();
process.exitCode = (args.via ? routed : differ) === 0 ? 0 : 1;
