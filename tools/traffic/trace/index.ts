// npm run trace -- <order id> [--dir <span files>] [--svg <file>]
// Prints the waterfall of an order's trace(s) (PlaceOrder's, and any recovery's) from the span files the
// local stack writes (npm start: .cache/devdb/data/traces), and draws it as SVG with --svg.
// Exit 1 when no span names the order, 2 on bad usage.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ROOT } from "../../root.js";
import { readSpans, tracesOfOrder } from "./spans.js";
import { traceView, waterfallSvg, waterfallText } from "./waterfall.js";

function main(): number {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { dir: { type: "string", default: join(ROOT, ".cache", "devdb", "data", "traces") }, svg: { type: "string" } },
  });
  const [orderId] = positionals;
  if (!orderId || positionals.length > 1) {
    console.error("usage: npm run trace -- <order id> [--dir <span files>] [--svg <file>]");
    return 2;
  }
  const spans = readSpans(values.dir);
  const ids = tracesOfOrder(spans, orderId);
  if (ids.length === 0) {
    console.error(
      `no trace names order ${orderId} in ${values.dir} (${spans.length} spans read). Spans reach the files about a second after the call; ` +
        "was tracing on (not OTEL_SDK_DISABLED=true) and this trace sampled (OTEL_TRACES_SAMPLER/_ARG)?",
    );
    return 1;
  }
  ids.forEach((id, i) => {
    const view = traceView(spans.filter((s) => s.traceId === id));
    console.log(waterfallText(view));
    if (values.svg) {
      const file = ids.length === 1 ? values.svg : values.svg.replace(/(\.svg)?$/, `-${i + 1}.svg`);
      writeFileSync(file, waterfallSvg(`order ${orderId}: ${view.rows[0]?.name ?? "trace"}`, view));
      console.log(`drawn: ${file}`);
    }
  });
  return 0;
}

process.exitCode = main();
