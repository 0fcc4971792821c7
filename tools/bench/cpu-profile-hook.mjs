// Preloaded into every process of a stack (NODE_OPTIONS=--import=<this file>, MESHMART_CPU_PROF_DIR=<dir>)
// because Node 20 refuses --cpu-prof in NODE_OPTIONS: starts V8's sampling profiler through node:inspector
// and writes <dir>/<pid>.cpuprofile when the process is told to stop (SIGTERM/SIGINT: the profile covers the
// load, not the drain, and is kept even if the process then has to be killed) or exits.
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { join } from "node:path";

const dir = process.env.MESHMART_CPU_PROF_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  session.post("Profiler.enable");
  session.post("Profiler.setSamplingInterval", { interval: 1000 }); // µs
  session.post("Profiler.start");
  let written = false;
  const write = () => {
    if (written) return;
    written = true;
    // An in-process inspector session answers synchronously, so this also works inside an exit handler.
    session.post("Profiler.stop", (err, res) => {
      if (!err) writeFileSync(join(dir, `${process.pid}.cpuprofile`), JSON.stringify(res.profile));
    });
  };
  process.on("exit", write);
  // Listening does not change what the process does on these signals: its own handlers still run.
  process.prependListener("SIGTERM", write);
  process.prependListener("SIGINT", write);
}
