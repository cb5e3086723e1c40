// A differential peer: Node's HTTP client. `node fetch-client.js PORT PATH` sends one GET and prints what it parsed
// of the response as JSON ({status, headers, body}), or {error} when it refused the response.
const http = require("http");
const [port, path] = process.argv.slice(2);
let printed = false;
const print = (o) => {
  if (!printed) console.log(JSON.stringify(o));
  printed = true;
};
const req = http.get({ host: "127.0.0.1", port: Number(port), path, agent: false }, (res) => {
  const chunks = [];
  res.on("data", (c) => chunks.push(c));
  res.on("end", () => {
    const headers = [];
    for (let i = 0; i < res.rawHeaders.length; i += 2) headers.push([res.rawHeaders[i].toLowerCase(), res.rawHeaders[i + 1]]);
    print({ status: res.statusCode, headers, body: Buffer.concat(chunks).toString("latin1") });
  });
  res.on("error", (e) => print({ error: String(e.code || e.message) }));
  res.on("aborted", () => print({ error: "aborted" }));
});
req.on("error", (e) => print({ error: String(e.code || e.message) }));
req.setTimeout(5000, () => req.destroy(new Error("timeout")));
