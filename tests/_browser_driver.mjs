// A headless Chromium for the tests, driven by npm playwright-core under
// Node: tests/_browser.ts starts this script and sends it one JSON command
// per line on stdin; it answers one JSON line per command on stdout.
//
// playwright-core is looked up in $MIDISOCK_PLAYWRIGHT_DIR, then in
// $TMPDIR/midisock-pw and /tmp/midisock-pw (where .ci/run installs it with
// `npm install --prefix`), then as a global package. Chromium is
// $MIDISOCK_CHROMIUM or /usr/bin/chromium.
//
// `node _browser_driver.mjs --check` prints "ok", or why it cannot run.

import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { createInterface } from "node:readline";

const CHROMIUM = process.env.MIDISOCK_CHROMIUM || "/usr/bin/chromium";
const ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
  "--disable-sync",
];

async function loadPlaywright() {
  const dirs = [
    process.env.MIDISOCK_PLAYWRIGHT_DIR,
    join(tmpdir(), "midisock-pw"),
    "/tmp/midisock-pw",
  ].filter((dir) => dir);
  for (const dir of dirs) {
    try {
      return createRequire(join(dir, "node_modules", "index.js"))(
        "playwright-core",
      );
    } catch {
      // Try the next.
    }
  }
  return await import("playwright-core");
}

let playwright;
try {
  playwright = await loadPlaywright();
} catch {
  console.log(
    "npm playwright-core is not installed (npm install --prefix /tmp/midisock-pw playwright-core@1)",
  );
  process.exit(0);
}
if (!existsSync(CHROMIUM)) {
  console.log(`${CHROMIUM} is missing (apt-get install chromium)`);
  process.exit(0);
}
if (process.argv.includes("--check")) {
  console.log("ok");
  process.exit(0);
}

const browser = await playwright.chromium.launch({
  executablePath: CHROMIUM,
  args: ARGS,
});
/** Pages by number, and what their consoles said. */
const pages = new Map();
let nextPage = 1;

/**
 * A function's source called with its argument, as one expression: given
 * as a string, a function would be taken for the value itself.
 */
function call(source, arg) {
  return `(${source})(${JSON.stringify(arg ?? null)})`;
}

const ops = {
  async newPage(
    { viewport, colorScheme, hasTouch, deviceScaleFactor, ignoreHTTPSErrors },
  ) {
    const context = await browser.newContext({
      viewport: viewport ?? { width: 1280, height: 900 },
      colorScheme: colorScheme ?? "dark",
      hasTouch: hasTouch ?? false,
      deviceScaleFactor: deviceScaleFactor ?? 1,
      ignoreHTTPSErrors: ignoreHTTPSErrors ?? false,
    });
    const page = await context.newPage();
    const id = nextPage++;
    const entry = { page, context, log: [] };
    page.on("console", (msg) => entry.log.push(`${msg.type()}: ${msg.text()}`));
    page.on("pageerror", (error) => entry.log.push(`error: ${error.message}`));
    pages.set(id, entry);
    return id;
  },
  async addInitScript({ page, script }) {
    await pages.get(page).page.addInitScript(script);
  },
  async goto({ page, url }) {
    await pages.get(page).page.goto(url);
  },
  async click({ page, selector }) {
    await pages.get(page).page.click(selector);
  },
  async tap({ page, selector }) {
    await pages.get(page).page.tap(selector);
  },
  async fill({ page, selector, value }) {
    await pages.get(page).page.fill(selector, value);
  },
  async select({ page, selector, value }) {
    await pages.get(page).page.selectOption(selector, { value });
  },
  async mouse({ page, action, x, y }) {
    const mouse = pages.get(page).page.mouse;
    if (action === "move") await mouse.move(x, y);
    else await mouse[action]();
  },
  async key({ page, action, key }) {
    await pages.get(page).page.keyboard[action](key);
  },
  async box({ page, selector }) {
    return await pages.get(page).page.locator(selector).boundingBox();
  },
  async evaluate({ page, expression, arg }) {
    return await pages.get(page).page.evaluate(call(expression, arg));
  },
  async waitFor({ page, expression, arg, timeout }) {
    // Polled with evaluate: waitForFunction evaluates strings in a way the
    // page's Content-Security-Policy forbids.
    const deadline = Date.now() + (timeout ?? 10_000);
    const target = pages.get(page).page;
    while (!await target.evaluate(call(expression, arg))) {
      if (Date.now() > deadline) {
        throw new Error(`Timed out waiting for ${expression}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  },
  async text({ page, selector }) {
    return await pages.get(page).page.locator(selector).textContent();
  },
  async screenshot({ page, path, fullPage }) {
    await pages.get(page).page.screenshot({ path, fullPage: fullPage ?? true });
  },
  log({ page }) {
    return pages.get(page).log;
  },
  async closePage({ page }) {
    const entry = pages.get(page);
    pages.delete(page);
    await entry?.context.close();
  },
};

/** Runs one command; commands run side by side, answers say which. */
async function run(line) {
  const { id, op, ...args } = JSON.parse(line);
  let reply;
  try {
    const value = await ops[op](args);
    reply = { id, ok: true, value: value ?? null };
  } catch (error) {
    reply = { id, ok: false, error: String(error?.message ?? error) };
  }
  process.stdout.write(`${JSON.stringify(reply)}\n`);
}

const running = new Set();
for await (const line of createInterface({ input: process.stdin })) {
  const task = run(line);
  running.add(task);
  task.finally(() => running.delete(task));
}
// Stdin closed: the test is done.
await Promise.allSettled(running);
await browser.close();
