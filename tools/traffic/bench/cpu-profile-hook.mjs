// Loaded into every process of a stack (NODE_OPTIONS=--import=<this file>, MESHMART_CPU_PROF_DIR=<dir>)
// because Node 20 refuses --cpu-prof in NODE_OPTIONS. SIGUSR2 starts V8's sampling profiler (through
// node:inspector), so the profile covers the load and not the start-up (module loading);
// SIGTERM/SIGINT (or exit) stops it and writes <dir>/<name>.<pid>.cpuprofile, before the process drains, so the
// profile is kept even if the process then has to be killed.
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { basename, extname, join } from "node:path";

const dir = process.env.MESHMART_CPU_PROF_DIR;
// Which process this is, for the file name: services/<name>/src/main.ts or its compiled dist/<name>.js (catalog
// with its VERSION), else the script.
const script = process.argv[1] ?? "node";
const service = /services\/([^/]+)\//.exec(script)?.[1] ?? /dist\/(identity|catalog|orders|payment)\.js$/.exec(script)?.[1];
const name = service ? `${service}${service === "catalog" && process.env.VERSION ? `-${process.env.VERSION}` : ""}` : basename(script, extname(script));
if (dir) {
  const session = new Session();
  session.connect();
  session.post("Profiler.enable");
  session.post("Profiler.setSamplingInterval", { interval: 1000 }); // µs
  let running = false;
  // Listening also keeps SIGUSR2 from ending the process (its default action).
  process.on("SIGUSR2", () => {
    if (running) return;
    running = true;
    session.post("Profiler.start");
  });
  const write = () => {
    if (!running) return;
    running = false;
    // An in-process inspector session answers synchronously, so this also works inside an exit handler.
    session.post("Profiler.stop", (err, res) => {
      if (!err) writeFileSync(join(dir, `${name}.${process.pid}.cpuprofile`), JSON.stringify(res.profile));
    });
  };
  process.on("exit", write);
  // Every process of the stack handles these itself (start.ts, the kit's `signals`), so listening here
  // does not change how it stops.
  process.prependListener("SIGTERM", write);
  process.prependListener("SIGINT", write);
}
