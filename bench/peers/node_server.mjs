// Node servers for the side-by-side benchmarks, bound to 127.0.0.1 on a port
// from the system; prints "listening PORT" once ready.
//   node node_server.mjs greet        the greet-and-close server
//   node node_server.mjs hold COUNT   holds connections; "held COUNT"
import net from "node:net";

const GREETING = "Thank you for connecting";
const [kind, arg] = process.argv.slice(2);

let server;
if (kind === "greet") {
  server = net.createServer((socket) => {
    socket.on("error", () => {});
    socket.end(GREETING);
  });
} else if (kind === "hold") {
  const count = Number(arg);
  const sockets = [];
  server = net.createServer((socket) => {
    socket.on("error", () => {});
    socket.on("data", () => {});
    sockets.push(socket);
    if (sockets.length === count) console.log(`held ${count}`);
  });
} else {
  console.error("usage: node_server.mjs greet|hold [COUNT]");
  process.exit(2);
}
server.listen({ host: "127.0.0.1", port: 0, backlog: 4096 }, () => {
  console.log(`listening ${server.address().port}`);
});
