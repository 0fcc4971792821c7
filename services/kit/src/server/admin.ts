// The plain-HTTP admin port: /metrics, /healthz, /readyz, /faults, and routes a service adds (identity: JWKS).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { registry } from "../shared/metrics.js";
import type { Faults } from "./faults.js";
import { parseFaults } from "./faults.js";
import type { Health } from "./health.js";

/** A read-only route a service adds to its admin port (GET and HEAD; other methods get 405). */
export type AdminRoute = (req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

function json(res: ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { "content-type": "application/json" }).end(`${JSON.stringify(body)}\n`);
}

async function readBody(req: IncomingMessage, limit = 16_384): Promise<string> {
  let body = "";
  for await (const chunk of req) {
    body += chunk;
    if (body.length > limit) throw new RangeError("body too large");
  }
  return body;
}

export function adminServer(health: Health, faults: Faults, routes: Record<string, AdminRoute> = {}): Server {
  return createServer(async (req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    try {
      if (path === "/metrics") {
        res.writeHead(200, { "content-type": registry.contentType }).end(await registry.metrics());
      } else if (path === "/healthz") {
        json(res, 200, { status: "alive" });
      } else if (path === "/readyz") {
        json(res, health.current === "SERVING" ? 200 : 503, { status: health.current });
      } else if (path === "/faults" && req.method === "GET") {
        json(res, 200, faults.current);
      } else if (path === "/faults" && (req.method === "PUT" || req.method === "POST")) {
        let settings: ReturnType<typeof parseFaults>;
        try {
          const raw = await readBody(req);
          settings = parseFaults(raw.trim() ? JSON.parse(raw) : {});
        } catch (err) {
          return json(res, 400, { error: (err as Error).message });
        }
        faults.set(settings);
        json(res, 200, settings);
      } else if (routes[path]) {
        if (req.method !== "GET" && req.method !== "HEAD") return json(res, 405, { error: `${path} answers GET only` });
        await routes[path](req, res);
      } else {
        json(res, 404, { error: `no admin route ${path}` });
      }
    } catch (err) {
      if (!res.headersSent) json(res, 500, { error: (err as Error).message });
    }
  });
}
