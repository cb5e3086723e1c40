// A differential peer: Node's built-in HTTP server (llhttp). It answers the first request on each connection with what
// it parsed, as JSON, then closes; a request it refuses gets Node's own error answer. Prints its port on start.
const http = require("http");
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const headers = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2) headers.push([req.rawHeaders[i].toLowerCase(), req.rawHeaders[i + 1]]);
    const body = Buffer.concat(chunks).toString("latin1");
    const out = JSON.stringify({ method: req.method, target: req.url, headers, body });
    res.writeHead(200, { "Content-Type": "application/json", Connection: "close" });
    res.end(out);
  });
  req.on("error", () => res.destroy());
});
server.keepAliveTimeout = 1000;
server.listen(0, "127.0.0.1", () => console.log(server.address().port));
